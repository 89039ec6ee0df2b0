//! The official client-conformance adapter protocol: the commands a runner sends and the
//! replies an adapter writes, one JSON object per line.
//!
//! Field names follow the protocol (`camelCase`); optional fields that are absent are left out
//! of the JSON, never written as `null`. Integers that the protocol bounds by 2^53-1 (`seq`,
//! `epoch`) are 64-bit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Headers or query parameters, by name.
pub type StringMap = BTreeMap<String, String>;

/// A command from the runner. `type` selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Command {
    /// Must come first: the server to talk to. Resets the adapter's state.
    Init(InitCmd),
    /// Create a stream (`PUT`).
    Create(CreateCmd),
    /// Attach to an existing stream (learns its content type).
    Connect(PathCmd),
    /// A plain append.
    Append(AppendCmd),
    /// One append through the idempotent producer of `(path, producerId, epoch)`.
    IdempotentAppend(IdempotentAppendCmd),
    /// Several appends through a fresh idempotent producer.
    IdempotentAppendBatch(IdempotentAppendBatchCmd),
    /// Close the stream through the idempotent producer of `(path, producerId, epoch)`.
    IdempotentClose(IdempotentCloseCmd),
    /// Flush and forget the idempotent producer of `(path, producerId, epoch)`.
    IdempotentDetach(IdempotentDetachCmd),
    /// Read (catch-up, long-poll, SSE or auto) and collect chunks.
    Read(ReadCmd),
    /// Stream metadata (`HEAD`).
    Head(PathCmd),
    /// Delete the stream.
    Delete(PathCmd),
    /// Close the stream, optionally with a final body.
    Close(CloseCmd),
    /// Reply, then exit.
    Shutdown,
    /// Add or replace a header evaluated for every request.
    SetDynamicHeader(DynamicHeaderCmd),
    /// Add or replace a query parameter evaluated for every request.
    SetDynamicParam(DynamicParamCmd),
    /// Remove every dynamic header and parameter.
    ClearDynamic,
    /// Check client options without using them.
    Validate(ValidateCmd),
    /// Time one operation.
    Benchmark(BenchmarkCmd),
}

impl Command {
    /// The protocol's name of the command (its `type`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Create(_) => "create",
            Command::Connect(_) => "connect",
            Command::Append(_) => "append",
            Command::IdempotentAppend(_) => "idempotent-append",
            Command::IdempotentAppendBatch(_) => "idempotent-append-batch",
            Command::IdempotentClose(_) => "idempotent-close",
            Command::IdempotentDetach(_) => "idempotent-detach",
            Command::Read(_) => "read",
            Command::Head(_) => "head",
            Command::Delete(_) => "delete",
            Command::Close(_) => "close",
            Command::Shutdown => "shutdown",
            Command::SetDynamicHeader(_) => "set-dynamic-header",
            Command::SetDynamicParam(_) => "set-dynamic-param",
            Command::ClearDynamic => "clear-dynamic",
            Command::Validate(_) => "validate",
            Command::Benchmark(_) => "benchmark",
        }
    }
}

/// `init`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitCmd {
    /// The server's base URL, without a trailing slash.
    pub server_url: String,
    /// A per-operation timeout suggestion (unused by the official runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `create`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCmd {
    /// The stream path (relative to the server URL, starting with `/`).
    pub path: String,
    /// The content type (`application/octet-stream` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
    /// Create the stream closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    /// Initial content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `connect`, `head`, `delete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathCmd {
    /// The stream path.
    pub path: String,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `append`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendCmd {
    /// The stream path.
    pub path: String,
    /// The body: text, or base64 when `binary`.
    pub data: String,
    /// `data` is base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
    /// `Stream-Seq`, sent as its decimal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `idempotent-append`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotentAppendCmd {
    /// The stream path.
    pub path: String,
    /// One message (for JSON streams, one JSON text).
    pub data: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The producer's starting epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Claim the next epoch when fenced.
    #[serde(default)]
    pub auto_claim: bool,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `idempotent-append-batch`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotentAppendBatchCmd {
    /// The stream path.
    pub path: String,
    /// The messages, in order.
    pub items: Vec<String>,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The producer's starting epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Claim the next epoch when fenced.
    #[serde(default)]
    pub auto_claim: bool,
    /// Batches outstanding at once (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `idempotent-close`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotentCloseCmd {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The producer's starting epoch.
    #[serde(default)]
    pub epoch: u64,
    /// A final message, appended atomically with the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Claim the next epoch when fenced.
    #[serde(default)]
    pub auto_claim: bool,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `idempotent-detach`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotentDetachCmd {
    /// The stream path.
    pub path: String,
    /// `Producer-Id`.
    pub producer_id: String,
    /// The producer's starting epoch.
    #[serde(default)]
    pub epoch: u64,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// The `live` field of `read`: `false`/`true` (auto) or a mode name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Live {
    /// `false`: catch-up only; `true`: auto (catch up, then long-poll).
    Flag(bool),
    /// `"long-poll"` or `"sse"`.
    Mode(String),
}

/// `read`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadCmd {
    /// The stream path.
    pub path: String,
    /// Where to start: `-1` (default), `now`, or an offset the server returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// The read mode (catch-up when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
    /// How long to collect (5000 ms when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Stop after this many non-empty chunks (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunks: Option<u64>,
    /// Stop as soon as the reader is up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_up_to_date: Option<bool>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<StringMap>,
}

/// `close`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseCmd {
    /// The stream path.
    pub path: String,
    /// A final body, appended atomically with the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The content type of `data` (the stream's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// `set-dynamic-header`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicHeaderCmd {
    /// The header name, reported as given in `headersSent`.
    pub name: String,
    /// `counter`, `timestamp` or `token`.
    pub value_type: String,
    /// The token's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_value: Option<String>,
}

