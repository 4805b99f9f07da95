//! Sizes in the config file: `"10MiB"` or a number of bytes (see
//! [`crate::size`]).

use serde::{Deserialize, Deserializer};

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
        Raw::Text(text) => crate::size::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
