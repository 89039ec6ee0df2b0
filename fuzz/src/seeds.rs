//! The hand-written seed corpus, as code: `tests/corpus.rs` checks that `corpus/<target>/`
//! holds exactly these bytes for these names (and rewrites them with `DS_FUZZ_WRITE_SEEDS=1`).
//! Inputs the fuzzer found are not kept in the repository: `run.sh` fuzzes into a scratch
//! corpus; crash inputs go to `regressions/<target>/`.

use crate::producer::{ProducerKnobs, ProducerOp, ProducerScript, Reply, ReplyHeader};
use crate::reader::{Header, Off, Part, ReaderKnobs, ReaderOp, ReaderScript};
use crate::script::{encode, FailKind, RetryKnobs, Status};

pub use crate::util::Seed;

const SPEC_JSON: &str =
    "event: data\ndata: [\ndata: {\"k\":\"v\"},\ndata: {\"k\":\"w\"},\ndata: ]\n\n\
event: control\ndata: {\"streamNextOffset\":\"123456_789\",\"streamCursor\":\"abc\"}\n\n";
const SPEC_CLOSED: &str = "event: data\ndata: [\ndata: {\"k\":\"final\"}\ndata: ]\n\n\
event: control\ndata: {\"streamNextOffset\":\"123456_999\",\"streamClosed\":true}\n\n";
const SPEC_BASE64: &str = "event: data\ndata: AQIDBAUG\ndata: BwgJCg==\n\n\
event: control\ndata: {\"streamNextOffset\":\"123456_789\",\"streamCursor\":\"abc\"}\n\n";
/// The reference server's catch-up: one data event per append, no space after the colon.
const REFSERVER: &str = "event: data\ndata:hello\n\nevent: data\ndata:world\n\n\
event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000010\",\"streamCursor\":\"1\",\"upToDate\":true}\n\n";
/// WHATWG corners: BOM, comments, CRLF and CR, id, retry, fields without colon, an
/// unterminated last event.
const WHATWG: &str = "\u{feff}: hello\r\nid: 1\r\nevent: data\rdata\rdata: a\r\n\r\nretry: 250\n\
data:b\nid\n\nevent: other\ndata: x\n:\n\ndata: cut";

fn with(prefix: &[u8], body: &str) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(body.as_bytes());
    v
}

fn sse_seeds() -> Vec<Seed> {
    vec![
        (
            "sse_parse",
            "spec-json",
            with(&[0xff, 0xff, 0xf9], SPEC_JSON),
        ),
        (
            "sse_parse",
            "spec-closed",
            with(&[0xff, 0xff, 0x0a], SPEC_CLOSED),
        ),
        (
            "sse_parse",
            "spec-base64",
            with(&[0xff, 0xff, 0x13], SPEC_BASE64),
        ),
        (
            "sse_parse",
            "refserver",
            with(&[0xff, 0xff, 0x21], REFSERVER),
        ),
        ("sse_parse", "whatwg", with(&[0xff, 0xff, 0x07], WHATWG)),
        ("sse_parse", "tiny-limits", with(&[12, 9, 0x01], SPEC_JSON)),
        (
            "sse_chunking",
            "spec-json",
            with(&[0xff, 0xff, 3, 5, 0, 40, 0, 41, 0, 0b1010_0110], SPEC_JSON),
        ),
        (
            "sse_chunking",
            "whatwg-crlf-split",
            with(&[0xff, 0xff, 2, 13, 0, 14, 0, 0b0000_0010], WHATWG),
        ),
        (
            "sse_chunking",
            "tiny-limits",
            with(&[20, 30, 1, 17, 0, 0b1], REFSERVER),
        ),
    ]
}

