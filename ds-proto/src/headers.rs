//! Header names of the protocol and their typed interpreters (PROTOCOL.md 5, 13.2).
//!
//! Header names are matched case-insensitively (servers send `Stream-Next-Offset` or
//! `stream-next-offset`): `http::HeaderMap` normalises names, and every constant here is the
//! lower-case form. Each interpreter returns a typed value or a message describing why the value
//! is malformed; callers wrap the message in their operation's error.

use crate::offset::Offset;
use http::header::HeaderName;
use http::HeaderMap;
use std::time::Duration;

/// `Stream-Next-Offset`: the offset after the data of a response.
pub const STREAM_NEXT_OFFSET: HeaderName = HeaderName::from_static("stream-next-offset");
/// `Stream-Cursor`: the CDN-collapsing cursor to echo as `cursor=` (10.1).
pub const STREAM_CURSOR: HeaderName = HeaderName::from_static("stream-cursor");
/// `Stream-Up-To-Date: true`: the response reached the tail.
pub const STREAM_UP_TO_DATE: HeaderName = HeaderName::from_static("stream-up-to-date");
/// `Stream-Closed: true`: the stream is closed (EOF when at the tail).
pub const STREAM_CLOSED: HeaderName = HeaderName::from_static("stream-closed");
/// `Stream-TTL`: sliding time-to-live in seconds.
pub const STREAM_TTL: HeaderName = HeaderName::from_static("stream-ttl");
/// `Stream-Expires-At`: absolute expiry, RFC 3339.
pub const STREAM_EXPIRES_AT: HeaderName = HeaderName::from_static("stream-expires-at");
/// `Stream-Seq`: the writer's lexicographic sequence (5.2).
pub const STREAM_SEQ: HeaderName = HeaderName::from_static("stream-seq");
/// `Stream-Forked-From`: the source path of a fork (4.2).
pub const STREAM_FORKED_FROM: HeaderName = HeaderName::from_static("stream-forked-from");
/// `Stream-Fork-Offset`: the divergence offset of a fork (4.2).
pub const STREAM_FORK_OFFSET: HeaderName = HeaderName::from_static("stream-fork-offset");
/// `Stream-Fork-Sub-Offset`: the refinement past the fork offset (4.2).
pub const STREAM_FORK_SUB_OFFSET: HeaderName = HeaderName::from_static("stream-fork-sub-offset");
/// `stream-sse-data-encoding`: `base64` for binary streams read through SSE (5.8).
pub const STREAM_SSE_DATA_ENCODING: HeaderName =
    HeaderName::from_static("stream-sse-data-encoding");
/// `Producer-Id` (5.2.1).
pub const PRODUCER_ID: HeaderName = HeaderName::from_static("producer-id");
/// `Producer-Epoch` (5.2.1).
pub const PRODUCER_EPOCH: HeaderName = HeaderName::from_static("producer-epoch");
/// `Producer-Seq` (5.2.1).
pub const PRODUCER_SEQ: HeaderName = HeaderName::from_static("producer-seq");
/// `Producer-Expected-Seq`, on a 409 sequence gap (5.2.1).
pub const PRODUCER_EXPECTED_SEQ: HeaderName = HeaderName::from_static("producer-expected-seq");
/// `Producer-Received-Seq`, on a 409 sequence gap (5.2.1).
pub const PRODUCER_RECEIVED_SEQ: HeaderName = HeaderName::from_static("producer-received-seq");

/// The largest epoch or sequence number the protocol allows (2^53-1, 5.2.1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The longest `Retry-After` honoured; longer requests are capped to this (a hostile server
/// must not park a client for a year).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

fn str_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| format!("{name} is not visible ASCII")),
    }
}

