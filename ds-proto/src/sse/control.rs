//! What Durable Streams puts in SSE events (PROTOCOL.md 5.8): the `control` event's JSON
//! object, and the base64 text of `data` events on binary streams.

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::SseError;

/// The JSON object carried by a Durable Streams `event: control` SSE event.
///
/// Deserialised from camelCase fields; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlEvent {
    /// `streamNextOffset` (required): the offset to resume reading from.
    pub stream_next_offset: String,
    /// `streamCursor`: the cursor to echo when reconnecting (absent when the stream is closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_cursor: Option<String>,
    /// `upToDate`: the client has all data available when the event was generated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up_to_date: bool,
    /// `streamClosed`: the stream is closed and all its data has been sent (EOF).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream_closed: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl ControlEvent {
    /// Parses the data of a `control` event.
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidControl`] if the data is not a JSON object, lacks a string
    /// `streamNextOffset`, or has a field of the wrong JSON type.
    pub fn parse(data: &[u8]) -> Result<Self, SseError> {
        let first = data.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(SseError::InvalidControl(
                "expected a JSON object".to_owned(),
            ));
        }
        serde_json::from_slice(data).map_err(|e| SseError::InvalidControl(e.to_string()))
    }

    /// Whether the stream is closed: no more data will ever arrive and the reader must not
    /// reconnect. A closed stream is also up to date.
    pub fn is_eof(&self) -> bool {
        self.stream_closed
    }
}

/// Decodes the data of a Durable Streams `data` event sent with
/// `stream-sse-data-encoding: base64`: removes every `\n` and `\r`, then decodes standard
/// base64 (RFC 4648 alphabet, padding required, length a multiple of 4, or empty).
///
/// # Errors
///
/// [`SseError::InvalidBase64`] if the text is not valid padded standard base64.
pub fn decode_base64_data(data: &[u8]) -> Result<Bytes, SseError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let decoded = if memchr::memchr2(b'\n', b'\r', data).is_some() {
        let text: Vec<u8> = data
            .iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect();
        engine.decode(text)
    } else {
        engine.decode(data)
    };
    decoded
        .map(Bytes::from)
        .map_err(|e| SseError::InvalidBase64(e.to_string()))
}

#[cfg(test)]
mod tests;