fn header_seeds() -> Vec<Seed> {
    let h = |name, text: &str| ("headers", name, text.replace('\n', "\r\n").into_bytes());
    vec![
        h(
            "catch-up-200",
            "HTTP/1.1 200 OK\nContent-Type: application/json\nStream-Next-Offset: 0000000000000000_0000000000000011\n\
             Stream-Up-To-Date: true\nETag: \"s:0:11\"\nCache-Control: public, max-age=60, stale-while-revalidate=300\n\n[1,2]",
        ),
        h(
            "long-poll-204",
            "HTTP/1.1 204 No Content\nstream-next-offset: 42\nstream-cursor: 1000\nstream-up-to-date: true\n\n",
        ),
        h(
            "head-200",
            "HTTP/1.1 200 OK\nContent-Type: text/plain\nStream-Next-Offset: 7\nStream-TTL: 3600\n\
             Stream-Expires-At: 2026-12-31T23:59:59.123+02:00\nStream-Closed: TRUE\n\n",
        ),
        h(
            "append-gap-409",
            "HTTP/1.1 409 Conflict\nProducer-Expected-Seq: 2\nProducer-Received-Seq: 4\n\nsequence gap",
        ),
        h(
            "append-closed-409",
            "HTTP/1.1 409 Conflict\nStream-Closed: true\nStream-Next-Offset: 99\n\nstream is closed",
        ),
        h(
            "fenced-403",
            "HTTP/1.1 403 Forbidden\nProducer-Epoch: 9007199254740991\n\nstale epoch",
        ),
        h(
            "rate-limited-429",
            "HTTP/1.1 429 Too Many Requests\nRetry-After: 2.5\n\n",
        ),
        h(
            "unavailable-503",
            "HTTP/1.1 503 Service Unavailable\nRetry-After: 31536000\n\nbusy",
        ),
        h(
            "bad-values",
            "HTTP/1.1 200 OK\nStream-Next-Offset: a,b\nProducer-Epoch: 9007199254740992\nProducer-Seq: -1\n\
             Stream-TTL: 03600\nStream-Expires-At: tomorrow\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\n\
             X-Requested: now\nStream-Cursor:  \n\n",
        ),
        h(
            "created-201",
            "HTTP/1.1 201 Created\nLocation: http://h/v1/stream/s\nContent-Type: application/json\nStream-Next-Offset: 0_0\n\n",
        ),
    ]
}

fn read_body_seeds() -> Vec<Seed> {
    vec![
        (
            "read_body",
            "json-array",
            with(
                &[0x1f, 0xff, 0xff],
                "[ {\"k\":\"v\"} , [1,2], \"s\", 1e400, null ]",
            ),
        ),
        (
            "read_body",
            "json-empty",
            with(&[0x1f, 0xff, 0xff], " [ ] "),
        ),
        (
            "read_body",
            "json-nested",
            with(
                &[0x11, 0xff, 0xff],
                "[[[[[]]]],{\"a\":{\"b\":[true,false]}},\"\\u00e9\\n\"]",
            ),
        ),
        (
            "read_body",
            "binary",
            [0x02, 0x90, 0xff]
                .iter()
                .copied()
                .chain((0..=255u8).rev())
                .collect(),
        ),
        (
            "read_body",
            "sse-spec-json",
            with(&[0x2f, 0xff, 0xff], SPEC_JSON),
        ),
        (
            "read_body",
            "sse-spec-base64",
            with(&[0x01, 0xff, 0xff], SPEC_BASE64),
        ),
        (
            "read_body",
            "sse-refserver",
            with(&[0x03, 0xff, 0xff], REFSERVER),
        ),
        (
            "read_body",
            "sse-closed-small-limits",
            with(&[0x00, 20, 40], SPEC_CLOSED),
        ),
    ]
}

