//! Byte sizes written the way people write them: `"10MiB"`, `"512 KiB"`,
//! `"1G"`, `"4096"`. Units are powers of 1024 whether or not they say `i`
//! (`10MB` is 10 MiB): a log or memory limit is about what a machine holds, and
//! mixing the two conventions in one file helps nobody.

use serde::{Deserialize, Deserializer};

/// Parses a size; the error says what was wrong.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"10MiB\""))?;
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

/// An optional size in a config file: a string such as `"10MiB"`, or a plain
/// number of bytes.
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a size such as \"10MiB\" or a number of bytes")
    })? {
        Raw::Bytes(n) => Ok(Some(n)),
        Raw::Text(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse("10MiB"), Ok(10 << 20));
        assert_eq!(parse("512 KiB"), Ok(512 << 10));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse("4096"), Ok(4096));
        assert!(parse("ten").is_err());
        assert!(parse("10 parsecs").is_err());
        assert!(parse("99999999999999TiB").is_err());
    }
}
