//! Text cut to a size: error texts travel in gRPC status messages and HTTP/2
//! headers, and show in `status`, so both sides of the worker channel bound them.

/// `text` cut to at most `max` bytes on a character boundary, saying how much
/// was cut.
pub(crate) fn cut_to(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… ({} of {total} bytes cut)", total - end));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary_and_says_how_much() {
        assert_eq!(cut_to("short".into(), 10), "short");
        let cut = cut_to("aé".repeat(10), 4);
        assert!(cut.starts_with("aéa… (26 of 30 bytes cut)"), "{cut}");
    }
}
