//! Checking a result against an `expect` block, strictly.
//!
//! The keys mean what the official runner makes them mean, with its leniencies removed:
//!
//! - a check about a read's data, chunks, up-to-date or closure needs a *successful read*; a
//!   check about a head's content type, offset or closure needs a *successful head*; an append's
//!   `duplicate`, `producer*`, `headersSent`, `paramsSent` need a successful append (or read):
//!   an error result never satisfies them;
//! - `status` needs the result to carry a status (the official runner skips the check when the
//!   key is absent);
//! - `errorCode`, `messageContains` and `errorContains` need an error result;
//! - the keys the official runner ignores but which say what should happen are checked:
//!   `success`, `error`, `allSucceed`, and an `append-batch`'s `succeedIndices`/`failIndices`.
//!
//! Results are the adapter's JSON replies (or the runner's own, for direct HTTP actions and
//! `append-batch`), so "has a status" means "has the key", exactly as on the wire.

use super::model::Expect;
use serde_json::Value;

/// A short rendering of a result for failure messages.
pub fn summary(result: &Value) -> String {
    let mut r = result.clone();
    if let Some(obj) = r.as_object_mut() {
        // The details of an error are for people debugging the adapter; keep messages short.
        obj.remove("details");
    }
    let text = r.to_string();
    if text.len() > 600 {
        let mut cut = 600;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

fn is_type(r: &Value, ty: &str) -> bool {
    r.get("type").and_then(Value::as_str) == Some(ty)
}

fn succeeded(r: &Value) -> bool {
    r.get("success").and_then(Value::as_bool) == Some(true)
}

/// `type == "error"` and `success == false`.
pub fn is_error(r: &Value) -> bool {
    is_type(r, "error") && r.get("success").and_then(Value::as_bool) == Some(false)
}

fn successful(r: &Value, types: &[&str]) -> bool {
    succeeded(r) && types.iter().any(|t| is_type(r, t))
}

/// The joined data of a read result's chunks.
pub fn read_data(r: &Value) -> String {
    chunks(r).concat()
}

fn chunks(r: &Value) -> Vec<String> {
    r.get("chunks")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    c.get("data")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks `result` against `expect`; the first mismatch is the error.
pub fn check(expect: &Expect, result: &Value) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what}; result: {}", summary(result)));
    let read = successful(result, &["read"]);
    let head = successful(result, &["head"]);
    let append = successful(result, &["append", "idempotent-append"]);
    let close = successful(result, &["close", "idempotent-close"]);
    let error = is_error(result);
    let need = |ok: bool, key: &str, kind: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{key}` expects a successful {kind}; result: {}",
                summary(result)
            ))
        }
    };

    if let Some(status) = expect.status {
        match result.get("status").and_then(Value::as_u64) {
            Some(s) if s == u64::from(status) => {}
            Some(s) => return fail(format!("expected status {status}, got {s}")),
            None => return fail(format!("expected status {status}, the result has none")),
        }
    }
    if let Some(code) = &expect.error_code {
        if !error {
            return fail(format!(
                "expected error {code}, but the operation succeeded"
            ));
        }
        let got = result
            .get("errorCode")
            .and_then(Value::as_str)
            .unwrap_or("");
        if got != code {
            return fail(format!("expected error {code}, got {got}"));
        }
    }
    let message = result.get("message").and_then(Value::as_str).unwrap_or("");
    if let Some(parts) = &expect.message_contains {
        if !error {
            return fail("`messageContains` expects an error, but the operation succeeded".into());
        }
        let lower = message.to_lowercase();
        for p in parts {
            if !lower.contains(&p.to_lowercase()) {
                return fail(format!("error message does not contain {p:?}"));
            }
        }
    }
    let data = read_data(result);
    if let Some(want) = &expect.data {
        need(read, "data", "read")?;
        if &data != want {
            return fail(format!("expected data {want:?}, got {data:?}"));
        }
    }
    if let Some(want) = &expect.data_contains {
        need(read, "dataContains", "read")?;
        if !data.contains(want.as_str()) {
            return fail(format!("data {data:?} does not contain {want:?}"));
        }
    }
    if let Some(all) = &expect.data_contains_all {
        need(read, "dataContainsAll", "read")?;
        if let Some(missing) = all.iter().find(|w| !data.contains(w.as_str())) {
            return fail(format!("data {data:?} does not contain {missing:?}"));
        }
    }
    if let Some(want) = &expect.data_exact {
        need(read, "dataExact", "read")?;
        let got = chunks(result);
        if &got != want {
            return fail(format!("expected chunks {want:?}, got {got:?}"));
        }
    }
    if let Some(want) = expect.up_to_date {
        need(read, "upToDate", "read")?;
        if result.get("upToDate").and_then(Value::as_bool) != Some(want) {
            return fail(format!("expected upToDate {want}"));
        }
    }
    if let Some(want) = expect.stream_closed {
        need(read || head, "streamClosed", "read or head")?;
        if result.get("streamClosed").and_then(Value::as_bool) != Some(want) {
            return fail(format!("expected streamClosed {want}"));
        }
    }
    if let Some(want) = &expect.final_offset {
        need(close, "finalOffset", "close")?;
        if result.get("finalOffset").and_then(Value::as_str) != Some(want.as_str()) {
            return fail(format!("expected finalOffset {want:?}"));
        }
    }
    let n = chunks(result).len();
    if let Some(want) = expect.chunk_count {
        need(read, "chunkCount", "read")?;
        if n != want {
            return fail(format!("expected {want} chunk(s), got {n}"));
        }
    }
    if let Some(min) = expect.min_chunks {
        need(read, "minChunks", "read")?;
        if n < min {
            return fail(format!("expected at least {min} chunk(s), got {n}"));
        }
    }
    if let Some(want) = &expect.content_type {
        need(head, "contentType", "head")?;
        if result.get("contentType").and_then(Value::as_str) != Some(want.as_str()) {
            return fail(format!("expected content type {want:?}"));
        }
    }
    if let Some(want) = expect.has_offset {
        need(head, "hasOffset", "head")?;
        let has = result
            .get("offset")
            .and_then(Value::as_str)
            .is_some_and(|o| !o.is_empty());
        if has != want {
            return fail(format!("expected hasOffset {want}"));
        }
    }
    for (key, want) in [
        ("headersSent", &expect.headers_sent),
        ("paramsSent", &expect.params_sent),
    ] {
        let Some(want) = want else { continue };
        need(append || read, key, "append or read")?;
        let Some(got) = result.get(key).and_then(Value::as_object) else {
            return fail(format!("expected {key}, the result has none"));
        };
        for (name, value) in want {
            if got.get(name).and_then(Value::as_str) != Some(value.as_str()) {
                return fail(format!("expected {key}[{name:?}] = {value:?}"));
            }
        }
    }
    if let Some(want) = expect.duplicate {
        need(append, "duplicate", "append")?;
        if result.get("duplicate").and_then(Value::as_bool) != Some(want) {
            return fail(format!("expected duplicate {want}"));
        }
    }
    for (key, want) in [
        ("producerEpoch", expect.producer_epoch),
        ("producerSeq", expect.producer_seq),
        ("producerExpectedSeq", expect.producer_expected_seq),
        ("producerReceivedSeq", expect.producer_received_seq),
    ] {
        let Some(want) = want else { continue };
        need(append, key, "append")?;
        if result.get(key).and_then(Value::as_u64) != Some(want) {
            return fail(format!("expected {key} {want}"));
        }
    }
    if let Some(want) = expect.valid {
        if succeeded(result) != want {
            return fail(format!("expected valid {want}"));
        }
    }
    if let Some(want) = &expect.error_contains {
        if !error {
            return fail("`errorContains` expects an error, but the operation succeeded".into());
        }
        if !message.contains(want.as_str()) {
            return fail(format!("error message does not contain {want:?}"));
        }
    }
    if let Some(want) = expect.success {
        if succeeded(result) != want {
            return fail(format!("expected success {want}"));
        }
    }
    if let Some(want) = expect.error {
        if error != want {
            return fail(format!("expected error {want}"));
        }
    }
    let items = result.get("items").and_then(Value::as_array);
    if let Some(want) = expect.all_succeed {
        let all = match items {
            Some(items) => items.iter().all(succeeded),
            None => succeeded(result),
        };
        if all != want {
            return fail(format!("expected allSucceed {want}"));
        }
    }
    for (key, want, indices) in [
        ("succeedIndices", true, &expect.succeed_indices),
        ("failIndices", false, &expect.fail_indices),
    ] {
        let Some(indices) = indices else { continue };
        let Some(items) = items else {
            return fail(format!("`{key}` needs a batch result"));
        };
        for &i in indices {
            match items.get(i) {
                Some(item) if succeeded(item) == want => {}
                Some(item) => {
                    return fail(format!(
                        "item {i} {}: {}",
                        if want {
                            "did not succeed"
                        } else {
                            "did not fail"
                        },
                        summary(item)
                    ))
                }
                None => return fail(format!("`{key}`: there is no item {i}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(y: &str) -> Expect {
        Expect::from_yaml(y)
    }

    #[test]
    fn an_error_never_satisfies_data_checks() {
        let err = json!({"type": "error", "success": false, "errorCode": "INVALID_OFFSET",
                         "status": 400, "message": "bad"});
        for y in [
            "chunkCount: 0",
            "data: x",
            "upToDate: true",
            "streamClosed: true",
            "minChunks: 0",
            "contentType: a/b",
            "duplicate: false",
            "headersSent: {a: b}",
        ] {
            assert!(check(&e(y), &err).is_err(), "{y}");
        }
        assert!(check(&e("status: 400\nerrorCode: INVALID_OFFSET"), &err).is_ok());
        assert!(check(&e("messageContains: [BAD]"), &err).is_ok());
        assert!(
            check(&e("errorContains: BAD"), &err).is_err(),
            "case-sensitive"
        );
    }

    #[test]
    fn status_must_be_present() {
        let r = json!({"type": "close", "success": true, "finalOffset": "1"});
        assert!(check(&e("status: 200"), &r).is_err());
        let r = json!({"type": "close", "success": true, "status": 200, "finalOffset": "1"});
        assert!(check(&e("status: 200\nfinalOffset: '1'"), &r).is_ok());
    }

    #[test]
    fn reads_and_heads() {
        let r = json!({"type": "read", "success": true, "status": 200, "upToDate": true,
                       "streamClosed": false, "chunks": [{"data": "ab"}, {"data": "c"}]});
        assert!(check(
            &e("data: abc\nchunkCount: 2\nminChunks: 1\nupToDate: true\nstreamClosed: false"),
            &r
        )
        .is_ok());
        assert!(check(&e("dataExact: [ab, c]\ndataContainsAll: [b, c]"), &r).is_ok());
        assert!(check(&e("upToDate: false"), &r).is_err());
        let h = json!({"type": "head", "success": true, "status": 200, "offset": "",
                       "streamClosed": true, "contentType": "text/plain"});
        assert!(check(
            &e("hasOffset: false\nstreamClosed: true\ncontentType: text/plain"),
            &h
        )
        .is_ok());
        assert!(check(&e("upToDate: true"), &h).is_err());
    }

    #[test]
    fn intent_keys_are_checked() {
        let batch = json!({"type": "append", "success": false, "status": 207, "items": [
            {"type": "append", "success": true}, {"type": "error", "success": false}]});
        assert!(check(
            &e("succeedIndices: [0]\nfailIndices: [1]\nallSucceed: false"),
            &batch
        )
        .is_ok());
        assert!(check(&e("allSucceed: true"), &batch).is_err());
        assert!(check(&e("failIndices: [0]"), &batch).is_err());
        let ok = json!({"type": "idempotent-append", "success": true, "status": 200});
        assert!(check(&e("success: true\nerror: false"), &ok).is_ok());
        assert!(check(&e("error: true"), &ok).is_err());
    }
}