/// `set-dynamic-param`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicParamCmd {
    /// The parameter name.
    pub name: String,
    /// `counter` or `timestamp`.
    pub value_type: String,
}

/// `validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateCmd {
    /// `{"target": "retry-options" | "idempotent-producer", ...options}`.
    pub target: serde_json::Value,
}

/// `benchmark`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkCmd {
    /// Echoed in the reply.
    pub iteration_id: String,
    /// `{"op": ..., ...}`.
    pub operation: serde_json::Value,
}

/// The features an adapter claims in its `init` reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Client-side batching of appends.
    pub batching: bool,
    /// SSE reads.
    pub sse: bool,
    /// Long-poll reads.
    pub long_poll: bool,
    /// Auto reads (catch-up, then live).
    pub auto: bool,
    /// Streaming reads.
    pub streaming: bool,
    /// Dynamic headers and parameters.
    pub dynamic_headers: bool,
    /// Retry-options validation.
    pub retry_options: bool,
    /// Producer `maxBatchItems`.
    pub batch_items: bool,
    /// Zero limits are rejected (`maxBatchBytes: 0`).
    pub strict_zero_validation: bool,
}

impl Features {
    /// Every feature.
    pub fn all() -> Self {
        Features {
            batching: true,
            sse: true,
            long_poll: true,
            auto: true,
            streaming: true,
            dynamic_headers: true,
            retry_options: true,
            batch_items: true,
            strict_zero_validation: true,
        }
    }

    /// Whether the feature a YAML `requires` entry names is on (the names the official runner
    /// maps; an unknown name is off).
    pub fn has(&self, name: &str) -> bool {
        match name {
            "batching" => self.batching,
            "sse" => self.sse,
            "long-poll" | "longPoll" => self.long_poll,
            "auto" => self.auto,
            "streaming" => self.streaming,
            "dynamicHeaders" | "dynamic-headers" => self.dynamic_headers,
            "retryOptions" | "retry-options" => self.retry_options,
            "batchItems" | "batch-items" => self.batch_items,
            "strictZeroValidation" | "strict-zero-validation" => self.strict_zero_validation,
            _ => false,
        }
    }
}

/// One chunk of a `read` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadChunk {
    /// The chunk's data as text (UTF-8, lossily decoded; for JSON streams, one compact array).
    pub data: String,
    /// The offset after the chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

/// A reply. Successful replies carry their command's `type` and `success: true`; every
/// failure is an [`ErrorReply`] (`type: "error"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reply {
    /// `init`.
    Init(InitReply),
    /// `create`.
    Create(StatusReply),
    /// `connect`.
    Connect(StatusReply),
    /// `append`.
    Append(AppendReply),
    /// `idempotent-append`.
    IdempotentAppend(AppendReply),
    /// `idempotent-append-batch`.
    IdempotentAppendBatch(StatusReply),
    /// `idempotent-close`.
    IdempotentClose(CloseReply),
    /// `idempotent-detach`.
    IdempotentDetach(StatusReply),
    /// `read`.
    Read(ReadReply),
    /// `head`.
    Head(HeadReply),
    /// `delete`.
    Delete(StatusReply),
    /// `close`.
    Close(CloseReply),
    /// `shutdown`.
    Shutdown(Ack),
    /// `set-dynamic-header`.
    SetDynamicHeader(Ack),
    /// `set-dynamic-param`.
    SetDynamicParam(Ack),
    /// `clear-dynamic`.
    ClearDynamic(Ack),
    /// `validate`.
    Validate(Ack),
    /// `benchmark`.
    Benchmark(BenchmarkReply),
    /// Any failure.
    Error(ErrorReply),
}

