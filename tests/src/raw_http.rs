//! A minimal blocking HTTP/1.1 client over `std::net`, for test setup and assertions.
//!
//! It is deliberately dumb and transparent: it sends exactly the headers it is given (plus `Host`
//! and, for a byte body, `Content-Length`), never asks for compression, and hands back the raw
//! status, headers (names as the server spelled them) and de-chunked body. It needs no async
//! runtime, so it works from plain `#[test]`s and from inside `#[tokio::test]`s alike.
//!
//! ```no_run
//! use ds_tests::raw_http;
//! let resp = raw_http::request("PUT", "http://127.0.0.1:4437/v1/stream/x", &[("Content-Type", "text/plain")], b"")?;
//! assert_eq!(resp.status, 201);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Read and write timeout used by [`request`] and [`RawConnection::connect`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response head (status line plus headers) this client accepts.
const MAX_HEAD: usize = 1 << 20;

/// A complete (or, from [`RawConnection::read_response_head`], head-only) HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code, e.g. `201`.
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// Header fields in the order received, names spelled as the server sent them.
    pub headers: Vec<(String, String)>,
    /// The body with any chunked framing removed (not decompressed). Empty for a head-only read.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The pieces of an `http://host:port/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// `host:port` (or just `host`) as written, used for `Host` and for connecting.
    pub authority: String,
    /// The host without port or IPv6 brackets.
    pub host: String,
    /// The port (80 when absent).
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub target: String,
}

/// Splits an `http://` URL. Fragments are not supported; `https` is refused.
pub fn parse_url(url: &str) -> io::Result<UrlParts> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only http:// URLs are supported: {url}")))?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if authority.is_empty() {
        return Err(invalid(format!("URL has no host: {url}")));
    }
    let target = if target.is_empty() {
        "/".to_owned()
    } else if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_owned()
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| invalid(format!("bad IPv6 authority in {url}")))?;
        let port = match &v6[end + 1..] {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| invalid(format!("bad port in {url}")))?,
        };
        (v6[..end].to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| invalid(format!("bad port in {url}")))?,
            ),
            None => (authority.to_owned(), 80),
        }
    };
    Ok(UrlParts {
        authority: authority.to_owned(),
        host,
        port,
        target,
    })
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
///
/// `headers` are sent verbatim. Unless they include `Content-Length` or `Transfer-Encoding`,
/// `Content-Length` is added for a non-empty body and for `POST`/`PUT`/`PATCH`. If they include
/// `Transfer-Encoding: chunked`, `body` must already be chunk-encoded.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<RawResponse> {
    let parts = parse_url(url)?;
    let mut conn = RawConnection::connect(url)?;
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !has(headers, "connection") {
        all.push(("Connection", "close"));
    }
    conn.request(method, &parts.target, &all, body)
}

/// One persistent (keep-alive) HTTP/1.1 connection.
#[derive(Debug)]
pub struct RawConnection {
    reader: BufReader<TcpStream>,
    authority: String,
}

