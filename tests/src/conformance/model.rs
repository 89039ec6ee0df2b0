//! The YAML case files: suites of cases, each a list of set-up, operation and clean-up actions
//! with expectations.
//!
//! Every action and every expectation key the official runner knows is modelled; anything else
//! is refused when the file is loaded (`deny_unknown_fields`), so a new key in a future suite is
//! noticed rather than silently ignored. Like the official loader (the `yaml` npm package), a
//! key repeated in one mapping keeps its last value (one case repeats `expect:`); the loader
//! records such repetitions in [`Suite::warnings`].

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Headers by name.
pub type Headers = BTreeMap<String, String>;

/// One YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite id (`consumer-errors`).
    pub id: String,
    /// Its title.
    pub name: String,
    /// What it covers.
    #[serde(default)]
    pub description: Option<String>,
    /// `producer`, `consumer` or `lifecycle`.
    pub category: String,
    /// Tags for filtering.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Features every case needs.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The cases, in file order.
    pub tests: Vec<Case>,
    /// The file it was loaded from.
    #[serde(skip)]
    pub file: PathBuf,
    /// Oddities found while loading (repeated keys).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `skip: true` or `skip: "reason"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Skip {
    /// A flag.
    Flag(bool),
    /// A reason.
    Reason(String),
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// The case id, unique within its suite.
    pub id: String,
    /// Its title.
    pub name: String,
    /// What it checks.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags for filtering.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Marked skipped in the YAML (this runner runs it anyway).
    #[serde(default)]
    pub skip: Option<Skip>,
    /// Features the case needs.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Informational (the official runner ignores it).
    #[serde(default)]
    pub required_features: Vec<String>,
    /// Actions that prepare the case.
    #[serde(default)]
    pub setup: Vec<Op>,
    /// The actions under test.
    pub operations: Vec<Op>,
    /// Actions that tidy up (their outcome is ignored).
    #[serde(default)]
    pub cleanup: Vec<Op>,
}

/// One action.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Op {
    /// Create a stream through the client.
    Create(CreateOp),
    /// Connect to a stream through the client.
    Connect(PathOp),
    /// Append through the client.
    Append(AppendOp),
    /// Several appends through the client, one after the other.
    AppendBatch(AppendBatchOp),
    /// An append through an idempotent producer.
    IdempotentAppend(IdempotentAppendOp),
    /// Several appends through a fresh idempotent producer.
    IdempotentAppendBatch(IdempotentAppendBatchOp),
    /// Close through an idempotent producer.
    IdempotentClose(IdempotentCloseOp),
    /// Detach an idempotent producer.
    IdempotentDetach(IdempotentDetachOp),
    /// Read through the client.
    Read(ReadOp),
    /// `HEAD` through the client.
    Head(PathOp),
    /// Delete through the client.
    Delete(PathOp),
    /// Close through the client.
    Close(CloseOp),
    /// Close by a direct HTTP request (another writer).
    ServerClose(ServerCloseOp),
    /// Append by a direct HTTP request (another writer).
    ServerAppend(ServerAppendOp),
    /// Sleep.
    Wait(WaitOp),
    /// Wait for a background read.
    Await(AwaitOp),
    /// Compare texts.
    Assert(AssertOp),
    /// Register a fault on the reference server.
    InjectError(InjectErrorOp),
    /// Clear every fault on the reference server.
    ClearErrors(EmptyOp),
    /// Add a dynamic header to the client.
    SetDynamicHeader(DynamicHeaderOp),
    /// Add a dynamic query parameter to the client.
    SetDynamicParam(DynamicParamOp),
    /// Remove the dynamic headers and parameters.
    ClearDynamic(EmptyOp),
    /// Validate client options.
    Validate(ValidateOp),
    /// Set a variable.
    Set(SetOp),
}

