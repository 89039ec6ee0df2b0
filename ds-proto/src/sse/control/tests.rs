//! Unit and property tests of control events and base64 data.

use super::*;
use crate::sse::{SseError, SseParser};
use proptest::prelude::*;

/// The events of a whole body.
fn events(input: &[u8]) -> Vec<crate::sse::SseEvent> {
    let mut p = SseParser::default();
    p.feed(input);
    p.finish().expect("a clean end");
    std::iter::from_fn(|| p.next_event())
        .map(|r| r.expect("no error"))
        .collect()
}

// ----- control events -----

#[test]
fn control_parse_good() {
    let c =
        ControlEvent::parse(br#"{"streamNextOffset":"123456_789","streamCursor":"abc"}"#).unwrap();
    assert_eq!(
        c,
        ControlEvent {
            stream_next_offset: "123456_789".into(),
            stream_cursor: Some("abc".into()),
            up_to_date: false,
            stream_closed: false,
        }
    );
    let c = ControlEvent::parse(
        b" {\"streamNextOffset\":\"9\",\"streamClosed\":true,\"upToDate\":true,\"extra\":[1,{}]}\n",
    )
    .unwrap();
    assert!(c.stream_closed && c.up_to_date && c.is_eof());
    assert_eq!(c.stream_cursor, None);
    let c = ControlEvent::parse(br#"{"streamNextOffset":"","streamCursor":null}"#).unwrap();
    assert_eq!(c.stream_next_offset, "");
    assert_eq!(c.stream_cursor, None);
    assert!(!c.is_eof());
    // Through an event.
    let got =
        events(b"event: control\ndata: {\"streamNextOffset\":\"5\",\ndata: \"upToDate\":true}\n\n");
    assert!(got[0].is_control());
    assert_eq!(
        got[0].control().unwrap(),
        ControlEvent {
            stream_next_offset: "5".into(),
            stream_cursor: None,
            up_to_date: true,
            stream_closed: false,
        }
    );
}

#[test]
fn control_parse_bad() {
    let bad: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        b"not json",
        b"{}",
        b"null",
        b"[\"1\"]",
        b"\"x\"",
        br#"{"streamNextOffset":123}"#,
        br#"{"streamNextOffset":null}"#,
        br#"{"streamNextOffset":"1","upToDate":"true"}"#,
        br#"{"streamNextOffset":"1","streamClosed":1}"#,
        br#"{"streamNextOffset":"1","upToDate":null}"#,
        br#"{"streamNextOffset":"1","streamCursor":5}"#,
        br#"{"streamNextOffset":"1"} trailing"#,
        br#"{"streamNextOffset":"1","streamNextOffset":"2"}"#,
        b"{\"streamNextOffset\":\"\xff\"}",
    ];
    for data in bad {
        match ControlEvent::parse(data) {
            Err(SseError::InvalidControl(msg)) => assert!(!msg.is_empty()),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
        }
    }
}

#[test]
fn control_serializes_camel_case() {
    let c = ControlEvent {
        stream_next_offset: "1".into(),
        stream_cursor: None,
        up_to_date: true,
        stream_closed: false,
    };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, r#"{"streamNextOffset":"1","upToDate":true}"#);
    assert_eq!(ControlEvent::parse(json.as_bytes()).unwrap(), c);
}

// ----- base64 -----

#[test]
fn base64_good() {
    assert_eq!(decode_base64_data(b"").unwrap(), Bytes::new());
    assert_eq!(
        decode_base64_data(b"AQIDBAUG").unwrap(),
        Bytes::from_static(&[1, 2, 3, 4, 5, 6])
    );
    // The spec's example, split over two data lines.
    let got = events(b"event: data\ndata: AQIDBAUG\ndata: BwgJCg==\n\n");
    assert_eq!(
        decode_base64_data(&got[0].data).unwrap(),
        Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    );
    assert_eq!(
        decode_base64_data(b"AQ\r\nID\rBA\n==\n").unwrap(),
        Bytes::from_static(&[1, 2, 3, 4])
    );
    assert_eq!(
        decode_base64_data(b"+/+/").unwrap(),
        Bytes::from_static(&[0xfb, 0xff, 0xbf])
    );
    assert_eq!(decode_base64_data(b"\n\r\n").unwrap(), Bytes::new());
    assert_eq!(
        decode_base64_data(b"aGk=").unwrap(),
        Bytes::from_static(b"hi")
    );
}

#[test]
fn base64_bad() {
    let bad: &[&[u8]] = &[
        b"A",
        b"AQ",
        b"AQI",
        b"AQ=",
        b"AQ==AQ==",
        b"AQID BAUG",
        b"-_-_",
        b"AQ\0=",
        b"AR==",
        b"====",
        b"\xff\xff\xff\xff",
        b"aGk",
    ];
    for data in bad {
        match decode_base64_data(data) {
            Err(SseError::InvalidBase64(msg)) => assert!(!msg.is_empty()),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
        }
    }
}

proptest! {
        #[test]
        fn base64_roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..200), width in 1usize..20) {
            let text = base64::engine::general_purpose::STANDARD.encode(&payload);
            let mut wrapped = Vec::new();
            for (k, piece) in text.as_bytes().chunks(width).enumerate() {
                if k > 0 {
                    wrapped.extend_from_slice(if k % 2 == 0 { b"\n" } else { b"\r\n" });
                }
                wrapped.extend_from_slice(piece);
            }
            prop_assert_eq!(decode_base64_data(&wrapped).unwrap(), Bytes::from(payload));
        }
}