impl RawConnection {
    /// Connects to the host and port of `url` (its path is ignored), with [`DEFAULT_TIMEOUT`]
    /// for reads and writes and `TCP_NODELAY` set.
    pub fn connect(url: &str) -> io::Result<RawConnection> {
        let parts = parse_url(url)?;
        let stream = TcpStream::connect((parts.host.as_str(), parts.port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(RawConnection {
            reader: BufReader::new(stream),
            authority: parts.authority,
        })
    }

    /// Changes the read timeout (`None` waits forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Writes a request head and body; see [`request`] for the header rules. `target` is the
    /// path and query (e.g. `/v1/stream/x?offset=-1`).
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        if !has(headers, "host") {
            head.push_str(&format!("Host: {}\r\n", self.authority));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let framed = has(headers, "content-length") || has(headers, "transfer-encoding");
        if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        let stream = self.reader.get_mut();
        stream.write_all(&out)?;
        stream.flush()
    }

    /// Sends a request and reads its complete response.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<RawResponse> {
        self.send(method, target, headers, body)?;
        self.read_response(method)
    }

    /// Reads one complete response (skipping `1xx` interim responses). `method` is the method
    /// of the request it answers (a `HEAD` response has no body).
    pub fn read_response(&mut self, method: &str) -> io::Result<RawResponse> {
        let mut resp = self.read_response_head()?;
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || resp.status == 204
            || resp.status == 304
            || (100..200).contains(&resp.status);
        if no_body {
            return Ok(resp);
        }
        if is_chunked(resp.header("transfer-encoding")) {
            resp.body = read_chunked_body(&mut self.reader)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: u64 = len
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
            let mut body = Vec::new();
            (&mut self.reader).take(len).read_to_end(&mut body)?;
            if (body.len() as u64) < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {len} bytes", body.len()),
                ));
            }
            resp.body = body;
        } else {
            self.reader.read_to_end(&mut resp.body)?;
        }
        Ok(resp)
    }

    /// Reads only a response head (status and headers, skipping `1xx` interim responses); the
    /// body, if any, is left to be read from [`RawConnection::reader`] — e.g. an SSE stream.
    pub fn read_response_head(&mut self) -> io::Result<RawResponse> {
        loop {
            let head = read_head(&mut self.reader)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )
            })?;
            let mut hdrs = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Response::new(&mut hdrs);
            match parsed.parse(&head) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head")),
                Err(e) => return Err(invalid(format!("bad response head: {e}"))),
            }
            let status = parsed.code.unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            return Ok(RawResponse {
                status,
                reason: parsed.reason.unwrap_or("").to_owned(),
                headers: parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                body: Vec::new(),
            });
        }
    }

    /// The buffered reader over the socket, to read a streaming body yourself.
    pub fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// The underlying socket (e.g. to shut it down).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

fn has(headers: &[(&str, &str)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Whether a `Transfer-Encoding` value ends in `chunked`.
pub(crate) fn is_chunked(te: Option<&str>) -> bool {
    te.and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// Reads a message head (up to and including the blank line), skipping leading empty lines.
/// `Ok(None)` when the peer closed the connection before sending anything.
pub(crate) fn read_head<R: BufRead>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a message head",
                ))
            };
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                head.clear(); // tolerate empty lines before a message
                continue;
            }
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("message head too large"));
        }
    }
}

/// Parses a chunk-size line (`1a;ext=1\r\n`).
pub(crate) fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("chunk size is not UTF-8"))?;
    let size = text.split(';').next().unwrap_or("").trim();
    u64::from_str_radix(size, 16).map_err(|_| invalid(format!("bad chunk size {size:?}")))
}

fn read_chunked_body<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" || line == b"\n" {
                    return Ok(body);
                }
            }
        }
        let before = body.len();
        reader.take(size).read_to_end(&mut body)?;
        if ((body.len() - before) as u64) < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        let mut crlf = Vec::new();
        reader.read_until(b'\n', &mut crlf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let p = parse_url("http://127.0.0.1:8080/v1/stream/x?offset=-1").unwrap();
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, 8080);
        assert_eq!(p.authority, "127.0.0.1:8080");
        assert_eq!(p.target, "/v1/stream/x?offset=-1");
        let p = parse_url("http://localhost").unwrap();
        assert_eq!((p.port, p.target.as_str()), (80, "/"));
        let p = parse_url("http://[::1]:9?a=b").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.target.as_str()),
            ("::1", 9, "/?a=b")
        );
        assert!(parse_url("https://x/").is_err());
    }

    #[test]
    fn decodes_chunked() {
        let mut input: &[u8] = b"5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: 1\r\n\r\nrest";
        let body = read_chunked_body(&mut input).unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(input, b"rest");
        assert!(is_chunked(Some("gzip, chunked")));
        assert!(!is_chunked(Some("chunked, gzip")));
    }

    #[test]
    fn reads_heads() {
        let mut input: &[u8] = b"\r\nGET / HTTP/1.1\r\nA: b\r\n\r\nbody";
        let head = read_head(&mut input).unwrap().unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nA: b\r\n\r\n");
        assert_eq!(input, b"body");
        let mut empty: &[u8] = b"";
        assert!(read_head(&mut empty).unwrap().is_none());
    }
}
