//! `json_validate`: `json::validate`, the hand-written validator the producer runs on every
//! JSON append, against serde_json: the same inputs pass and fail.
//!
//! Input format: the whole input is the body.
//!
//! The oracle is what `validate` was before it was hand-written: UTF-8, then
//! `serde_json::from_str::<IgnoredAny>` (no recursion limit when ignoring a value). The body is
//! also checked inside an array, after whitespace, and without each of its last 16 bytes (the
//! cuts move the end of the input across the validator's word and chunk boundaries).

use ds_proto::json;
use serde::de::IgnoredAny;

/// The reference: UTF-8, then serde_json.
fn oracle(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| serde_json::from_str::<IgnoredAny>(s).is_ok())
}

/// `validate` agrees with the oracle on `body`, and its error says what it is.
fn agree(body: &[u8]) {
    let got = json::validate(body);
    assert_eq!(
        got.is_ok(),
        oracle(body),
        "validate {got:?} on {:?}",
        String::from_utf8_lossy(body)
    );
    if let Err(error) = got {
        let message = error.to_string();
        if std::str::from_utf8(body).is_err() {
            assert!(matches!(error, json::JsonError::NotUtf8(_)), "{error:?}");
            assert!(
                message.starts_with("invalid JSON: not UTF-8: "),
                "{message}"
            );
        } else {
            assert!(message.starts_with("invalid JSON: "), "{message}");
            assert!(message.contains(" at byte "), "{message}");
        }
    }
}

/// The `json_validate` target: see the module documentation.
pub fn json_validate(data: &[u8]) {
    agree(data);
    let mut wrapped = Vec::with_capacity(data.len() + 4);
    wrapped.extend_from_slice(b"[ ");
    wrapped.extend_from_slice(data);
    wrapped.push(b']');
    agree(&wrapped);
    let mut spaced = b" \t\r\n".to_vec();
    spaced.extend_from_slice(data);
    agree(&spaced);
    for end in data.len().saturating_sub(16)..data.len() {
        agree(data.get(..end).unwrap_or_default());
    }
}