impl Op {
    /// The YAML `action` name.
    pub fn action(&self) -> &'static str {
        match self {
            Op::Create(_) => "create",
            Op::Connect(_) => "connect",
            Op::Append(_) => "append",
            Op::AppendBatch(_) => "append-batch",
            Op::IdempotentAppend(_) => "idempotent-append",
            Op::IdempotentAppendBatch(_) => "idempotent-append-batch",
            Op::IdempotentClose(_) => "idempotent-close",
            Op::IdempotentDetach(_) => "idempotent-detach",
            Op::Read(_) => "read",
            Op::Head(_) => "head",
            Op::Delete(_) => "delete",
            Op::Close(_) => "close",
            Op::ServerClose(_) => "server-close",
            Op::ServerAppend(_) => "server-append",
            Op::Wait(_) => "wait",
            Op::Await(_) => "await",
            Op::Assert(_) => "assert",
            Op::InjectError(_) => "inject-error",
            Op::ClearErrors(_) => "clear-errors",
            Op::SetDynamicHeader(_) => "set-dynamic-header",
            Op::SetDynamicParam(_) => "set-dynamic-param",
            Op::ClearDynamic(_) => "clear-dynamic",
            Op::Validate(_) => "validate",
            Op::Set(_) => "set",
        }
    }

    /// The operation's expectations, if it can have any.
    pub fn expect(&self) -> Option<&Expect> {
        self.expect_slot().and_then(|e| e.as_ref())
    }

    /// The operation's expectation slot, for actions that accept one.
    pub fn expect_slot(&self) -> Option<&Option<Expect>> {
        Some(match self {
            Op::Create(o) => &o.expect,
            Op::Connect(o) | Op::Head(o) | Op::Delete(o) => &o.expect,
            Op::Append(o) => &o.expect,
            Op::AppendBatch(o) => &o.expect,
            Op::IdempotentAppend(o) => &o.expect,
            Op::IdempotentAppendBatch(o) => &o.expect,
            Op::IdempotentClose(o) => &o.expect,
            Op::IdempotentDetach(o) => &o.expect,
            Op::Read(o) => &o.expect,
            Op::Close(o) => &o.expect,
            Op::ServerClose(o) => &o.expect,
            Op::ServerAppend(o) => &o.expect,
            Op::Await(o) => &o.expect,
            Op::Validate(o) => &o.expect,
            _ => return None,
        })
    }

    /// Mutable access to the expectation slot.
    pub fn expect_slot_mut(&mut self) -> Option<&mut Option<Expect>> {
        Some(match self {
            Op::Create(o) => &mut o.expect,
            Op::Connect(o) | Op::Head(o) | Op::Delete(o) => &mut o.expect,
            Op::Append(o) => &mut o.expect,
            Op::AppendBatch(o) => &mut o.expect,
            Op::IdempotentAppend(o) => &mut o.expect,
            Op::IdempotentAppendBatch(o) => &mut o.expect,
            Op::IdempotentClose(o) => &mut o.expect,
            Op::IdempotentDetach(o) => &mut o.expect,
            Op::Read(o) => &mut o.expect,
            Op::Close(o) => &mut o.expect,
            Op::ServerClose(o) => &mut o.expect,
            Op::ServerAppend(o) => &mut o.expect,
            Op::Await(o) => &mut o.expect,
            Op::Validate(o) => &mut o.expect,
            _ => return None,
        })
    }
}

/// `create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOp {
    /// The path (`/test-stream-<uuid>` when absent).
    pub path: Option<String>,
    /// Store the path in this variable.
    #[serde(rename = "as")]
    pub as_var: Option<String>,
    /// The content type.
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`.
    pub expires_at: Option<String>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Create it closed.
    pub closed: Option<bool>,
    /// Initial content (not substituted).
    pub data: Option<String>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// An action on a path: `connect`, `head`, `delete`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathOp {
    /// The stream path.
    pub path: String,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `append`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppendOp {
    /// The stream path.
    pub path: String,
    /// Text data (substituted).
    pub data: Option<String>,
    /// A JSON value, sent as its compact text.
    pub json: Option<Value>,
    /// Base64 data.
    pub binary_data: Option<String>,
    /// `Stream-Seq`.
    pub seq: Option<u64>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// One item of `append-batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchItem {
    /// Text data (not substituted).
    pub data: Option<String>,
    /// Base64 data.
    pub binary_data: Option<String>,
    /// `Stream-Seq`.
    pub seq: Option<u64>,
}

