//! Minting, and turning presented text back into a tag.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::{Hour, Key};

/// Length of a tag in hex characters.
const HEX_LEN: usize = 64;

/// A minted token: the hour it is valid for and its HMAC-SHA256 tag.
///
/// `Display` prints the tag as 64 lowercase hex characters, like Node's `digest('hex')`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token {
    hour: Hour,
    tag: [u8; 32],
}

impl Token {
    /// The hour the token was minted for.
    pub fn hour(&self) -> Hour {
        self.hour
    }

    /// The raw 32-byte tag.
    pub fn tag(&self) -> &[u8; 32] {
        &self.tag
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hex = [0u8; HEX_LEN];
        // The output buffer is exactly twice the input length, so encoding cannot fail.
        hex::encode_to_slice(self.tag, &mut hex).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("hour", &self.hour.to_string())
            .finish_non_exhaustive()
    }
}

/// Mints the token for the hour that contains `now`.
pub fn mint(key: &Key, value: &str, now: DateTime<Utc>) -> Token {
    let hour = Hour::containing(now);
    Token {
        hour,
        tag: key.mac(hour, value).finalize().into_bytes().into(),
    }
}

/// Why presented text is not a token at all. Messages never repeat the text itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    /// Nothing was presented.
    #[error("the token is empty")]
    Empty,
    /// Not 64 characters long.
    #[error("expected 64 hex characters, got {0}")]
    Length(usize),
    /// 64 characters, but not all of them hex digits.
    #[error("character {0} is not a hex digit")]
    NotHex(usize),
}

/// Decodes exactly 64 ASCII hex digits (either case) into a 32-byte tag.
pub fn decode(presented: &str) -> Result<[u8; 32], Malformed> {
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(presented, &mut tag).is_ok() {
        return Ok(tag);
    }
    Err(diagnose(presented))
}

/// Says what is wrong with text that did not decode.
fn diagnose(presented: &str) -> Malformed {
    if presented.is_empty() {
        return Malformed::Empty;
    }
    let chars = presented.chars().count();
    if chars != HEX_LEN {
        return Malformed::Length(chars);
    }
    let position = presented.chars().position(|c| !c.is_ascii_hexdigit());
    Malformed::NotHex(position.map_or(1, |p| p + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_case() {
        let lower = "5a9988916f64085e97a58d8e81e49765642694d4a4cbf4bfaa5929a259bcbf05";
        assert_eq!(decode(lower), decode(&lower.to_uppercase()));
        assert_eq!(decode(lower).unwrap()[0], 0x5a);
    }

    #[test]
    fn rejects_what_is_not_64_hex_digits() {
        let ok = "5a9988916f64085e97a58d8e81e49765642694d4a4cbf4bfaa5929a259bcbf05";
        assert_eq!(decode(""), Err(Malformed::Empty));
        assert_eq!(decode(&ok[..63]), Err(Malformed::Length(63)));
        assert_eq!(decode(&format!("{ok}0")), Err(Malformed::Length(65)));
        assert_eq!(decode(&format!(" {}", &ok[1..])), Err(Malformed::NotHex(1)));
        assert_eq!(
            decode(&format!("{}g", &ok[..63])),
            Err(Malformed::NotHex(64))
        );
        // Arabic-Indic digit three: a digit to Unicode, not to hex.
        assert_eq!(
            decode(&format!("{}\u{663}", &ok[..63])),
            Err(Malformed::NotHex(64))
        );
        // Fullwidth digits: 64 characters, more bytes.
        assert_eq!(decode(&"\u{ff10}".repeat(64)), Err(Malformed::NotHex(1)));
    }
}
