//! The sans-IO HTTP/1.1 codec (`ds-proto` feature `http1`) against the reference server: the
//! same exchanges the tokio driver makes, decoded by the codec over plain `std` sockets, give
//! the same results.

use bytes::Bytes;
use ds_proto::http1::{Connection, Limits};
use ds_proto::ops::{self, CreateOptions, ReadOptions, RequestExtras};
use ds_proto::producer::{Producer, ProducerConfig, ProducerEvent};
use ds_proto::reader::{ReadMode, Reader, ReaderConfig, ReaderEvent};
use ds_proto::{Input, Machine, Offset, RequestId, Transmit};
use ds_tests::RefServer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Runs one exchange over a fresh connection; returns every input the codec produced.
fn exchange(t: &Transmit) -> Vec<Input> {
    let uri = t.request.uri();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    conn.send(t, &mut out).unwrap();
    sock.write_all(&out).unwrap();
    let mut inputs = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(input) = conn.poll_input() {
            let done = matches!(input, Input::End { .. } | Input::Failed { .. });
            inputs.push(input);
            if done {
                return inputs;
            }
        }
        match sock.read(&mut buf) {
            Ok(0) => conn.on_eof(),
            Ok(n) => conn.feed(&buf[..n]),
            Err(e) => panic!("socket: {e}"),
        }
    }
}

/// The whole response of a one-shot request, decoded by the codec.
fn one_shot(request: http::Request<Bytes>) -> (http::response::Parts, Bytes) {
    let t = Transmit {
        id: RequestId(1),
        request,
        deadline: None,
    };
    let mut parts = None;
    let mut body = Vec::new();
    for input in exchange(&t) {
        match input {
            Input::Head { parts: p, .. } => parts = Some(p),
            Input::Body { chunk, .. } => body.extend_from_slice(&chunk),
            Input::End { .. } => {}
            Input::Failed { error, .. } => panic!("{error}"),
        }
    }
    (parts.expect("a head"), Bytes::from(body))
}

/// Drives a machine to quiescence, one exchange at a time, over the codec.
fn drive<M: Machine>(m: &mut M, until: impl Fn(&M::Event) -> bool) -> Vec<M::Event> {
    let mut events = Vec::new();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "bounded");
        while let Some(e) = m.poll_event() {
            let stop = until(&e);
            events.push(e);
            if stop {
                return events;
            }
        }
        if let Some(t) = m.poll_transmit(Instant::now()) {
            for input in exchange(&t) {
                m.handle_input(input, Instant::now());
            }
            continue;
        }
        match m.poll_timeout() {
            Some(at) => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                m.handle_timeout(Instant::now());
            }
            None => return events,
        }
    }
}

#[test]
fn codec_exchanges_match_the_tokio_driver() {
    let server = RefServer::shared();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = ds_tokio::Client::new(server.url()).unwrap();
    let url = server.stream_url("http1");
    let x = RequestExtras::new();

    // Create through the codec; the driver sees the same stream.
    let (p, b) = one_shot(
        ops::create_request(&url, &CreateOptions::with_content_type("text/plain"), &x).unwrap(),
    );
    assert!(ops::create_response(&url, &p, &b).unwrap().created);
    let handle = client.stream(&url);
    let info_driver = rt.block_on(handle.head()).unwrap();

    // Write through a Producer driven by the codec (chunked/keep-alive-free exchanges).
    let mut producer = Producer::new(
        ProducerConfig {
            content_type: "text/plain".into(),
            ..ProducerConfig::new(url.clone(), "codec")
        },
        Instant::now(),
    )
    .unwrap();
    let mut expected = Vec::new();
    for i in 0..300 {
        let item = format!("item-{i};");
        expected.extend_from_slice(item.as_bytes());
        producer.append(Bytes::from(item), Instant::now()).unwrap();
    }
    producer.close(Instant::now()).unwrap();
    let events = drive(&mut producer, |e| matches!(e, ProducerEvent::Closed { .. }));
    assert!(
        matches!(events.last(), Some(ProducerEvent::Closed { .. })),
        "{events:?}"
    );

    // HEAD through the codec equals HEAD through the driver (after the writes).
    let (p, b) = one_shot(ops::head_request(&url, &x).unwrap());
    let info_codec = ops::head_response(&url, &p, &b).unwrap();
    let info_driver_after = rt.block_on(handle.head()).unwrap();
    assert_eq!(info_codec, info_driver_after);
    assert_ne!(info_driver.next_offset, info_codec.next_offset);
    assert!(info_codec.closed);

    // A catch-up read: the codec's result equals the driver's.
    let opts = ReadOptions::from(Offset::beginning());
    let (p, b) = one_shot(ops::read_request(&url, &opts, &x).unwrap());
    let codec_read = ops::read_response(&url, &opts.offset, &p, b).unwrap();
    let driver_read = rt.block_on(handle.read(opts.clone())).unwrap();
    assert_eq!(codec_read.data, driver_read.data);
    assert_eq!(codec_read.next_offset, driver_read.next_offset);
    assert_eq!(codec_read.closed, driver_read.closed);
    assert_eq!(&codec_read.data[..], &expected[..]);

    // Readers in every live mode through the codec deliver what the driver's readers deliver.
    for mode in [
        ReadMode::CatchUp,
        ReadMode::LongPoll,
        ReadMode::Sse,
        ReadMode::Auto,
    ] {
        let mut config = ReaderConfig::new(url.clone());
        config.mode = mode;
        let mut reader = Reader::new(config, Instant::now()).unwrap();
        let events = drive(&mut reader, |e| {
            matches!(
                e,
                ReaderEvent::Closed { .. } | ReaderEvent::Done | ReaderEvent::Failed(_)
            )
        });
        let mut data = Vec::new();
        for e in &events {
            match e {
                ReaderEvent::Data(c) => data.extend_from_slice(&c.data),
                ReaderEvent::Failed(err) => panic!("{mode:?}: {err}"),
                _ => {}
            }
        }
        assert_eq!(data, expected, "{mode:?}");
        let driver_all = rt
            .block_on(async {
                let mut r = handle.reader(Offset::beginning(), mode)?;
                let mut all = Vec::new();
                while let Some(c) = r.next_chunk().await {
                    all.extend_from_slice(&c?.data);
                }
                Ok::<_, ds_proto::Error>(all)
            })
            .unwrap();
        assert_eq!(data, driver_all, "{mode:?}: codec and driver agree");
    }

    // An error response with a body, decoded by the codec, gives the driver's typed error.
    let missing = server.stream_url("http1-missing");
    let (p, b) = one_shot(ops::head_request(&missing, &x).unwrap());
    let codec_err = ops::head_response(&missing, &p, &b).unwrap_err();
    let driver_err = rt.block_on(client.stream(&missing).head()).unwrap_err();
    assert_eq!(codec_err.kind, driver_err.kind);
}