/// `append-batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppendBatchOp {
    /// The stream path.
    pub path: String,
    /// The appends.
    pub items: Vec<BatchItem>,
    /// Extra headers for every append.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `idempotent-append`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdempotentAppendOp {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The epoch (0).
    pub epoch: Option<u64>,
    /// The message (substituted).
    pub data: String,
    /// Claim the next epoch when fenced.
    pub auto_claim: Option<bool>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// One item of `idempotent-append-batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataItem {
    /// The message (substituted).
    pub data: String,
}

/// `idempotent-append-batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdempotentAppendBatchOp {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The epoch (0).
    pub epoch: Option<u64>,
    /// The messages.
    pub items: Vec<DataItem>,
    /// Claim the next epoch when fenced.
    pub auto_claim: Option<bool>,
    /// Batches in flight.
    pub max_in_flight: Option<u64>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `idempotent-close`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdempotentCloseOp {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The epoch (0).
    pub epoch: Option<u64>,
    /// A final message (substituted).
    pub data: Option<String>,
    /// Claim the next epoch when fenced.
    pub auto_claim: Option<bool>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `idempotent-detach`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdempotentDetachOp {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The epoch (0).
    pub epoch: Option<u64>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `live:` of a read: a flag or a mode name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Live {
    /// `false` (catch-up) or `true` (auto).
    Flag(bool),
    /// `long-poll` or `sse`.
    Mode(String),
}

/// `read`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadOp {
    /// The stream path.
    pub path: String,
    /// The start offset (substituted).
    pub offset: Option<String>,
    /// The mode.
    pub live: Option<Live>,
    /// How long to collect.
    pub timeout_ms: Option<u64>,
    /// Stop after this many chunks.
    pub max_chunks: Option<u64>,
    /// Stop when up to date.
    pub wait_for_up_to_date: Option<bool>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Run in the background (with `as`).
    pub background: Option<bool>,
    /// The background read's name, for `await`.
    #[serde(rename = "as")]
    pub as_ref: Option<String>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `close`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloseOp {
    /// The stream path.
    pub path: String,
    /// A final body (not substituted).
    pub data: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Extra headers (the official runner does not forward them).
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `server-close`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerCloseOp {
    /// The stream path.
    pub path: String,
    /// A final body.
    pub data: Option<String>,
    /// Its content type.
    pub content_type: Option<String>,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `server-append`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerAppendOp {
    /// The stream path.
    pub path: String,
    /// The body (substituted).
    pub data: String,
    /// Extra headers.
    pub headers: Option<Headers>,
    /// `Producer-Id`.
    pub producer_id: Option<String>,
    /// `Producer-Epoch`.
    pub producer_epoch: Option<u64>,
    /// `Producer-Seq`.
    pub producer_seq: Option<u64>,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `wait`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitOp {
    /// Milliseconds.
    pub ms: u64,
}

/// `await`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwaitOp {
    /// The background read's name.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// Two texts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftRight {
    /// The first (substituted).
    pub left: String,
    /// The second (substituted).
    pub right: String,
}

/// `contains` of an assertion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainsCheck {
    /// The text (substituted).
    pub value: String,
    /// What it must contain (substituted).
    pub substring: String,
}

/// `matches` of an assertion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchesCheck {
    /// The text (substituted).
    pub value: String,
    /// A regular expression (not substituted).
    pub pattern: String,
}

/// `assert`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssertOp {
    /// Equal texts.
    pub equals: Option<LeftRight>,
    /// Different texts.
    pub not_equals: Option<LeftRight>,
    /// A substring.
    pub contains: Option<ContainsCheck>,
    /// A pattern.
    pub matches: Option<MatchesCheck>,
    /// The failure message.
    pub message: Option<String>,
}

/// An SSE event to inject.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SseEvent {
    /// Its `event:` type.
    pub event_type: String,
    /// Its `data:`.
    pub data: String,
}

