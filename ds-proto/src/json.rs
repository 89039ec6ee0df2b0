//! JSON mode (PROTOCOL.md 9.1): message framing for appends and splitting of read bodies.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// Checks that `body` is one JSON value, in UTF-8 (RFC 8259 8.1): the bytes inside strings
/// are checked too, so whatever passes can be split back by [`split_array`].
pub fn validate(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("invalid JSON: not UTF-8: {e}"))?;
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON: {e}"))
}

/// Whether `body` is an empty JSON array (`[]`, whitespace allowed).
pub fn is_empty_array(body: &[u8]) -> bool {
    // Without allocating: called on every JSON append and every JSON read body.
    let mut solid = body.iter().copied().filter(|b| !b.is_ascii_whitespace());
    solid.next() == Some(b'[') && solid.next() == Some(b']') && solid.next().is_none()
}

/// The body that stores `message` as exactly one message: `[message]`, since the server
/// flattens one level of array (9.1.2). The message must be valid JSON and not an empty array.
pub fn wrap_one(message: &[u8]) -> Result<Bytes, String> {
    validate(message)?;
    if is_empty_array(message) {
        return Err("an empty JSON array appends nothing (PROTOCOL.md 9.1.3)".to_owned());
    }
    let mut out = BytesMut::with_capacity(message.len() + 2);
    out.put_u8(b'[');
    out.put_slice(message);
    out.put_u8(b']');
    Ok(out.freeze())
}

/// The body that stores each item as one message: `[a,b,...]`. Items must already be valid JSON
/// values; an empty list is refused (the server would answer 400, 9.1.3).
pub fn batch<I, B>(items: I) -> Result<Bytes, String>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut out = BytesMut::new();
    out.put_u8(b'[');
    let mut n = 0usize;
    for item in items {
        if n > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item.as_ref());
        n += 1;
    }
    if n == 0 {
        return Err("an empty JSON batch appends nothing (PROTOCOL.md 9.1.3)".to_owned());
    }
    out.put_u8(b']');
    Ok(out.freeze())
}

/// Splits a JSON-mode read body (a JSON array, 9.1.5) into its messages, without copying: each
/// item is a slice of `body`. An empty body is no messages.
pub fn split_array(body: &Bytes) -> Result<Vec<Bytes>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let raw: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|e| format!("JSON stream body is not a JSON array: {e}"))?;
    Ok(raw
        .iter()
        .map(|r| body.slice_ref(r.get().as_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_makes_one_message() {
        assert_eq!(&wrap_one(b"{\"a\":1}").unwrap()[..], b"[{\"a\":1}]");
        assert_eq!(&wrap_one(b"[1,2]").unwrap()[..], b"[[1,2]]");
        assert!(wrap_one(b"[ ]").is_err());
        assert!(wrap_one(b"{nope").is_err());
        assert!(wrap_one(b"").is_err());
    }

    #[test]
    fn invalid_utf8_in_strings_is_refused() {
        // Found by the `read_body` fuzz target: `validate` skipped the bytes of strings, so
        // a JSON append could carry bytes that `split_array` refuses when reading back.
        for bad in [&b"\"\xff\""[..], b"[\"a\xc3\"]", b"{\"\xed\xa0\x80\":1}"] {
            assert!(validate(bad).is_err(), "{bad:?}");
            assert!(wrap_one(bad).is_err(), "{bad:?}");
        }
        assert!(split_array(&Bytes::from_static(b"[\"\xff\"]")).is_err());
        assert!(validate("[\"\u{e9}\u{1F600}\"]".as_bytes()).is_ok());
    }

    #[test]
    fn batches() {
        assert_eq!(&batch([&b"1"[..], b"{}"]).unwrap()[..], b"[1,{}]");
        assert!(batch(Vec::<Bytes>::new()).is_err());
    }

    #[test]
    fn split_is_zero_copy_and_strict() {
        let body = Bytes::from_static(b"[ {\"k\":\"v\"} , [1,2], \"s\" ]");
        let items = split_array(&body).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(&items[0][..], b"{\"k\":\"v\"}");
        assert_eq!(&items[1][..], b"[1,2]");
        assert_eq!(&items[2][..], b"\"s\"");
        assert!(split_array(&Bytes::from_static(b"[]")).unwrap().is_empty());
        assert!(split_array(&Bytes::from_static(b"")).unwrap().is_empty());
        assert!(split_array(&Bytes::from_static(b"[{\"k\":")).is_err());
        assert!(split_array(&Bytes::from_static(b"{\"k\":1}")).is_err());
    }
}

/// Joins the bodies of several JSON-mode responses (each a JSON array) into one array, the
/// shape of the stream's messages read in one go.
pub fn merge_arrays<B: AsRef<[u8]>>(bodies: &[B]) -> Result<Bytes, String> {
    let mut items: Vec<Bytes> = Vec::new();
    for b in bodies {
        items.extend(split_array(&Bytes::copy_from_slice(b.as_ref()))?);
    }
    if items.is_empty() {
        return Ok(Bytes::from_static(b"[]"));
    }
    batch(items)
}

#[cfg(test)]
mod merge_tests {
    #[test]
    fn merges() {
        let m = super::merge_arrays(&[&b"[1,2]"[..], b"[]", b"[{\"a\":3}]"]).unwrap();
        assert_eq!(&m[..], b"[1,2,{\"a\":3}]");
        assert_eq!(&super::merge_arrays::<&[u8]>(&[]).unwrap()[..], b"[]");
    }
}
