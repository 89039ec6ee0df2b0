//! What the request handlers read from a request's content: header text, media types, and
//! the messages of a JSON body (PROTOCOL.md 9.1). Shared by `PUT` (create) and `POST` (append).

use super::reply::Reply;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::value::RawValue;

/// The media type of a content type: essence, lower case, parameters dropped. Content types
/// are compared this way everywhere (`application/json; charset=utf-8` is JSON).
pub(super) fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A request header as trimmed text; `Err` when it is not visible ASCII.
pub(super) fn text_header<'a>(
    h: &'a HeaderMap,
    name: &http::header::HeaderName,
) -> Result<Option<&'a str>, Reply> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| Reply::error(400, format!("{name} is not visible ASCII"))),
    }
}

/// Splits a JSON body into the messages it stores: an array is flattened exactly one level
/// (9.1.2), any other value is one message. Each message is kept as sent (a slice of `body`,
/// without surrounding whitespace). Invalid JSON is refused (9.1.4); an empty array gives no
/// messages (the caller decides whether that is allowed, 9.1.3).
pub(super) fn json_units(body: &Bytes) -> Result<Vec<Bytes>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        Ok(items
            .iter()
            .map(|r| body.slice_ref(r.get().as_bytes()))
            .collect())
    } else {
        let value: &RawValue =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        Ok(vec![body.slice_ref(value.get().as_bytes())])
    }
}