/// `inject-error`: a fault of the reference server's test endpoint.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InjectErrorOp {
    /// The stream path (substituted).
    pub path: String,
    /// Answer with this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How many requests it hits (1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `Retry-After` seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Delay before answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Drop the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_connection: Option<bool>,
    /// Cut the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_body_bytes: Option<u64>,
    /// Trigger probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Only this method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Corrupt the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_body: Option<bool>,
    /// Random extra delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// An SSE event sent first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject_sse_event: Option<SseEvent>,
}

/// An action without fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyOp {}

/// `set-dynamic-header`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynamicHeaderOp {
    /// The header.
    pub name: String,
    /// `counter`, `timestamp` or `token`.
    pub value_type: String,
    /// The token.
    pub initial_value: Option<String>,
}

/// `set-dynamic-param`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynamicParamOp {
    /// The parameter.
    pub name: String,
    /// `counter` or `timestamp`.
    pub value_type: String,
}

/// `validate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateOp {
    /// What to validate (sent as is).
    pub target: Value,
    /// Expectations.
    pub expect: Option<Expect>,
}

/// `set`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOp {
    /// The variable.
    pub name: String,
    /// Its value (substituted).
    pub value: String,
}

/// The expectations of an action: every key the official runner checks, plus the keys it
/// ignores but which state an intent (`success`, `error`, `allSucceed`, `succeedIndices`,
/// `failIndices`), which this runner checks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// The HTTP status.
    pub status: Option<u16>,
    /// The error code.
    pub error_code: Option<String>,
    /// Substrings of the error message (case-insensitive).
    pub message_contains: Option<Vec<String>>,
    /// The read's data, all chunks joined.
    pub data: Option<String>,
    /// A substring of the read's data.
    pub data_contains: Option<String>,
    /// Substrings of the read's data.
    pub data_contains_all: Option<Vec<String>>,
    /// The read's chunks, one by one.
    pub data_exact: Option<Vec<String>>,
    /// The read ended up to date.
    pub up_to_date: Option<bool>,
    /// The stream is closed (read: EOF; head: closed).
    pub stream_closed: Option<bool>,
    /// The close's final offset.
    pub final_offset: Option<String>,
    /// The number of chunks.
    pub chunk_count: Option<usize>,
    /// At least this many chunks.
    pub min_chunks: Option<usize>,
    /// The head's content type.
    pub content_type: Option<String>,
    /// The head has an offset.
    pub has_offset: Option<bool>,
    /// Dynamic headers sent.
    pub headers_sent: Option<BTreeMap<String, String>>,
    /// Dynamic parameters sent.
    pub params_sent: Option<BTreeMap<String, String>>,
    /// The append was a duplicate.
    pub duplicate: Option<bool>,
    /// `Producer-Epoch` of the answer.
    pub producer_epoch: Option<u64>,
    /// `Producer-Seq` of the answer.
    pub producer_seq: Option<u64>,
    /// `Producer-Expected-Seq` of the answer.
    pub producer_expected_seq: Option<u64>,
    /// `Producer-Received-Seq` of the answer.
    pub producer_received_seq: Option<u64>,
    /// The validation passed.
    pub valid: Option<bool>,
    /// A substring of the error message (case-sensitive).
    pub error_contains: Option<String>,
    /// Store the result's offset in this variable.
    pub store_offset_as: Option<String>,
    /// Store the read's data in this variable.
    pub store_data_as: Option<String>,
    /// Store the whole (head) result in this variable.
    pub store_as: Option<String>,
    /// The action succeeded (or failed).
    pub success: Option<bool>,
    /// The action failed (or succeeded).
    pub error: Option<bool>,
    /// Every item of a batch succeeded.
    pub all_succeed: Option<bool>,
    /// These items of an `append-batch` succeeded.
    pub succeed_indices: Option<Vec<usize>>,
    /// These items of an `append-batch` failed.
    pub fail_indices: Option<Vec<usize>>,
}