fn json_validate_seeds() -> Vec<Seed> {
    let j = |name, text: &str| ("json_validate", name, text.as_bytes().to_vec());
    let b = |name, bytes: &[u8]| ("json_validate", name, bytes.to_vec());
    let object = format!("{{\"id\":123,\"text\":\"{}\"}}", "a".repeat(80));
    let late = format!("[\"{}\u{e9}{}\"]", "a".repeat(70), "b".repeat(40));
    let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    let mixed = format!("{}0{}", "[{\"k\":".repeat(70), "}]".repeat(70));
    vec![
        j("object-100B", &object),
        j(
            "event-escapes",
            "{\"id\":1,\"ok\":true,\"tags\":[\"a\",\"b\"],\"text\":\"the \\\"quick\\\" caf\u{e9}\\n\\u00e9 fox\"}",
        ),
        j(
            "mixed-array",
            "[12345,-7,3.14159,6.02e23,true,false,null,\"short\",{\"k\":1,\"v\":[1,2,3]},[[1,2],{\"a\":null}],{},[]]",
        ),
        j(
            "numbers",
            "[0,-0,1e400,-1.5E-3,0.0e+0,123456789012345678901234567890]",
        ),
        j("bad-number", "[01]"),
        j("whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] } \r\n"),
        j("lone-surrogates", "\"\\ud800\\udc00\\ud800\""),
        j("bad-escape", "\"\\x\""),
        j("control-in-string", "\"a\tb\""),
        j("deep-arrays", &deep),
        j("deep-mixed", &mixed),
        j("unclosed", "{\"a\":[1,2"),
        j("trailing", "{} {}"),
        j("utf8", "[\"\u{e9}\u{1F600}\u{4e2d}\u{6587}\"]"),
        j("late-non-ascii", &late),
        j("literals", "[true,false,null]"),
        j("bad-literal", "[tru]"),
        j("empty-key", "{\"\":\"\"}"),
        b("invalid-utf8", b"[\"\xff\"]"),
        b("surrogate-utf8", b"\"\xed\xa0\x80\""),
        b("overlong", b"\"\xc0\xaf\""),
        b("bom", b"\xef\xbb\xbf{}"),
    ]
}

