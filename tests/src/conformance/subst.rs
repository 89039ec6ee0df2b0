//! Test variables and `${...}` substitution, as the official runner defines them.
//!
//! Each case has its own variables. `${NAME}` is replaced by the variable's text;
//! `${NAME.field.sub}` walks into a stored object (a stored `head` result); `${randomUUID}` is a
//! fresh UUID v4 at each occurrence. An undefined variable is an error. Values are shown the
//! way JavaScript converts them to strings (`null` is empty, an object is `[object Object]`).

use serde_json::Value;
use std::collections::HashMap;

/// The variables of one case.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, Value>,
}

impl Vars {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (a string, or an object such as a stored `head` result).
    pub fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// `text` with every `${...}` replaced.
    ///
    /// # Errors
    /// An undefined variable, or a `${` without its `}`.
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}').filter(|&e| e > 0) else {
                // Not a reference (`${}` or no closing brace): copied verbatim.
                out.push_str(&rest[start..start + 2]);
                rest = after;
                continue;
            };
            let expr = &after[..end];
            out.push_str(&self.resolve(expr)?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(&self, expr: &str) -> Result<String, String> {
        if expr == "randomUUID" {
            return Ok(random_uuid());
        }
        let mut parts = expr.split('.');
        let name = parts.next().unwrap_or("");
        let mut value = match self.values.get(name) {
            Some(v) => v,
            None => return Err(format!("Undefined variable: {name} (in ${{{expr}}})")),
        };
        for field in parts {
            if value.is_null() {
                break;
            }
            value = value.get(field).unwrap_or(&Value::Null);
        }
        Ok(js_string(value))
    }
}

/// A JSON value converted to text as JavaScript's `String(value)` does.
pub fn js_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// A random UUID (version 4, RFC 9562), from OS randomness.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time and a counter (unique, not random).
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b[..8].copy_from_slice(&nanos.to_le_bytes());
        b[8..].copy_from_slice(
            &(N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id())).to_le_bytes(),
        );
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn substitutes_variables_and_fields() {
        let mut v = Vars::new();
        v.set("p", json!("/s-1"));
        v.set("head", json!({"offset": "0_5", "n": 3, "none": null}));
        assert_eq!(v.substitute("${p}/x").unwrap(), "/s-1/x");
        assert_eq!(v.substitute("a${head.offset}b${head.n}").unwrap(), "a0_5b3");
        assert_eq!(v.substitute("${head}").unwrap(), "[object Object]");
        assert_eq!(v.substitute("${head.none.deeper}").unwrap(), "");
        assert_eq!(v.substitute("${head.missing}").unwrap(), "");
        assert_eq!(
            v.substitute("no refs, $ {x} ${}").unwrap(),
            "no refs, $ {x} ${}"
        );
        let e = v.substitute("${nope}").unwrap_err();
        assert!(e.contains("Undefined variable: nope"), "{e}");
    }

    #[test]
    fn random_uuids_are_v4_and_fresh() {
        let v = Vars::new();
        let a = v.substitute("${randomUUID}").unwrap();
        let b = v.substitute("${randomUUID}").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