impl Expect {
    /// Parses expectations written in YAML (for overrides).
    ///
    /// # Panics
    /// If `yaml` is not a valid expectation mapping.
    pub fn from_yaml(yaml: &str) -> Expect {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("bad expectation {yaml:?}: {e}"))
    }

    /// Whether these expectations describe a failure (then an error result is what is
    /// expected, not a failure of the case).
    pub fn expects_failure(&self) -> bool {
        self.error_code.is_some()
            || self.message_contains.is_some()
            || self.error_contains.is_some()
            || self.valid == Some(false)
            || self.error == Some(true)
            || self.success == Some(false)
            || self.all_succeed == Some(false)
            || self.fail_indices.as_ref().is_some_and(|f| !f.is_empty())
            || self.status.is_some_and(|s| s >= 400)
    }
}

/// The environment variable naming the folder of the cases: `test-cases` of the official
/// client conformance suite, `packages/client-conformance-tests/test-cases` in a checkout of
/// <https://github.com/durable-streams/durable-streams>.
pub const CASES_ENV: &str = "DS_CONFORMANCE_CASES";

/// Where the cases are, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasesLocation {
    /// The folder of the cases: `$DS_CONFORMANCE_CASES`, or the default folder.
    Found(PathBuf),
    /// `$DS_CONFORMANCE_CASES` is not set and the default folder does not exist.
    Absent {
        /// The default folder looked in, `<workspace>/../shared/conformance/test-cases`.
        default: PathBuf,
    },
    /// `$DS_CONFORMANCE_CASES` is set but names no folder (a mistake: it is reported, not
    /// replaced by the default).
    NotAFolder(PathBuf),
}

/// The folder the cases are looked for in when `$DS_CONFORMANCE_CASES` is not set:
/// `<workspace>/../shared/conformance/test-cases`.
pub fn default_cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("shared")
        .join("conformance")
        .join("test-cases")
}

/// Where the cases are: `$DS_CONFORMANCE_CASES` when set (it must name a folder), else
/// [`default_cases_dir`] if it exists.
pub fn locate_cases() -> CasesLocation {
    if let Some(dir) = std::env::var_os(CASES_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            CasesLocation::Found(dir)
        } else {
            CasesLocation::NotAFolder(dir)
        };
    }
    let default = default_cases_dir();
    if default.is_dir() {
        CasesLocation::Found(default)
    } else {
        CasesLocation::Absent { default }
    }
}

/// The folder of the cases, when [`locate_cases`] finds one.
pub fn cases_dir() -> Option<PathBuf> {
    match locate_cases() {
        CasesLocation::Found(dir) => Some(dir),
        _ => None,
    }
}

/// Every suite under `dir`: files ending in `.yaml` or `.yml`, walked depth-first with each
/// folder's entries in byte order (the official runner's order).
///
/// # Errors
/// An unreadable folder or file, or a file that is not a valid suite.
pub fn load_suites(dir: &Path) -> Result<Vec<Suite>, String> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files
        .iter()
        .map(|f| load_suite(f))
        .collect::<Result<Vec<_>, _>>()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads one suite file.
///
/// # Errors
/// An unreadable file, invalid YAML, or an unknown action or key.
pub fn load_suite(file: &Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut warnings = Vec::new();
    let tree = LastWins::deserialize(serde_norway::Deserializer::from_str(&text))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    collect_warnings(&tree.1, &mut warnings);
    let mut suite: Suite =
        serde_norway::from_value(tree.0).map_err(|e| format!("{}: {e}", file.display()))?;
    suite.file = file.to_owned();
    suite.warnings = warnings;
    Ok(suite)
}

fn collect_warnings(dups: &[String], out: &mut Vec<String>) {
    out.extend(
        dups.iter()
            .map(|k| format!("key `{k}` is repeated in one mapping; the last value is used")),
    );
}