fn http1_seeds() -> Vec<Seed> {
    // flags: bits 0-1 method (GET, HEAD, POST, GET+close), bit 2 EOF, bit 3 small limits.
    let s = |name, flags: u8, cuts: &[u16], text: &str| {
        let mut v = vec![flags, 0xc0, cuts.len() as u8];
        for c in cuts {
            v.extend_from_slice(&c.to_le_bytes());
        }
        v.extend_from_slice(text.as_bytes());
        ("http1_decode", name, v)
    };
    vec![
        s(
            "content-length",
            0,
            &[10, 30],
            "HTTP/1.1 200 OK\r\nStream-Next-Offset: 0_5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        s(
            "chunked-trailers",
            0,
            &[20, 50, 51, 60],
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n\
             6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
        ),
        s(
            "head",
            1,
            &[],
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nStream-Next-Offset: 7\r\n\r\n",
        ),
        s(
            "continue-then-204",
            2,
            &[12],
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nStream-Next-Offset: 9\r\n\r\n",
        ),
        s(
            "http10-until-close",
            4,
            &[3],
            "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: data\ndata: x\n\n",
        ),
        s(
            "eof-mid-body",
            4 | 8,
            &[40],
            "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        ),
        s(
            "unsolicited-extra",
            3,
            &[],
            "\r\nHTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ),
        s("garbage", 8, &[2], "SSH-2.0-OpenSSH_9.6\r\n"),
    ]
}

fn http1_pipeline_seeds() -> Vec<Seed> {
    // n - 1, extra depth, methods (2 bits each: GET, HEAD, POST, POST+close), flags (bit 0 EOF,
    // bit 1 written tracked), written, cuts.
    let s = |name, n: u8, methods: u16, flags: u8, written: u16, cuts: &[u16], text: &str| {
        let mut v = vec![n - 1, 0];
        v.extend_from_slice(&methods.to_le_bytes());
        v.push(flags);
        v.extend_from_slice(&written.to_le_bytes());
        v.push(cuts.len() as u8);
        for c in cuts {
            v.extend_from_slice(&c.to_le_bytes());
        }
        v.extend_from_slice(text.as_bytes());
        ("http1_pipeline", name, v)
    };
    let ok = "HTTP/1.1 200 OK\r\nStream-Next-Offset: 5\r\nContent-Length: 0\r\n\r\n";
    vec![
        s(
            "three-posts",
            3,
            0b10_10_10,
            0,
            0,
            &[30, 70],
            &[ok, ok, "HTTP/1.1 204 No Content\r\n\r\n"].concat(),
        ),
        s(
            "head-in-the-middle",
            3,
            0b00_01_00,
            0,
            0,
            &[50],
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n\
             HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        s(
            "close-on-the-second",
            4,
            0b10_10_10_10,
            1,
            0,
            &[60],
            &[ok, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", ok].concat(),
        ),
        s("eof-after-one", 3, 0b10_10_10, 1, 0, &[], ok),
        s("not-fully-written", 3, 0b10_10_10, 3, 150, &[], ""),
        s(
            "409-then-eof",
            2,
            0b10_10,
            1,
            0,
            &[9],
            "HTTP/1.1 409 Conflict\r\nProducer-Expected-Seq: 1\r\nContent-Length: 3\r\n\r\ngap",
        ),
    ]
}

fn http1_encode_seeds() -> Vec<Seed> {
    let s = |name, text: &str| ("http1_encode", name, text.as_bytes().to_vec());
    vec![
        s(
            "append-json",
            "POST http://h:8080/v1/stream/s?tenant=x%20y\ncontent-type: application/json\n\
             producer-id: p\nproducer-epoch: 0\nproducer-seq: 3\n\n[{\"k\":1}]",
        ),
        s(
            "sse-read",
            "GET http://h/v1/stream/s?cursor=c&live=sse&offset=-1\nauthorization: Bearer t\n\
             accept: text/event-stream\n\n",
        ),
        s(
            "head-ipv6-userinfo",
            "HEAD http://user:pw@[::1]:4437/v1/stream/a\n\n",
        ),
        s(
            "put-own-host-length",
            "PUT http://h/s\nhost: other:81\ncontent-length: 3\nstream-ttl: 60\n\nabc",
        ),
        s("relative-no-host", "DELETE /v1/stream/s\n\n"),
        s("connect", "CONNECT http://h:1\n\n"),
        s(
            "transfer-encoding",
            "POST http://h/s\ntransfer-encoding: chunked\n\nx",
        ),
        s(
            "length-mismatch",
            "POST http://h/s\ncontent-length: 9\n\nabc",
        ),
    ]
}

fn retry() -> RetryKnobs {
    RetryKnobs {
        initial_ms: 9,
        spread_ms: 200,
        attempts: 4,
        elapsed_s: 30,
    }
}

fn producer_seeds() -> Vec<Seed> {
    let knobs = ProducerKnobs {
        json: false,
        auto_claim: false,
        max_in_flight: 0,
        max_batch_items: 3,
        max_batch_bytes: 63,
        buffered_extra: 64,
        linger_ms: 5,
        epoch: 0,
        deadline: false,
        ordered: false,
        retry: retry(),
    };
    let app = |size| ProducerOp::Append { size, kind: 1 };
    let reply = |reply| ProducerOp::Reply { pick: 0, reply };
    let scripts = [
        (
            "happy-path",
            ProducerScript {
                knobs,
                ops: vec![
                    app(3),
                    app(4),
                    ProducerOp::Flush,
                    reply(Reply::Stored),
                    app(5),
                    ProducerOp::Close,
                    reply(Reply::Stored),
                    reply(Reply::Stored),
                ],
            },
        ),
        (
            "pipelined-out-of-order",
            ProducerScript {
                knobs: ProducerKnobs {
                    max_in_flight: 3,
                    max_batch_items: 0,
                    ..knobs
                },
                ops: vec![
                    app(1),
                    ProducerOp::Flush,
                    reply(Reply::Stored),
                    app(2),
                    app(3),
                    app(4),
                    app(5),
                    ProducerOp::Reply {
                        pick: 2,
                        reply: Reply::Gap { lag: 2 },
                    },
                    ProducerOp::Reply {
                        pick: 1,
                        reply: Reply::Stored,
                    },
                    ProducerOp::Fail {
                        pick: 0,
                        kind: FailKind::Reset,
                    },
                    ProducerOp::ToTimeout,
                    reply(Reply::Duplicate),
                    reply(Reply::Stored),
                ],
            },
        ),
        (
            "ordered-first-batch-refused",
            ProducerScript {
                knobs: ProducerKnobs {
                    max_in_flight: 3,
                    max_batch_items: 0,
                    epoch: 2,
                    ordered: true,
                    ..knobs
                },
                ops: vec![
                    app(1),
                    app(2),
                    app(3),
                    reply(Reply::Busy { status: 1, secs: 0 }),
                    reply(Reply::Raw {
                        status: Status::S400,
                        headers: vec![],
                        body: 0,
                    }),
                    reply(Reply::Raw {
                        status: Status::S400,
                        headers: vec![],
                        body: 0,
                    }),
                    ProducerOp::ToTimeout,
                    reply(Reply::Stored),
                    reply(Reply::Stored),
                    reply(Reply::Stored),
                ],
            },
        ),
        (
            "fenced-auto-claim",
            ProducerScript {
                knobs: ProducerKnobs {
                    auto_claim: true,
                    epoch: 3,
                    ..knobs
                },
                ops: vec![
                    app(10),
                    ProducerOp::Flush,
                    reply(Reply::Busy { status: 1, secs: 0 }),
                    ProducerOp::ToTimeout,
                    reply(Reply::Fence { ahead: 2 }),
                    app(11),
                    reply(Reply::Stored),
                    reply(Reply::StreamClosed),
                ],
            },
        ),
        (
            "json-backpressure",
            ProducerScript {
                knobs: ProducerKnobs {
                    json: true,
                    max_batch_bytes: 40,
                    buffered_extra: 10,
                    ..knobs
                },
                ops: vec![
                    ProducerOp::Append { size: 3, kind: 0 },
                    ProducerOp::Append { size: 3, kind: 16 },
                    app(30),
                    app(30),
                    app(30),
                    ProducerOp::Head {
                        pick: 0,
                        reply: Reply::Raw {
                            status: Status::S400,
                            headers: vec![ReplyHeader::NextOffset(3)],
                            body: 1,
                        },
                    },
                    ProducerOp::Body { pick: 0, len: 9 },
                    ProducerOp::End { pick: 0 },
                    app(30),
                    ProducerOp::Advance { ms: 1000 },
                    ProducerOp::Stray { id: 1 },
                ],
            },
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, s)| ("producer_script", name, encode(&s)))
        .collect()
}

fn reader_seeds() -> Vec<Seed> {
    let knobs = ReaderKnobs {
        mode: 0,
        start: 0,
        json: 0,
        max_body: 0xff,
        sse_limits: 0xff,
        fallback: 2,
        deadlines: 0,
        cursor: false,
        retry: retry(),
    };
    let next = |o| Header::NextOffset(o);
    let respond = |status, headers: Vec<Header>, parts: Vec<Part>| ReaderOp::Respond {
        status,
        headers,
        parts,
    };
    let scripts = [
        (
            "catch-up",
            ReaderScript {
                knobs,
                ops: vec![
                    respond(
                        Status::S200,
                        vec![next(Off::Forward(4)), Header::ContentType(1)],
                        vec![Part::Raw { len: 5, fill: 7 }],
                    ),
                    respond(
                        Status::S503,
                        vec![Header::RetryAfter(1)],
                        vec![Part::Raw { len: 4, fill: b'x' }],
                    ),
                    ReaderOp::ToTimeout,
                    respond(
                        Status::S200,
                        vec![next(Off::Same), Header::UpToDate],
                        vec![],
                    ),
                ],
            },
        ),
        (
            "auto-long-poll",
            ReaderScript {
                knobs: ReaderKnobs {
                    mode: 3,
                    json: 2,
                    cursor: true,
                    ..knobs
                },
                ops: vec![
                    respond(
                        Status::S200,
                        vec![
                            next(Off::Forward(1)),
                            Header::UpToDate,
                            Header::ContentType(0),
                        ],
                        vec![Part::Json { n: 3 }],
                    ),
                    respond(
                        Status::S204,
                        vec![next(Off::Same), Header::Cursor(7)],
                        vec![],
                    ),
                    ReaderOp::Fail {
                        kind: FailKind::Timeout,
                    },
                    ReaderOp::Advance { ms: 20_000 },
                    respond(
                        Status::S200,
                        vec![next(Off::Forward(2)), Header::Closed],
                        vec![Part::Json { n: 1 }],
                    ),
                ],
            },
        ),
        (
            "sse-base64",
            ReaderScript {
                knobs: ReaderKnobs { mode: 2, ..knobs },
                ops: vec![
                    ReaderOp::Head {
                        status: Status::S200,
                        headers: vec![Header::ContentType(2), Header::Base64],
                    },
                    ReaderOp::Body {
                        part: Part::Data { len: 10, fill: 1 },
                    },
                    ReaderOp::Body {
                        part: Part::Control {
                            off: Off::Forward(9),
                            up_to_date: true,
                            closed: false,
                            cursor: true,
                        },
                    },
                    ReaderOp::Body {
                        part: Part::Comment,
                    },
                    ReaderOp::End,
                    respond(
                        Status::S200,
                        vec![Header::ContentType(2)],
                        vec![
                            Part::Data { len: 3, fill: 2 },
                            Part::Control {
                                off: Off::Forward(1),
                                up_to_date: true,
                                closed: true,
                                cursor: false,
                            },
                        ],
                    ),
                ],
            },
        ),
        (
            "sse-fallback",
            ReaderScript {
                knobs: ReaderKnobs {
                    mode: 2,
                    fallback: 1,
                    ..knobs
                },
                ops: vec![
                    respond(Status::S200, vec![Header::ContentType(2)], vec![]),
                    respond(
                        Status::S200,
                        vec![Header::ContentType(2)],
                        vec![Part::Comment],
                    ),
                    respond(
                        Status::S200,
                        vec![next(Off::Forward(0)), Header::UpToDate],
                        vec![Part::Raw { len: 2, fill: b'a' }],
                    ),
                    ReaderOp::Advance { ms: 60_000 },
                    ReaderOp::Stray,
                    ReaderOp::Stop,
                ],
            },
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, s)| ("reader_script", name, encode(&s)))
        .collect()
}

/// Every hand-written seed.
pub fn seeds() -> Vec<Seed> {
    let mut all = sse_seeds();
    all.extend(header_seeds());
    all.extend(read_body_seeds());
    all.extend(json_validate_seeds());
    all.extend(http1_seeds());
    all.extend(http1_encode_seeds());
    all.extend(http1_pipeline_seeds());
    all.extend(producer_seeds());
    all.extend(reader_seeds());
    all.extend(crate::subscription::seeds());
    all
}

/// The hand-written scripts, decoded back (for the round-trip check).
pub fn script_round_trips() -> Vec<(&'static str, bool)> {
    let mut out = Vec::new();
    for (target, name, bytes) in seeds() {
        let ok =
            match target {
                "producer_script" => crate::script::decode::<ProducerScript>(&bytes)
                    .is_some_and(|s| encode(&s) == bytes),
                "reader_script" => crate::script::decode::<ReaderScript>(&bytes)
                    .is_some_and(|s| encode(&s) == bytes),
                _ => continue,
            };
        out.push((name, ok));
    }
    out
}
