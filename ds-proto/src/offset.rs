//! Opaque stream offsets (PROTOCOL.md section 8).
//!
//! An offset is a server-minted token: this crate never parses it, only checks that it is a
//! single non-empty token without the characters section 8 forbids (`,` `&` `=` `?` `/`), and
//! compares offsets byte-wise when it must.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A position in a stream: a sentinel (`-1`, `now`) or a token the server returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Offset(String);

/// Why a string is not a usable offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// The string is empty.
    #[error("offset is empty")]
    Empty,
    /// The string contains a character section 8 forbids, or a control character or space.
    #[error("offset contains forbidden character {0:?}")]
    ForbiddenChar(char),
}

impl Offset {
    /// The `-1` sentinel: the beginning of the stream.
    pub fn beginning() -> Self {
        Offset("-1".to_owned())
    }

    /// The `now` sentinel: the current tail (only future data).
    pub fn now() -> Self {
        Offset("now".to_owned())
    }

    /// Checks and wraps an offset given by a user or a server.
    pub fn parse(s: impl Into<String>) -> Result<Self, OffsetError> {
        let s = s.into();
        if s.is_empty() {
            return Err(OffsetError::Empty);
        }
        if let Some(c) = s
            .chars()
            .find(|c| matches!(c, ',' | '&' | '=' | '?' | '/') || c.is_control() || *c == ' ')
        {
            return Err(OffsetError::ForbiddenChar(c));
        }
        Ok(Offset(s))
    }

    /// The token as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `-1` sentinel.
    pub fn is_beginning(&self) -> bool {
        self.0 == "-1"
    }

    /// Whether this is the `now` sentinel.
    pub fn is_now(&self) -> bool {
        self.0 == "now"
    }

    /// Whether this is one of the sentinels rather than a server-minted token.
    pub fn is_sentinel(&self) -> bool {
        self.is_beginning() || self.is_now()
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Offset {
    type Error = OffsetError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Offset::parse(s)
    }
}

impl TryFrom<&str> for Offset {
    type Error = OffsetError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Offset::parse(s)
    }
}

impl From<Offset> for String {
    fn from(o: Offset) -> String {
        o.0
    }
}

impl std::str::FromStr for Offset {
    type Err = OffsetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Offset::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels() {
        assert!(Offset::beginning().is_beginning());
        assert!(Offset::now().is_now());
        assert!(Offset::parse("-1").unwrap().is_sentinel());
        assert!(!Offset::parse("0000_0001").unwrap().is_sentinel());
    }

    #[test]
    fn forbidden_characters_are_refused() {
        for bad in ["a,b", "a&b", "a=b", "a?b", "a/b", "a b", "a\nb"] {
            assert!(Offset::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Offset::parse(""), Err(OffsetError::Empty));
    }

    #[test]
    fn opaque_tokens_are_kept_as_is() {
        let o = Offset::parse("0000000000000000_0000000000000011").unwrap();
        assert_eq!(o.as_str(), "0000000000000000_0000000000000011");
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Offset>(&json).unwrap(), o);
        assert!(serde_json::from_str::<Offset>("\"a/b\"").is_err());
    }

    #[test]
    fn every_conversion_keeps_the_token() {
        let token = "0000000000000000_0000000000000011";
        let o = Offset::parse(token).unwrap();
        assert_eq!(o.to_string(), token, "Display is the wire token");
        assert_eq!(format!("[{o:>3}]"), format!("[{token}]"));
        assert_eq!(String::from(o.clone()), token);
        assert_eq!(Offset::try_from(token.to_owned()).unwrap(), o);
        assert_eq!(Offset::try_from(token).unwrap(), o);
        assert_eq!(token.parse::<Offset>().unwrap(), o);
        assert_eq!(Offset::beginning().to_string(), "-1");
        assert_eq!(Offset::now().as_str(), "now");
        for bad in ["", "a/b"] {
            assert!(Offset::try_from(bad).is_err(), "{bad:?}");
            assert!(Offset::try_from(bad.to_owned()).is_err(), "{bad:?}");
            assert!(bad.parse::<Offset>().is_err(), "{bad:?}");
        }
        assert_eq!(Offset::parse("a\tb"), Err(OffsetError::ForbiddenChar('\t')));
    }

    #[test]
    fn sentinels_are_exactly_minus_one_and_now() {
        for token in ["-10", "1", "now_", "NOW", "0_0"] {
            let o = Offset::parse(token).unwrap();
            assert!(
                !o.is_beginning() && !o.is_now() && !o.is_sentinel(),
                "{token}"
            );
        }
        assert!(Offset::now().is_sentinel() && !Offset::now().is_beginning());
        assert!(Offset::beginning().is_sentinel() && !Offset::beginning().is_now());
    }

    #[test]
    fn comparison_is_bytewise() {
        let a = Offset::parse("0000_0009").unwrap();
        let b = Offset::parse("0000_0010").unwrap();
        assert!(a < b);
    }
}