/// Whether a flag header is present with the value `true` (case-insensitive, 4.1). Any other
/// value counts as absent.
pub fn flag(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `Stream-Next-Offset`, checked as an offset token (section 8).
pub fn next_offset(headers: &HeaderMap) -> Result<Option<Offset>, String> {
    match str_value(headers, &STREAM_NEXT_OFFSET)? {
        None => Ok(None),
        Some(s) => Offset::parse(s)
            .map(Some)
            .map_err(|e| format!("Stream-Next-Offset {s:?}: {e}")),
    }
}

/// `Stream-Cursor`, if present and non-empty.
pub fn cursor(headers: &HeaderMap) -> Option<String> {
    headers
        .get(&STREAM_CURSOR)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Parses a non-negative decimal integer no larger than 2^53-1 (5.2.1).
pub fn parse_u53(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 16 {
        return Err(format!("{s:?} is not a non-negative integer"));
    }
    let v: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a non-negative integer"))?;
    if v > MAX_SAFE_INTEGER {
        return Err(format!("{v} exceeds 2^53-1"));
    }
    Ok(v)
}

/// A producer header (`Producer-Epoch`, `Producer-Seq`, `Producer-Expected-Seq`,
/// `Producer-Received-Seq`) as an integer in `0..=2^53-1`.
pub fn producer_number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, String> {
    match str_value(headers, name)? {
        None => Ok(None),
        Some(s) => parse_u53(s).map(Some).map_err(|e| format!("{name}: {e}")),
    }
}

/// `Retry-After` in delta-seconds (fractions accepted), capped at [`MAX_RETRY_AFTER`]. An
/// HTTP-date or garbage is ignored (`None`): the retry policy's own schedule applies.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let s = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = s.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// Checks a `Stream-TTL` value: decimal, no sign, no leading zero, no fraction (5.1).
pub fn validate_ttl(s: &str) -> Result<u64, String> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.len() <= 19;
    if !ok {
        return Err(format!(
            "TTL {s:?} must be a decimal integer without sign or leading zero"
        ));
    }
    s.parse().map_err(|_| format!("TTL {s:?} is out of range"))
}

/// `Stream-TTL` of a response, in seconds.
pub fn ttl(headers: &HeaderMap) -> Result<Option<u64>, String> {
    match str_value(headers, &STREAM_TTL)? {
        None => Ok(None),
        Some(s) => validate_ttl(s).map(Some),
    }
}

/// Checks an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, `...T00:00:00.123+02:00`).
pub fn validate_rfc3339(s: &str) -> Result<(), String> {
    let err = || format!("{s:?} is not an RFC 3339 timestamp");
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0u32, |a, x| a * 10 + u32::from(x - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let (Some(_y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return Err(err());
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => Ok(()),
        [b'+' | b'-', ..] if b.len() - i == 6 => {
            let (Some(oh), Some(om)) = (digits(i + 1..i + 3), digits(i + 4..i + 6)) else {
                return Err(err());
            };
            if b[i + 3] != b':' || oh > 23 || om > 59 {
                return Err(err());
            }
            Ok(())
        }
        _ => Err(err()),
    }
}

/// `Stream-Expires-At` of a response, checked as RFC 3339.
pub fn expires_at(headers: &HeaderMap) -> Result<Option<String>, String> {
    match str_value(headers, &STREAM_EXPIRES_AT)? {
        None => Ok(None),
        Some(s) => validate_rfc3339(s).map(|()| Some(s.to_owned())),
    }
}

/// The response `Content-Type`, if any.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// Whether a content type is JSON mode (`application/json`, parameters ignored, 9.1).
pub fn is_json_content_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether a content type is an SSE event stream (`text/event-stream`, parameters ignored):
/// its body comes in pieces as events happen, so a driver hands each piece over as it arrives.
pub fn is_event_stream_content_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

/// Whether SSE data of this content type is text (`text/*`, `application/json`) rather than
/// base64 (5.8).
pub fn is_text_content_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    is_json_content_type(essence)
        || essence
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("text/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn names_match_case_insensitively() {
        let h = map(&[("Stream-Next-Offset", "abc"), ("STREAM-CLOSED", "TRUE")]);
        assert_eq!(next_offset(&h).unwrap().unwrap().as_str(), "abc");
        assert!(flag(&h, &STREAM_CLOSED));
    }

    #[test]
    fn flags_need_exactly_true() {
        for v in ["false", "yes", "1", ""] {
            assert!(!flag(&map(&[("stream-closed", v)]), &STREAM_CLOSED), "{v}");
        }
        assert!(flag(
            &map(&[("stream-up-to-date", "True")]),
            &STREAM_UP_TO_DATE
        ));
    }

    #[test]
    fn producer_numbers_are_bounded() {
        let h = map(&[
            ("producer-epoch", "9007199254740991"),
            ("producer-seq", "9007199254740992"),
            ("producer-expected-seq", "-1"),
        ]);
        assert_eq!(
            producer_number(&h, &PRODUCER_EPOCH).unwrap(),
            Some(MAX_SAFE_INTEGER)
        );
        assert!(producer_number(&h, &PRODUCER_SEQ).is_err());
        assert!(producer_number(&h, &PRODUCER_EXPECTED_SEQ).is_err());
        assert_eq!(producer_number(&h, &PRODUCER_RECEIVED_SEQ).unwrap(), None);
    }

    #[test]
    fn retry_after_is_capped_and_tolerant() {
        assert_eq!(
            retry_after(&map(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&map(&[("retry-after", "31536000")])),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after(&map(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])),
            None
        );
        assert_eq!(retry_after(&map(&[("retry-after", "-3")])), None);
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(validate_ttl("3600"), Ok(3600));
        assert_eq!(validate_ttl("0"), Ok(0));
        for bad in ["+3600", "03600", "3600.0", "3.6e3", "", "-1", " 1"] {
            assert!(validate_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_rules() {
        for ok in [
            "2026-01-01T00:00:00Z",
            "2026-12-31T23:59:59.123456+02:00",
            "2026-06-01t10:00:00-05:30",
        ] {
            assert!(validate_rfc3339(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "tomorrow",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0200",
        ] {
            assert!(validate_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn u53_bounds() {
        assert_eq!(parse_u53("0"), Ok(0));
        assert_eq!(parse_u53("9007199254740991"), Ok(MAX_SAFE_INTEGER));
        assert_eq!(parse_u53("0009007199254740"), Ok(9_007_199_254_740));
        for bad in [
            "",
            "9007199254740992",
            "00009007199254740",
            "1a",
            "+1",
            " 1",
            "1.0",
        ] {
            assert!(parse_u53(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_u53("9999999999999999").unwrap_err(),
            "9999999999999999 exceeds 2^53-1"
        );
    }

    #[test]
    fn values_are_trimmed_and_must_be_visible_ascii() {
        let h = map(&[("producer-seq", " 7 "), ("stream-next-offset", " 0_5\t")]);
        assert_eq!(producer_number(&h, &PRODUCER_SEQ), Ok(Some(7)));
        assert_eq!(next_offset(&h).unwrap().unwrap().as_str(), "0_5");
        let mut h = HeaderMap::new();
        h.insert(
            STREAM_NEXT_OFFSET.clone(),
            HeaderValue::from_bytes(b"0_\xff").unwrap(),
        );
        assert!(next_offset(&h).unwrap_err().contains("not visible ASCII"));
        assert_eq!(next_offset(&HeaderMap::new()), Ok(None));
        assert!(next_offset(&map(&[("stream-next-offset", "a/b")])).is_err());
        assert_eq!(
            cursor(&map(&[("stream-cursor", " c1 ")])),
            Some("c1".into())
        );
        assert_eq!(cursor(&map(&[("stream-cursor", " ")])), None);
        assert_eq!(
            content_type(&map(&[("content-type", " text/plain ")])),
            Some("text/plain".into())
        );
        assert_eq!(content_type(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_bounds() {
        let ra = |v: &str| retry_after(&map(&[("retry-after", v)]));
        assert_eq!(ra("0"), Some(Duration::ZERO));
        assert_eq!(ra(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(ra("300"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra("299.5"), Some(Duration::from_millis(299_500)));
        assert_eq!(ra("-0.001"), None);
        assert_eq!(ra("inf"), None);
        assert_eq!(ra("NaN"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(
            validate_ttl("9999999999999999999"),
            Ok(9_999_999_999_999_999_999)
        );
        assert!(validate_ttl("18446744073709551616").is_err(), "20 digits");
        assert!(validate_ttl("00").is_err());
        assert_eq!(ttl(&map(&[("stream-ttl", "60")])), Ok(Some(60)));
        assert_eq!(ttl(&HeaderMap::new()), Ok(None));
        assert!(ttl(&map(&[("stream-ttl", "06")])).is_err());
    }

    #[test]
    fn rfc3339_field_bounds() {
        for ok in [
            "2026-12-31T23:59:60Z",
            "0000-01-01 00:00:00z",
            "2026-01-01T00:00:00.0Z",
            "2026-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00-00:00",
        ] {
            assert!(validate_rfc3339(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:61Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+00:60",
            "2026-01-01T00:00:00+00-00",
            "2026-01-01T00:00:00+00:000",
            "2026-01-01T00:00:00ZZ",
            "2026/01-01T00:00:00Z",
            "2026-01/01T00:00:00Z",
            "2026-01-01X00:00:00Z",
            "2026-01-01T00-00:00Z",
            "2026-01-01T00:00-00Z",
            "2026-0a-01T00:00:00Z",
            "2026-01-01T00:00:0Z",
        ] {
            assert!(validate_rfc3339(bad).is_err(), "{bad}");
        }
        let h = map(&[("stream-expires-at", "2026-01-01T00:00:00Z")]);
        assert_eq!(expires_at(&h), Ok(Some("2026-01-01T00:00:00Z".into())));
        assert!(expires_at(&map(&[("stream-expires-at", "soon")])).is_err());
        assert_eq!(expires_at(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(!is_json_content_type("application/ndjson"));
        assert!(is_text_content_type("text/plain"));
        assert!(is_text_content_type("application/json"));
        assert!(!is_text_content_type("application/octet-stream"));
        assert!(is_event_stream_content_type("text/event-stream"));
        assert!(is_event_stream_content_type(
            " Text/Event-Stream; charset=utf-8"
        ));
        assert!(!is_event_stream_content_type("text/event-streams"));
        assert!(!is_event_stream_content_type("text/plain"));
    }
}