impl Reply {
    /// The reply as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| {
            serde_json::json!({
                "type": "error", "success": false, "commandType": "init",
                "errorCode": "INTERNAL_ERROR", "message": format!("cannot serialize reply: {e}"),
            })
        })
    }

    /// The reply as one protocol line (no trailing newline). U+2028 and U+2029 are escaped, as
    /// the official runner does, so line-splitting tools never break a reply.
    pub fn to_line(&self) -> String {
        escape_separators(&self.to_json().to_string())
    }
}

/// Escapes U+2028 and U+2029 in serialized JSON as `\u2028` and `\u2029`.
pub fn escape_separators(json: &str) -> String {
    json.replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `success` alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Always `true`.
    pub success: bool,
}

impl Ack {
    /// A successful acknowledgement.
    pub fn ok() -> Self {
        Ack { success: true }
    }
}

/// The `init` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReply {
    /// `true`.
    pub success: bool,
    /// The client's name (includes the driver).
    pub client_name: String,
    /// The client's version.
    pub client_version: String,
    /// What the adapter supports.
    pub features: Features,
}

/// A reply with an HTTP status and an optional offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    /// `true`.
    pub success: bool,
    /// The status (201/200 for create; 200 otherwise).
    pub status: u16,
    /// The stream's tail offset, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

/// The `append` and `idempotent-append` reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendReply {
    /// `true`.
    pub success: bool,
    /// 200.
    pub status: u16,
    /// The tail offset after the append, when the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// Dynamic headers sent with the (last) request of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_sent: Option<StringMap>,
    /// Dynamic parameters sent with the (last) request of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_sent: Option<StringMap>,
    /// The server had already stored it (`204` to a producer append).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// `Producer-Epoch` echoed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_epoch: Option<u64>,
    /// `Producer-Seq` echoed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_seq: Option<u64>,
}

/// The `close` and `idempotent-close` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseReply {
    /// `true`.
    pub success: bool,
    /// 200. (The protocol's close reply has no status; it is added so a runner can check it.)
    pub status: u16,
    /// The stream's final offset (empty when the server did not send it).
    pub final_offset: String,
}

/// The `read` reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReply {
    /// `true`.
    pub success: bool,
    /// The status of the latest response (`204`: a long-poll ended without data). Absent
    /// when no response arrived before the read's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The non-empty chunks, in order.
    pub chunks: Vec<ReadChunk>,
    /// The reader's checkpoint: the offset after everything collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// The reader reached the tail, or the read waited `timeoutMs` without more data (the
    /// protocol's definition).
    pub up_to_date: bool,
    /// The read ended at its `timeoutMs` (not part of the official protocol; left out when
    /// `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// The stream is closed and everything was read (EOF).
    pub stream_closed: bool,
    /// Dynamic headers sent with the last request of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_sent: Option<StringMap>,
    /// Dynamic parameters sent with the last request of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_sent: Option<StringMap>,
}

/// The `head` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadReply {
    /// `true`.
    pub success: bool,
    /// 200.
    pub status: u16,
    /// The tail offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// The stream's content type, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Whether the stream is closed.
    pub stream_closed: bool,
}

/// Measurements of a `benchmark` reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkMetrics {
    /// Payload bytes moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_transferred: Option<u64>,
    /// Messages appended or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_processed: Option<u64>,
    /// Messages per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_second: Option<f64>,
    /// Bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
}

/// The `benchmark` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkReply {
    /// `true`.
    pub success: bool,
    /// The command's `iterationId`.
    pub iteration_id: String,
    /// Nanoseconds the measured operation took, as decimal text.
    pub duration_ns: String,
    /// What was moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BenchmarkMetrics>,
}

/// The failure reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    /// `false`.
    pub success: bool,
    /// The failed command's `type`.
    pub command_type: String,
    /// The HTTP status, when the failure was an HTTP answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// One of the protocol's error codes ([`codes`]).
    pub error_code: String,
    /// What happened (includes the stream URL for stream operations).
    pub message: String,
    /// Our error's kind, for diagnosis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorReply {
    /// An error reply without status or details.
    pub fn new(command_type: &str, code: &str, message: impl Into<String>) -> Self {
        ErrorReply {
            success: false,
            command_type: command_type.to_owned(),
            status: None,
            error_code: code.to_owned(),
            message: message.into(),
            details: None,
        }
    }
}

