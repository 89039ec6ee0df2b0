//! The offsets this server mints and accepts (PROTOCOL.md 8).
//!
//! A position is a count of stored units (bytes; for JSON streams, the bytes of the stored
//! messages) from the start of the stream. Its token is `0000000000000000_` followed by the
//! position as 16 decimal digits: fixed width, so byte-wise order is position order, and never
//! one of the sentinels `-1` / `now` (section 8, "Reserved Values"). Forks share their source's
//! position space (8, "Offsets and forked streams").

use crate::offset::Offset;

/// The fixed first field of every token.
const SEGMENT: &str = "0000000000000000";
const WIDTH: usize = 16;

/// Mints the token for a position.
pub(crate) fn mint(position: u64) -> Offset {
    Offset::parse(format!("{SEGMENT}_{position:0WIDTH$}"))
        .expect("minted offsets contain only digits and '_'")
}

/// Where a read starts, as the `offset` query parameter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    /// `-1` or no parameter: the beginning.
    Start,
    /// `now`: the tail at the time of the request.
    Now,
    /// A token this server minted.
    At(u64),
}

/// Parses a token this server minted; anything else is malformed.
pub(crate) fn parse_token(s: &str) -> Result<u64, String> {
    let malformed = || format!("malformed offset {s:?}");
    let (segment, position) = s.split_once('_').ok_or_else(malformed)?;
    if segment != SEGMENT
        || position.len() != WIDTH
        || !position.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    position.parse().map_err(|_| malformed())
}

/// Parses the `offset` query parameter of a read.
pub(crate) fn parse_requested(s: &str) -> Result<Requested, String> {
    match s {
        "-1" => Ok(Requested::Start),
        "now" => Ok(Requested::Now),
        _ => parse_token(s).map(Requested::At),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_sort() {
        assert_eq!(mint(0).as_str(), "0000000000000000_0000000000000000");
        assert_eq!(mint(123).as_str(), "0000000000000000_0000000000000123");
        assert_eq!(parse_token(mint(987_654).as_str()), Ok(987_654));
        assert!(mint(9) < mint(10));
        assert!(mint(99_999) < mint(100_000));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "12",
            "0_12",
            "0000000000000000_12",
            "0000000000000001_0000000000000012",
            "0000000000000000_000000000000001a",
            "0000000000000000-0000000000000012",
            "abc",
        ] {
            assert!(parse_requested(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_requested("-1"), Ok(Requested::Start));
        assert_eq!(parse_requested("now"), Ok(Requested::Now));
    }
}
