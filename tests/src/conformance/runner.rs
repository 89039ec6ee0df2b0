//! Runs one conformance case: its actions through the [`Adapter`] (in process, as JSON
//! commands and replies, exactly as over the adapter protocol) or as direct HTTP requests to the
//! reference server, and its expectations checked strictly ([`super::expect`]).
//!
//! The rules, and where they differ from the official runner's:
//!
//! - every case runs, including those marked `skip` in the YAML (the skip reason is noted);
//! - a set-up step must succeed unless its expectations say it fails (the official runner
//!   ignores set-up errors); expectations written on set-up steps are checked;
//! - an operation without `expect` must succeed (the official runner ignores its result);
//! - clean-up steps run only after the operations passed, and their outcome is ignored;
//! - direct HTTP actions that prepare the case (`server-close`, `inject-error`,
//!   `clear-errors`) must be answered with a 2xx;
//! - `storeOffsetAs` also works on `head` (the official runner ignores it there);
//! - [`overrides`] replaces the expectations of a few cases, each with its reason.
//!
//! Offsets are never parsed or compared by value: they are stored and substituted as text.

use super::adapter::Adapter;
use super::expect::{self, is_error, read_data, summary};
use super::model::*;
use super::overrides;
use super::subst::{random_uuid, Vars};
use crate::drivers::DriverKind;
use crate::raw_http;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where and how a case runs.
#[derive(Debug, Clone)]
pub struct CaseEnv {
    /// The reference server's base URL (no trailing slash).
    pub server_url: String,
    /// The driver under test.
    pub driver: DriverKind,
    /// Held by cases that inject or clear faults: `clear-errors` clears every fault on the
    /// server, so such cases must not overlap on one server.
    pub fault_lock: Arc<Mutex<()>>,
    /// Which server `server_url` is: the embedded one gets its own overrides as well.
    pub target: Target,
}