/// The protocol's error codes.
pub mod codes {
    /// Connection failed, refused or reset (after retries).
    pub const NETWORK_ERROR: &str = "NETWORK_ERROR";
    /// The operation timed out.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// A 409 that is neither a closure nor a sequence conflict.
    pub const CONFLICT: &str = "CONFLICT";
    /// 404.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// A `Stream-Seq` regression (409) or a producer sequence gap.
    pub const SEQUENCE_CONFLICT: &str = "SEQUENCE_CONFLICT";
    /// 409 with `Stream-Closed: true`.
    pub const STREAM_CLOSED: &str = "STREAM_CLOSED";
    /// A read's offset was refused (400).
    pub const INVALID_OFFSET: &str = "INVALID_OFFSET";
    /// Any other HTTP status.
    pub const UNEXPECTED_STATUS: &str = "UNEXPECTED_STATUS";
    /// A malformed response body, JSON or SSE event; also an unparseable command line.
    pub const PARSE_ERROR: &str = "PARSE_ERROR";
    /// A client-internal failure.
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    /// An unknown command, option or validation target.
    pub const NOT_SUPPORTED: &str = "NOT_SUPPORTED";
    /// The client refused its input before sending anything.
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_parse_with_protocol_names() {
        let c: Command = serde_json::from_value(json!({
            "type": "append", "path": "/s", "data": "x", "binary": false,
            "seq": 9007199254740991u64, "headers": {"X-A": "1"}
        }))
        .unwrap();
        let Command::Append(a) = c else { panic!() };
        assert_eq!(a.seq, Some(9_007_199_254_740_991));
        let c: Command = serde_json::from_value(json!({
            "type": "read", "path": "/s", "live": "long-poll", "waitForUpToDate": true
        }))
        .unwrap();
        let Command::Read(r) = c else { panic!() };
        assert_eq!(r.live, Some(Live::Mode("long-poll".into())));
        assert_eq!(r.wait_for_up_to_date, Some(true));
        let c: Command =
            serde_json::from_value(json!({"type": "read", "path": "/s", "live": true})).unwrap();
        assert!(matches!(
            c,
            Command::Read(ReadCmd {
                live: Some(Live::Flag(true)),
                ..
            })
        ));
        let c: Command = serde_json::from_value(json!({"type": "shutdown"})).unwrap();
        assert_eq!(c, Command::Shutdown);
        assert_eq!(c.type_name(), "shutdown");
        let c: Command = serde_json::from_value(json!({
            "type": "idempotent-append-batch", "path": "/s", "items": ["a"],
            "producerId": "p", "epoch": 9007199254740991u64, "autoClaim": true, "maxInFlight": 5
        }))
        .unwrap();
        assert!(matches!(
            c,
            Command::IdempotentAppendBatch(IdempotentAppendBatchCmd {
                epoch: 9_007_199_254_740_991,
                ..
            })
        ));
    }

    #[test]
    fn replies_omit_absent_fields_and_carry_type_and_success() {
        let r = Reply::Read(ReadReply {
            success: true,
            status: Some(204),
            up_to_date: true,
            ..ReadReply::default()
        });
        assert_eq!(
            r.to_json(),
            json!({"type": "read", "success": true, "status": 204, "chunks": [],
                   "upToDate": true, "streamClosed": false})
        );
        let e = Reply::Error(ErrorReply::new("head", codes::NOT_FOUND, "gone"));
        assert_eq!(
            e.to_json(),
            json!({"type": "error", "success": false, "commandType": "head",
                   "errorCode": "NOT_FOUND", "message": "gone"})
        );
        let line = Reply::Read(ReadReply {
            success: true,
            chunks: vec![ReadChunk {
                data: "a\u{2028}b".into(),
                offset: None,
            }],
            ..ReadReply::default()
        })
        .to_line();
        assert!(line.contains("a\\u2028b"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn features_map_yaml_names() {
        let f = Features::all();
        for name in [
            "long-poll",
            "longPoll",
            "dynamic-headers",
            "strictZeroValidation",
            "sse",
        ] {
            assert!(f.has(name), "{name}");
        }
        assert!(!f.has("json"));
        assert!(!Features::default().has("sse"));
    }
}
