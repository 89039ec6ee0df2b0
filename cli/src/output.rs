//! What the commands print on stdout, formatted apart from the I/O so that it can be tested.

use crate::exit::Failure;
use ds_proto::ops::StreamInfo;
use std::io::Write;

/// `ds head`: the metadata as `key: value` lines, absent fields left out.
pub fn head_lines(info: &StreamInfo) -> String {
    let mut out = String::new();
    if let Some(ct) = &info.content_type {
        out += &format!("content-type: {ct}\n");
    }
    out += &format!("next-offset: {}\n", info.next_offset);
    out += &format!("closed: {}\n", info.closed);
    if let Some(ttl) = info.ttl_seconds {
        out += &format!("ttl: {ttl}\n");
    }
    if let Some(at) = &info.expires_at {
        out += &format!("expires-at: {at}\n");
    }
    if let Some(etag) = &info.etag {
        out += &format!("etag: {etag}\n");
    }
    out
}

/// The messages of one JSON chunk, one per line; with `offsets` each prefixed with the offset
/// after the chunk (`next_offset`) and a tab.
pub fn json_lines<I: AsRef<[u8]>>(
    items: &[I],
    next_offset: &str,
    offsets: bool,
    out: &mut Vec<u8>,
) {
    for item in items {
        if offsets {
            out.extend_from_slice(next_offset.as_bytes());
            out.push(b'\t');
        }
        out.extend_from_slice(item.as_ref());
        out.push(b'\n');
    }
}

/// The bytes of one non-JSON chunk as they are; with `offsets` prefixed with the offset after
/// the chunk and a tab, and ended by a newline if they do not end with one. An empty chunk
/// prints nothing.
pub fn raw_chunk(data: &[u8], next_offset: &str, offsets: bool, out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    if offsets {
        out.extend_from_slice(next_offset.as_bytes());
        out.push(b'\t');
    }
    out.extend_from_slice(data);
    if offsets && !data.ends_with(b"\n") {
        out.push(b'\n');
    }
}

/// What writing to stdout came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written and flushed.
    Ok,
    /// Whoever read our output left (`ds tail x | head`): stop, successfully.
    ReaderLeft,
}

/// Writes and flushes `bytes`, so that a follower of the output sees each chunk at once.
pub fn write_flushed(out: &mut impl Write, bytes: &[u8]) -> Result<Written, Failure> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::ReaderLeft),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds_tokio::Offset;

    #[test]
    fn head_prints_present_fields_in_a_fixed_order() {
        let info = StreamInfo {
            content_type: Some("text/plain".into()),
            next_offset: Offset::beginning(),
            ttl_seconds: Some(60),
            expires_at: None,
            closed: true,
            etag: None,
        };
        assert_eq!(
            head_lines(&info),
            "content-type: text/plain\nnext-offset: -1\nclosed: true\nttl: 60\n"
        );
    }

    #[test]
    fn json_messages_print_one_per_line_with_optional_offsets() {
        let mut out = Vec::new();
        json_lines(&[&b"{\"n\":1}"[..], b"2"], "7", false, &mut out);
        assert_eq!(out, b"{\"n\":1}\n2\n");
        out.clear();
        json_lines(&[&b"1"[..], b"2"], "7", true, &mut out);
        assert_eq!(out, b"7\t1\n7\t2\n");
    }

    #[test]
    fn raw_chunks_print_as_they_are_and_end_a_line_only_with_offsets() {
        let mut out = Vec::new();
        raw_chunk(b"ab", "5", false, &mut out);
        assert_eq!(out, b"ab");
        out.clear();
        raw_chunk(b"ab", "5", true, &mut out);
        assert_eq!(out, b"5\tab\n");
        out.clear();
        raw_chunk(b"ab\n", "5", true, &mut out);
        assert_eq!(out, b"5\tab\n");
        out.clear();
        raw_chunk(b"", "5", true, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_closed_pipe_ends_output_quietly() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(
            write_flushed(&mut Closed, b"x").unwrap(),
            Written::ReaderLeft
        );
        let mut v = Vec::new();
        assert_eq!(write_flushed(&mut v, b"x").unwrap(), Written::Ok);
        assert_eq!(v, b"x");
    }
}
