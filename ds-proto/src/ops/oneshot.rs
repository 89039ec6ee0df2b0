//! One-shot operations as values: each descriptor says which request an attempt sends, whether
//! the operation may be retried, how its answer is read, and what it teaches the stream handle
//! (the stream's content type). A driver runs any [`OneShot`] the same way, through
//! [`driver::call::Call`](crate::driver::call::Call), so each stream-handle method of a driver
//! is one line.

use super::{
    append_request, append_response, close_request, close_response, create_request,
    create_response, delete_request, delete_response, head_request, head_response, read_request,
    read_response, AppendOptions, Appended, Closed, CreateOptions, Created, ProducerHeaders,
    ReadOptions, ReadResult, RequestExtras, StreamInfo,
};
use crate::error::InputReason;
use crate::error::{ConflictKind, Error, ErrorKind, Operation};
use bytes::Bytes;

/// A one-shot operation: the builder and the interpreter of its exchange, and its retry rule.
pub trait OneShot {
    /// What a successful answer gives.
    type Output;

    /// Which operation this is (errors and traces name it).
    fn operation(&self) -> Operation;

    /// The stream's URL.
    fn url(&self) -> &str;

    /// Whether repeating the request cannot change the outcome (PROTOCOL.md 5: create, close,
    /// head, delete and reads are; an append is only with producer headers, 5.2.1). A
    /// [`RetryPolicy`](crate::RetryPolicy) retries non-idempotent operations only by opt-in.
    fn idempotent(&self) -> bool;

    /// The request of one attempt, with the client's `extras` (called again for every attempt,
    /// so rotating credentials are fresh).
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error>;

    /// Interprets the whole (bounded) answer.
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<Self::Output, Error>;

    /// The stream's content type, when the answer tells it: the handle remembers it for later
    /// appends and readers.
    fn learned_content_type(&self, output: &Self::Output) -> Option<String> {
        let _ = output;
        None
    }
}

/// Create (PUT, PROTOCOL.md 5.1). Teaches the content type the server answered with, or the
/// one that was asked for.
#[derive(Debug, Clone)]
pub struct Create {
    url: String,
    opts: CreateOptions,
}

impl Create {
    /// Creates the stream at `url` with `opts`.
    pub fn new(url: impl Into<String>, opts: CreateOptions) -> Self {
        Create {
            url: url.into(),
            opts,
        }
    }
}

