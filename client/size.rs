//! Byte sizes written the way people write them: `"10MiB"`, `"512 KiB"`,
//! `"1G"`, `"4096"`. Units are powers of 1024 whether or not they say `i`
//! (`10MB` is 10 MiB), as `ulimit` and the kernel count memory: a log or
//! memory limit is about what a machine holds, and mixing the two conventions
//! in one file helps nobody. One parser for the config file, the control API
//! and `infantctl`, so a size means the same everywhere.

/// Parses a size: a number of bytes, or a number with a unit (`B`, `K`/`KB`/
/// `KiB` and so on up to `T`); the error says what was wrong.
pub fn parse(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"512MiB\", \"2G\" or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown unit (B, KiB, MiB, GiB or TiB)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse("10MiB"), Ok(10 << 20));
        assert_eq!(parse("512 KiB"), Ok(512 << 10));
        assert_eq!(parse("64 kb"), Ok(64 << 10));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse("4096"), Ok(4096));
        assert!(parse("ten").is_err());
        assert!(parse("1.5G").is_err());
        assert!(parse("10 parsecs").is_err());
        assert!(parse("99999999999999TiB").is_err());
    }
}