/// A YAML document read with the official loader's rule for repeated keys (the last one wins),
/// and the repeated keys it saw.
struct LastWins(Value, Vec<String>);

impl<'de> Deserialize<'de> for LastWins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut dups = Vec::new();
        let v = d.deserialize_any(TreeVisitor { dups: &mut dups })?;
        Ok(LastWins(v, dups))
    }
}

struct TreeVisitor<'a> {
    dups: &'a mut Vec<String>,
}

impl<'de> de::DeserializeSeed<'de> for TreeVisitor<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(TreeVisitor {
            dups: &mut *self.dups,
        })? {
            items.push(v);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Mapping::new();
        while let Some(k) = map.next_key_seed(TreeVisitor {
            dups: &mut *self.dups,
        })? {
            let v = map.next_value_seed(TreeVisitor {
                dups: &mut *self.dups,
            })?;
            if m.insert(k.clone(), v).is_some() {
                self.dups
                    .push(k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned));
            }
        }
        Ok(Value::Mapping(m))
    }
}

/// A YAML value as compact JSON text, keys in the order written (the official runner's
/// `JSON.stringify` of a YAML `json:` value).
///
/// # Errors
/// A non-string key or a non-finite number.
pub fn compact_json(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(v, &mut out)?;
    Ok(out)
}

fn write_json(v: &Value, out: &mut String) -> Result<(), String> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let j = serde_json::Number::from_f64(f)
                    .ok_or_else(|| format!("{f} is not a JSON number"))?;
                out.push_str(&j.to_string());
            }
        }
        Value::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out)?;
            }
            out.push(']');
        }
        Value::Mapping(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = k
                    .as_str()
                    .ok_or_else(|| format!("JSON object keys must be strings, got {k:?}"))?;
                out.push_str(&serde_json::Value::String(key.to_owned()).to_string());
                out.push(':');
                write_json(item, out)?;
            }
            out.push('}');
        }
        Value::Tagged(t) => write_json(&t.value, out)?,
    }
    Ok(())
}

/// A YAML value as a JSON value (for `validate` targets).
///
/// # Errors
/// As [`compact_json`].
pub fn to_json_value(v: &Value) -> Result<serde_json::Value, String> {
    let text = compact_json(v)?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let y = "- action: close\n  path: x\n  expect:\n  expect:\n    status: 200\n";
        let tree = LastWins::deserialize(serde_norway::Deserializer::from_str(y)).unwrap();
        assert_eq!(tree.1, vec!["expect".to_owned()]);
        let ops: Vec<Op> = serde_norway::from_value(tree.0).unwrap();
        assert_eq!(ops[0].expect().unwrap().status, Some(200));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_norway::from_str::<Op>("action: read\npath: x\nexpect:\n  dataa: y\n")
            .unwrap_err();
        assert!(e.to_string().contains("dataa"), "{e}");
        assert!(serde_norway::from_str::<Op>("action: teleport\n").is_err());
        assert!(serde_norway::from_str::<Op>("action: head\npath: x\nbogus: 1\n").is_err());
    }

    #[test]
    fn json_keeps_key_order_and_is_compact() {
        let v: Value =
            serde_norway::from_str("{ b: 1, a: [1, 'x', null, true, 2.5], c: {z: 0} }").unwrap();
        assert_eq!(
            compact_json(&v).unwrap(),
            r#"{"b":1,"a":[1,"x",null,true,2.5],"c":{"z":0}}"#
        );
    }

    #[test]
    fn failure_expectations_are_recognised() {
        assert!(Expect::from_yaml("status: 404").expects_failure());
        assert!(Expect::from_yaml("errorCode: NOT_FOUND").expects_failure());
        assert!(Expect::from_yaml("valid: false").expects_failure());
        assert!(!Expect::from_yaml("status: 200\ndata: x").expects_failure());
        assert!(!Expect::from_yaml("valid: true").expects_failure());
    }
}