impl OneShot for Create {
    type Output = Created;
    fn operation(&self) -> Operation {
        Operation::Create
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        create_request(&self.url, &self.opts, extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<Created, Error> {
        create_response(&self.url, parts, &body)
    }
    fn learned_content_type(&self, output: &Created) -> Option<String> {
        output
            .content_type
            .clone()
            .or_else(|| self.opts.content_type.clone())
    }
}

/// Append (POST, 5.2). Idempotent only with producer headers (5.2.1).
#[derive(Debug, Clone)]
pub struct Append {
    url: String,
    body: Bytes,
    opts: AppendOptions,
}

impl Append {
    /// Appends `body` to the stream at `url`. Without `opts.content_type`, the body goes with
    /// `known_content_type` (what the handle learned), else the server's default.
    pub fn new(
        url: impl Into<String>,
        body: Bytes,
        mut opts: AppendOptions,
        known_content_type: Option<String>,
    ) -> Self {
        if opts.content_type.is_none() {
            opts.content_type = known_content_type;
        }
        Append {
            url: url.into(),
            body,
            opts,
        }
    }

    /// Appends one value as a JSON message (`application/json`, 9.1). A value serde cannot
    /// serialize is [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    pub fn json<T: serde::Serialize + ?Sized>(
        url: impl Into<String>,
        value: &T,
    ) -> Result<Self, Error> {
        let url = url.into();
        let body = serde_json::to_vec(value).map_err(|e| {
            Error::invalid_input(
                Operation::Append,
                &url,
                InputReason::Body,
                format!("cannot serialize: {e}"),
            )
        })?;
        let opts = AppendOptions {
            content_type: Some("application/json".into()),
            ..AppendOptions::default()
        };
        Ok(Append::new(url, body.into(), opts, None))
    }
}

impl OneShot for Append {
    type Output = Appended;
    fn operation(&self) -> Operation {
        Operation::Append
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        self.opts.producer.is_some()
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        append_request(&self.url, self.body.clone(), &self.opts, extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<Appended, Error> {
        append_response(&self.url, self.idempotent(), parts, &body).map_err(|mut e| {
            // 409s the headers do not classify: the request tells which causes are possible.
            if let ErrorKind::Conflict(
                kind @ (ConflictKind::Other | ConflictKind::ContentTypeMismatch),
            ) = &mut e.kind
            {
                *kind = super::append_conflict(self.opts.seq.is_some(), &body);
            }
            e
        })
    }
}

/// Close (POST with `Stream-Closed: true`, 5.3), optionally with producer headers.
#[derive(Debug, Clone)]
pub struct Close {
    url: String,
    producer: Option<ProducerHeaders>,
}

impl Close {
    /// Closes the stream at `url`.
    pub fn new(url: impl Into<String>, producer: Option<ProducerHeaders>) -> Self {
        Close {
            url: url.into(),
            producer,
        }
    }
}

impl OneShot for Close {
    type Output = Closed;
    fn operation(&self) -> Operation {
        Operation::Close
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        close_request(&self.url, self.producer.as_ref(), extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<Closed, Error> {
        close_response(&self.url, parts, &body)
    }
}

/// Metadata (HEAD, 5.5). Teaches the content type.
#[derive(Debug, Clone)]
pub struct Head {
    url: String,
}

impl Head {
    /// The metadata of the stream at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Head { url: url.into() }
    }
}

impl OneShot for Head {
    type Output = StreamInfo;
    fn operation(&self) -> Operation {
        Operation::Head
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        head_request(&self.url, extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<StreamInfo, Error> {
        head_response(&self.url, parts, &body)
    }
    fn learned_content_type(&self, output: &StreamInfo) -> Option<String> {
        output.content_type.clone()
    }
}

/// Delete (5.4).
#[derive(Debug, Clone)]
pub struct Delete {
    url: String,
}

impl Delete {
    /// Deletes the stream at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Delete { url: url.into() }
    }
}

impl OneShot for Delete {
    type Output = ();
    fn operation(&self) -> Operation {
        Operation::Delete
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        delete_request(&self.url, extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<(), Error> {
        delete_response(&self.url, parts, &body)
    }
}

/// One read (catch-up, or one long-poll; 5.6, 5.7), buffered whole. Teaches the content type.
#[derive(Debug, Clone)]
pub struct Read {
    url: String,
    opts: ReadOptions,
}

impl Read {
    /// One read of the stream at `url`.
    pub fn new(url: impl Into<String>, opts: ReadOptions) -> Self {
        Read {
            url: url.into(),
            opts,
        }
    }
}

impl OneShot for Read {
    type Output = ReadResult;
    fn operation(&self) -> Operation {
        Operation::Read
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn request(&self, extras: &RequestExtras) -> Result<http::Request<Bytes>, Error> {
        read_request(&self.url, &self.opts, extras)
    }
    fn response(&self, parts: &http::response::Parts, body: Bytes) -> Result<ReadResult, Error> {
        read_response(&self.url, &self.opts.offset, parts, body)
    }
    fn learned_content_type(&self, output: &ReadResult) -> Option<String> {
        output.content_type.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ProducerHeaders;
    use crate::Offset;

    const URL: &str = "http://h/v1/stream/s";

    fn answer(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn appends_are_idempotent_only_with_producer_headers() {
        let plain = Append::new(
            URL,
            Bytes::from_static(b"x"),
            AppendOptions::default(),
            None,
        );
        assert!(!plain.idempotent());
        let opts = AppendOptions {
            producer: Some(ProducerHeaders {
                id: "p".into(),
                epoch: 0,
                seq: 0,
            }),
            ..AppendOptions::default()
        };
        let fenced = Append::new(URL, Bytes::from_static(b"x"), opts, None);
        assert!(fenced.idempotent());
        for op in [
            Create::new(URL, CreateOptions::default()).idempotent(),
            Close::new(URL, None).idempotent(),
            Head::new(URL).idempotent(),
            Delete::new(URL).idempotent(),
            Read::new(URL, ReadOptions::from(Offset::beginning())).idempotent(),
        ] {
            assert!(op);
        }
    }

    #[test]
    fn an_append_goes_with_the_known_content_type_unless_told_otherwise() {
        let known = Some("text/plain".to_owned());
        let a = Append::new(
            URL,
            Bytes::from_static(b"x"),
            AppendOptions::default(),
            known,
        );
        let r = a.request(&RequestExtras::default()).unwrap();
        assert_eq!(r.headers()["content-type"], "text/plain");
        let opts = AppendOptions {
            content_type: Some("application/octet-stream".into()),
            ..AppendOptions::default()
        };
        let a = Append::new(
            URL,
            Bytes::from_static(b"x"),
            opts,
            Some("text/plain".into()),
        );
        let r = a.request(&RequestExtras::default()).unwrap();
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
    }

    #[test]
    fn an_append_conflict_is_told_by_headers_then_by_what_was_sent() {
        let with_seq = AppendOptions {
            seq: Some("5".into()),
            ..AppendOptions::default()
        };
        let seq = Append::new(URL, Bytes::from_static(b"x"), with_seq, None);
        let plain = Append::new(
            URL,
            Bytes::from_static(b"x"),
            AppendOptions::default(),
            None,
        );
        let kind = |a: &Append, headers: &[(&str, &str)], body: &'static [u8]| {
            a.response(&answer(409, headers), Bytes::from_static(body))
                .unwrap_err()
                .kind
        };
        // Stream-Closed wins whatever was sent or said.
        assert!(matches!(
            kind(&seq, &[("stream-closed", "true")], b"seq too low"),
            ErrorKind::Conflict(ConflictKind::Closed { .. })
        ));
        // No Stream-Seq sent: a regression is impossible, whatever the body says.
        assert_eq!(
            kind(&plain, &[], b"sequence conflict"),
            ErrorKind::Conflict(ConflictKind::ContentTypeMismatch)
        );
        // Stream-Seq sent: a regression unless the server names the content type.
        assert_eq!(
            kind(&seq, &[], b""),
            ErrorKind::Conflict(ConflictKind::SeqRegression)
        );
        assert_eq!(
            kind(&seq, &[], b"Content-Type mismatch"),
            ErrorKind::Conflict(ConflictKind::ContentTypeMismatch)
        );
    }

    #[test]
    fn a_json_append_is_one_message_of_a_json_stream() {
        let a = Append::json(URL, &serde_json::json!({"a": 1})).unwrap();
        let r = a.request(&RequestExtras::default()).unwrap();
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(&r.body()[..], br#"[{"a":1}]"#);
    }

    #[test]
    fn create_teaches_the_answered_content_type_or_the_asked_one() {
        let c = Create::new(URL, CreateOptions::with_content_type("application/json"));
        let with = c
            .response(
                &answer(
                    201,
                    &[
                        ("content-type", "text/plain"),
                        ("stream-next-offset", "0_0"),
                    ],
                ),
                Bytes::new(),
            )
            .unwrap();
        assert_eq!(c.learned_content_type(&with).as_deref(), Some("text/plain"));
        let without = c
            .response(&answer(201, &[("stream-next-offset", "0_0")]), Bytes::new())
            .unwrap();
        assert_eq!(
            c.learned_content_type(&without).as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn head_and_read_teach_the_content_type() {
        let h = Head::new(URL);
        let info = h
            .response(
                &answer(
                    200,
                    &[
                        ("content-type", "application/json"),
                        ("stream-next-offset", "0_5"),
                    ],
                ),
                Bytes::new(),
            )
            .unwrap();
        assert_eq!(
            h.learned_content_type(&info).as_deref(),
            Some("application/json")
        );
        let r = Read::new(URL, ReadOptions::from(Offset::beginning()));
        let got = r
            .response(
                &answer(
                    200,
                    &[
                        ("content-type", "text/plain"),
                        ("stream-next-offset", "0_1"),
                    ],
                ),
                Bytes::from_static(b"a"),
            )
            .unwrap();
        assert_eq!(r.learned_content_type(&got).as_deref(), Some("text/plain"));
        assert_eq!(got.next_offset, Offset::parse("0_1").unwrap());
        let d = Delete::new(URL);
        assert_eq!(d.learned_content_type(&()), None);
    }

    /// Deleting a stream that is not there is an error the caller sees (PROTOCOL.md 5.4), not
    /// a silent success.
    #[test]
    fn a_delete_reports_a_missing_stream() {
        let d = Delete::new(URL);
        assert!(d.response(&answer(204, &[]), Bytes::new()).is_ok());
        let e = d.response(&answer(404, &[]), Bytes::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.operation, Operation::Delete);
    }

    #[test]
    fn each_descriptor_names_its_operation_and_url() {
        assert_eq!(Delete::new(URL).operation(), Operation::Delete);
        assert_eq!(Close::new(URL, None).operation(), Operation::Close);
        assert_eq!(
            Create::new(URL, CreateOptions::default()).operation(),
            Operation::Create
        );
        // Drivers name this URL in transport errors and traces (driver::call, driver::trace).
        let append = Append::new(URL, Bytes::new(), AppendOptions::default(), None);
        assert_eq!(append.url(), URL);
        assert_eq!(Close::new(URL, None).url(), URL);
        assert_eq!(Delete::new(URL).url(), URL);
        assert_eq!(Head::new(URL).url(), URL);
        assert_eq!(Create::new(URL, CreateOptions::default()).url(), URL);
        assert_eq!(
            Read::new(URL, ReadOptions::from(Offset::beginning())).url(),
            URL
        );
        assert_eq!(
            Read::new(URL, ReadOptions::from(Offset::beginning())).operation(),
            Operation::Read
        );
    }
}