/// The server a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The npm reference server.
    #[default]
    Reference,
    /// ds-tokio's embedded server (the ds-proto sim model over HTTP).
    Embedded,
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None` when the case passed, else why it failed.
    pub failure: Option<String>,
    /// Things worth knowing (YAML skip markers, overrides, loader warnings).
    pub notes: Vec<String>,
}

impl Verdict {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs `case` of `suite` on its own thread, failing it after `timeout`.
pub fn run_case_with_timeout(
    suite: &Suite,
    case: &Case,
    env: &CaseEnv,
    timeout: Duration,
) -> Verdict {
    let (tx, rx) = mpsc::channel();
    let (suite, case, env) = (suite.clone(), case.clone(), env.clone());
    let name = format!("{}/{}", suite.id, case.id);
    let spawned = std::thread::Builder::new()
        .name(format!("case {name}"))
        .spawn(move || {
            let _ = tx.send(run_case(&suite, &case, &env));
        });
    if let Err(e) = spawned {
        return Verdict {
            failure: Some(format!("cannot start the case's thread: {e}")),
            notes: Vec::new(),
        };
    }
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => Verdict {
            failure: Some(format!("{name} did not finish within {timeout:?}")),
            notes: Vec::new(),
        },
        Err(mpsc::RecvTimeoutError::Disconnected) => Verdict {
            failure: Some(format!("{name} panicked")),
            notes: Vec::new(),
        },
    }
}

/// Runs `case` of `suite` (with its override, if any) through `env.driver`.
pub fn run_case(suite: &Suite, case: &Case, env: &CaseEnv) -> Verdict {
    let mut notes: Vec<String> = suite.warnings.clone();
    let mut case = case.clone();
    if let Some(skip) = &case.skip {
        let reason = match skip {
            Skip::Flag(false) => None,
            Skip::Flag(true) => Some("no reason given".to_owned()),
            Skip::Reason(r) => Some(r.clone()),
        };
        if let Some(r) = reason {
            notes.push(format!("marked skip in the YAML ({r}); run anyway"));
        }
    }
    if let Some(o) = overrides::find(&suite.id, &case.id) {
        if let Err(e) = overrides::apply(o, &mut case) {
            return Verdict {
                failure: Some(e),
                notes,
            };
        }
        notes.push(format!("override: {}", o.instead));
    }
    if env.target == Target::Embedded {
        if let Some(o) = overrides::find_in(overrides::EMBEDDED_OVERRIDES, &suite.id, &case.id) {
            if let Err(e) = overrides::apply(o, &mut case) {
                return Verdict {
                    failure: Some(e),
                    notes,
                };
            }
            notes.push(format!("embedded-server override: {}", o.instead));
        }
    }
    let failure = Runner::new(env).run(suite, &case).err();
    Verdict { failure, notes }
}

/// Which list a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Operations,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Operations => "operations",
        }
    }
}

struct Runner<'a> {
    env: &'a CaseEnv,
    adapter: Arc<Mutex<Adapter>>,
    vars: Vars,
    background: HashMap<String, JoinHandle<Value>>,
}

fn lock(a: &Mutex<Adapter>) -> MutexGuard<'_, Adapter> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'a> Runner<'a> {
    fn new(env: &'a CaseEnv) -> Self {
        Runner {
            env,
            adapter: Arc::new(Mutex::new(Adapter::new(env.driver))),
            vars: Vars::new(),
            background: HashMap::new(),
        }
    }

    fn run(&mut self, suite: &Suite, case: &Case) -> Result<(), String> {
        let features = super::protocol::Features::all();
        if let Some(f) = suite
            .requires
            .iter()
            .chain(&case.requires)
            .find(|f| !features.has(f))
        {
            return Err(format!("the case requires an unknown feature {f:?}"));
        }
        let uses_faults = [&case.setup, &case.operations, &case.cleanup]
            .iter()
            .flat_map(|l| l.iter())
            .any(|op| matches!(op, Op::InjectError(_) | Op::ClearErrors(_)));
        let _faults = uses_faults.then(|| {
            self.env
                .fault_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        });

        let init = self.command(json!({"type": "init", "serverUrl": self.env.server_url}));
        if init.get("type").and_then(Value::as_str) != Some("init") || init["success"] != true {
            return Err(format!("init failed: {}", summary(&init)));
        }
        let outcome = self
            .steps(Phase::Setup, &case.setup)
            .and_then(|()| self.steps(Phase::Operations, &case.operations));
        if outcome.is_ok() {
            for op in &case.cleanup {
                let _ = self.step(op);
            }
        }
        // Let background reads that were never awaited finish (they end at their timeout).
        for (_, h) in self.background.drain() {
            let _ = h.join();
        }
        let _ = self.command(json!({"type": "shutdown"}));
        outcome
    }

    fn steps(&mut self, phase: Phase, ops: &[Op]) -> Result<(), String> {
        for (i, op) in ops.iter().enumerate() {
            let at = format!("{}[{i}] {}", phase.name(), op.action());
            let result = self.step(op).map_err(|e| format!("{at}: {e}"))?;
            let Some(result) = result else { continue };
            match op.expect() {
                Some(expect) => {
                    self.store(expect, op, &result)
                        .map_err(|e| format!("{at}: {e}"))?;
                    expect::check(expect, &result).map_err(|e| format!("{at}: {e}"))?;
                    if is_failure(&result) && !expect.expects_failure() {
                        return Err(format!("{at} failed: {}", summary(&result)));
                    }
                }
                None if is_failure(&result) => {
                    return Err(format!("{at} failed: {}", summary(&result)));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Applies `storeOffsetAs`, `storeDataAs` and `storeAs`.
    fn store(&mut self, expect: &Expect, op: &Op, result: &Value) -> Result<(), String> {
        let ok = result.get("success").and_then(Value::as_bool) == Some(true);
        if let Some(name) = &expect.store_offset_as {
            match result.get("offset").and_then(Value::as_str) {
                Some(o) if ok => self.vars.set(name, Value::String(o.to_owned())),
                _ if ok => {
                    return Err(format!(
                        "storeOffsetAs: the result has no offset: {}",
                        summary(result)
                    ))
                }
                // A failed step: the check that follows reports it.
                _ => {}
            }
        }
        if let Some(name) = &expect.store_data_as {
            if ok && matches!(op, Op::Read(_)) {
                self.vars.set(name, Value::String(read_data(result)));
            }
        }
        if let Some(name) = &expect.store_as {
            if ok {
                self.vars.set(name, result.clone());
            }
        }
        Ok(())
    }

    fn sub(&self, text: &str) -> Result<String, String> {
        self.vars.substitute(text)
    }

    fn command(&self, command: Value) -> Value {
        lock(&self.adapter).handle_value(command).to_json()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.env.server_url, path)
    }

    /// Runs one step: `Ok(Some(result))` for actions with a result, `Ok(None)` for the others,
    /// `Err` for a runner-level failure (an undefined variable, a failed direct request, a
    /// failed assertion, ...).
    fn step(&mut self, op: &Op) -> Result<Option<Value>, String> {
        Ok(Some(match op {
            Op::Create(o) => {
                let path = match &o.path {
                    Some(p) => self.sub(p)?,
                    None => format!("/test-stream-{}", random_uuid()),
                };
                if let Some(name) = &o.as_var {
                    self.vars.set(name, Value::String(path.clone()));
                }
                let mut c = obj(&[("type", json!("create")), ("path", json!(path))]);
                put(&mut c, "contentType", &o.content_type);
                put(&mut c, "ttlSeconds", &o.ttl_seconds);
                put(&mut c, "expiresAt", &o.expires_at);
                put(&mut c, "headers", &o.headers);
                put(&mut c, "closed", &o.closed);
                put(&mut c, "data", &o.data);
                self.command(Value::Object(c))
            }
            Op::Connect(o) => self.path_command("connect", o)?,
            Op::Head(o) => self.path_command("head", o)?,
            Op::Delete(o) => self.path_command("delete", o)?,
            Op::Append(o) => {
                let text = if let Some(j) = &o.json {
                    compact_json(j)?
                } else {
                    match &o.data {
                        Some(d) if !d.is_empty() => self.sub(d)?,
                        _ => String::new(),
                    }
                };
                let data = o.binary_data.clone().unwrap_or(text);
                let binary = o.binary_data.as_ref().is_some_and(|b| !b.is_empty());
                let mut c = obj(&[
                    ("type", json!("append")),
                    ("path", json!(self.sub(&o.path)?)),
                    ("data", json!(data)),
                    ("binary", json!(binary)),
                ]);
                put(&mut c, "seq", &o.seq);
                put(&mut c, "headers", &o.headers);
                self.command(Value::Object(c))
            }
            Op::AppendBatch(o) => {
                let path = self.sub(&o.path)?;
                let mut items = Vec::new();
                for item in &o.items {
                    let data = item
                        .binary_data
                        .clone()
                        .or_else(|| item.data.clone())
                        .unwrap_or_default();
                    let binary = item.binary_data.as_ref().is_some_and(|b| !b.is_empty());
                    let mut c = obj(&[
                        ("type", json!("append")),
                        ("path", json!(path)),
                        ("data", json!(data)),
                        ("binary", json!(binary)),
                    ]);
                    put(&mut c, "seq", &item.seq);
                    put(&mut c, "headers", &o.headers);
                    items.push(self.command(Value::Object(c)));
                }
                let all = items.iter().all(|r| r["success"] == true);
                json!({"type": "append", "success": all, "status": if all { 200 } else { 207 },
                       "items": items})
            }
            Op::IdempotentAppend(o) => {
                let mut c = obj(&[
                    ("type", json!("idempotent-append")),
                    ("path", json!(self.sub(&o.path)?)),
                    ("data", json!(self.sub(&o.data)?)),
                    ("producerId", json!(o.producer_id)),
                    ("epoch", json!(o.epoch.unwrap_or(0))),
                    ("autoClaim", json!(o.auto_claim.unwrap_or(false))),
                ]);
                put(&mut c, "headers", &o.headers);
                self.command(Value::Object(c))
            }
            Op::IdempotentAppendBatch(o) => {
                let items = o
                    .items
                    .iter()
                    .map(|i| self.sub(&i.data))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut c = obj(&[
                    ("type", json!("idempotent-append-batch")),
                    ("path", json!(self.sub(&o.path)?)),
                    ("items", json!(items)),
                    ("producerId", json!(o.producer_id)),
                    ("epoch", json!(o.epoch.unwrap_or(0))),
                    ("autoClaim", json!(o.auto_claim.unwrap_or(false))),
                ]);
                put(&mut c, "maxInFlight", &o.max_in_flight);
                put(&mut c, "headers", &o.headers);
                self.command(Value::Object(c))
            }
            Op::IdempotentClose(o) => {
                let mut c = obj(&[
                    ("type", json!("idempotent-close")),
                    ("path", json!(self.sub(&o.path)?)),
                    ("producerId", json!(o.producer_id)),
                    ("epoch", json!(o.epoch.unwrap_or(0))),
                    ("autoClaim", json!(o.auto_claim.unwrap_or(false))),
                ]);
                if let Some(d) = &o.data {
                    let d = self.sub(d)?;
                    if !d.is_empty() {
                        c.insert("data".into(), json!(d));
                    }
                }
                put(&mut c, "headers", &o.headers);
                self.command(Value::Object(c))
            }
            Op::IdempotentDetach(o) => {
                let mut c = obj(&[
                    ("type", json!("idempotent-detach")),
                    ("path", json!(self.sub(&o.path)?)),
                    ("producerId", json!(o.producer_id)),
                    ("epoch", json!(o.epoch.unwrap_or(0))),
                ]);
                put(&mut c, "headers", &o.headers);
                self.command(Value::Object(c))
            }
            Op::Read(o) => {
                let mut c = obj(&[("type", json!("read")), ("path", json!(self.sub(&o.path)?))]);
                if let Some(off) = o.offset.as_deref().filter(|s| !s.is_empty()) {
                    c.insert("offset".into(), json!(self.sub(off)?));
                }
                match &o.live {
                    Some(Live::Flag(b)) => {
                        c.insert("live".into(), json!(b));
                    }
                    Some(Live::Mode(m)) => {
                        c.insert("live".into(), json!(m));
                    }
                    None => {}
                }
                put(&mut c, "timeoutMs", &o.timeout_ms);
                put(&mut c, "maxChunks", &o.max_chunks);
                put(&mut c, "waitForUpToDate", &o.wait_for_up_to_date);
                put(&mut c, "headers", &o.headers);
                if let (Some(true), Some(name)) = (o.background, &o.as_ref) {
                    let adapter = Arc::clone(&self.adapter);
                    let command = Value::Object(c);
                    let handle = std::thread::Builder::new()
                        .name(format!("background read {name}"))
                        .spawn(move || lock(&adapter).handle_value(command).to_json())
                        .map_err(|e| format!("cannot start a background read: {e}"))?;
                    self.background.insert(name.clone(), handle);
                    return Ok(None);
                }
                self.command(Value::Object(c))
            }
            Op::Close(o) => {
                if o.headers.is_some() {
                    return Err("`close` has no headers in the adapter protocol".into());
                }
                let mut c = obj(&[
                    ("type", json!("close")),
                    ("path", json!(self.sub(&o.path)?)),
                ]);
                put(&mut c, "data", &o.data);
                put(&mut c, "contentType", &o.content_type);
                self.command(Value::Object(c))
            }
            Op::ServerClose(o) => self.server_close(o)?,
            Op::ServerAppend(o) => self.server_append(o)?,
            Op::Wait(o) => {
                std::thread::sleep(Duration::from_millis(o.ms));
                return Ok(None);
            }
            Op::Await(o) => {
                let handle = self.background.remove(&o.reference).ok_or_else(|| {
                    format!("No background operation found with ref: {}", o.reference)
                })?;
                handle
                    .join()
                    .map_err(|_| format!("background read {} panicked", o.reference))?
            }
            Op::Assert(o) => {
                self.assert(o)?;
                return Ok(None);
            }
            Op::InjectError(o) => {
                let mut fault = o.clone();
                fault.path = self.sub(&o.path)?;
                fault.count = Some(o.count.unwrap_or(1));
                let body = serde_json::to_vec(&fault).map_err(|e| e.to_string())?;
                let url = self.url("/_test/inject-error");
                let resp =
                    raw_http::request("POST", &url, &[("Content-Type", "application/json")], &body)
                        .map_err(|e| format!("Failed to inject fault: {e}"))?;
                if !(200..300).contains(&resp.status) {
                    return Err(format!(
                        "Failed to inject fault: {} {}",
                        resp.status,
                        resp.body_text()
                    ));
                }
                return Ok(None);
            }
            Op::ClearErrors(_) => {
                let url = self.url("/_test/inject-error");
                let resp = raw_http::request("DELETE", &url, &[], b"")
                    .map_err(|e| format!("Failed to clear errors: {e}"))?;
                if !(200..300).contains(&resp.status) {
                    return Err(format!("Failed to clear errors: {}", resp.status));
                }
                return Ok(None);
            }
            Op::SetDynamicHeader(o) => {
                let mut c = obj(&[
                    ("type", json!("set-dynamic-header")),
                    ("name", json!(o.name)),
                    ("valueType", json!(o.value_type)),
                ]);
                put(&mut c, "initialValue", &o.initial_value);
                self.command(Value::Object(c))
            }
            Op::SetDynamicParam(o) => self.command(json!({
                "type": "set-dynamic-param", "name": o.name, "valueType": o.value_type
            })),
            Op::ClearDynamic(_) => self.command(json!({"type": "clear-dynamic"})),
            Op::Validate(o) => {
                let target = to_json_value(&o.target)?;
                self.command(json!({"type": "validate", "target": target}))
            }
            Op::Set(o) => {
                let value = self.sub(&o.value)?;
                self.vars.set(&o.name, Value::String(value));
                return Ok(None);
            }
        }))
    }

    fn path_command(&self, ty: &str, o: &PathOp) -> Result<Value, String> {
        let mut c = obj(&[("type", json!(ty)), ("path", json!(self.sub(&o.path)?))]);
        put(&mut c, "headers", &o.headers);
        Ok(self.command(Value::Object(c)))
    }

    /// Another writer appends: `HEAD` for the content type, then a plain `POST`.
    fn server_append(&mut self, o: &ServerAppendOp) -> Result<Value, String> {
        let url = self.url(&self.sub(&o.path)?);
        let data = self.sub(&o.data)?;
        let head = raw_http::request("HEAD", &url, &[], b"")
            .map_err(|e| format!("Server append failed: {e}"))?;
        let content_type = head
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned();
        let mut headers: Vec<(String, String)> = vec![("content-type".into(), content_type)];
        for (k, v) in o.headers.iter().flatten() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            headers.push((k.clone(), v.clone()));
        }
        if let Some(id) = &o.producer_id {
            headers.push(("Producer-Id".into(), id.clone()));
        }
        if let Some(e) = o.producer_epoch {
            headers.push(("Producer-Epoch".into(), e.to_string()));
        }
        if let Some(s) = o.producer_seq {
            headers.push(("Producer-Seq".into(), s.to_string()));
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = raw_http::request("POST", &url, &refs, data.as_bytes())
            .map_err(|e| format!("Server append failed: {e}"))?;
        let mut r = obj(&[
            ("type", json!("append")),
            ("success", json!(true)),
            ("status", json!(resp.status)),
            ("duplicate", json!(resp.status == 204)),
        ]);
        if let Some(off) = resp.header("stream-next-offset") {
            r.insert("offset".into(), json!(off));
        }
        for (key, header) in [
            ("producerEpoch", "producer-epoch"),
            ("producerSeq", "producer-seq"),
            ("producerExpectedSeq", "producer-expected-seq"),
            ("producerReceivedSeq", "producer-received-seq"),
        ] {
            if let Some(n) = resp
                .header(header)
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                r.insert(key.into(), json!(n));
            }
        }
        Ok(Value::Object(r))
    }

    /// Another writer closes the stream (`POST` with `Stream-Closed: true`).
    fn server_close(&mut self, o: &ServerCloseOp) -> Result<Value, String> {
        let url = self.url(&self.sub(&o.path)?);
        let mut headers: Vec<(String, String)> = vec![("Stream-Closed".into(), "true".into())];
        for (k, v) in o.headers.iter().flatten() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            headers.push((k.clone(), v.clone()));
        }
        let body = o.data.clone().unwrap_or_default();
        if !body.is_empty() {
            let ct = o
                .content_type
                .clone()
                .unwrap_or_else(|| "text/plain;charset=UTF-8".to_owned());
            headers.push(("content-type".into(), ct));
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = raw_http::request("POST", &url, &refs, body.as_bytes())
            .map_err(|e| format!("Server close failed: {e}"))?;
        if !(200..300).contains(&resp.status) {
            return Err(format!(
                "Server close failed: {} {}",
                resp.status,
                resp.body_text()
            ));
        }
        Ok(json!({
            "type": "close", "success": true, "status": resp.status,
            "finalOffset": resp.header("stream-next-offset").unwrap_or(""),
        }))
    }

    fn assert(&self, o: &AssertOp) -> Result<(), String> {
        let fail = |default: String| Err(o.message.clone().unwrap_or(default));
        if let Some(c) = &o.equals {
            let (l, r) = (self.sub(&c.left)?, self.sub(&c.right)?);
            if l != r {
                return fail(format!("Assertion failed: expected {l:?} to equal {r:?}"));
            }
        }
        if let Some(c) = &o.not_equals {
            let (l, r) = (self.sub(&c.left)?, self.sub(&c.right)?);
            if l == r {
                return fail(format!(
                    "Assertion failed: expected {l:?} not to equal {r:?}"
                ));
            }
        }
        if let Some(c) = &o.contains {
            let (v, s) = (self.sub(&c.value)?, self.sub(&c.substring)?);
            if !v.contains(&s) {
                return fail(format!("Assertion failed: expected {v:?} to contain {s:?}"));
            }
        }
        if let Some(c) = &o.matches {
            return Err(format!(
                "assert `matches` ({:?}) is not supported by this runner (no case uses it)",
                c.pattern
            ));
        }
        Ok(())
    }
}

/// Whether a result is a failure: an error reply, or a batch whose items did not all succeed.
fn is_failure(r: &Value) -> bool {
    is_error(r) || r.get("success").and_then(Value::as_bool) == Some(false)
}

fn obj(fields: &[(&str, Value)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Adds `key` when `value` is present.
fn put<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(v) = value {
        if let Ok(v) = serde_json::to_value(v) {
            m.insert(key.to_owned(), v);
        }
    }
}
