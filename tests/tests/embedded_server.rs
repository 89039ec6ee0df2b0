//! The embedded server (ds-tokio `server` feature: the sim model over HTTP) serves both drivers
//! through every kind of operation.

use ds_proto::ops::CreateOptions;
use ds_proto::producer::ProducerConfig;
use ds_proto::reader::ReadMode;
use ds_proto::{ConflictKind, ErrorKind, Offset};
use ds_tests::drivers::{AnyClient, DriverKind};
use ds_tokio::server::{BackgroundServer, ServerConfig};
use std::time::Duration;

fn server() -> BackgroundServer {
    let mut config = ServerConfig::default();
    config.model.long_poll_timeout = Duration::from_millis(500);
    BackgroundServer::start(config).expect("embedded server")
}

#[test]
fn one_shot_operations() {
    let server = server();
    for kind in DriverKind::ALL {
        let s = AnyClient::new(kind, server.url()).stream(&format!("/v1/stream/ops-{kind:?}"));
        assert!(
            s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap()
                .created
        );
        assert!(
            !s.create(CreateOptions::with_content_type("text/plain"))
                .unwrap()
                .created
        );
        assert_eq!(
            s.create(CreateOptions::with_content_type("application/json"))
                .unwrap_err()
                .kind,
            ErrorKind::Conflict(ConflictKind::ExistsWithDifferentConfig)
        );
        s.append("hello ").unwrap();
        s.append("world").unwrap();
        assert_eq!(&s.read_all().unwrap().data[..], b"hello world", "{kind:?}");
        let info = s.head().unwrap();
        assert_eq!(info.content_type.as_deref(), Some("text/plain"));
        s.close().unwrap();
        assert!(s.append("x").unwrap_err().is_closed());
        s.delete().unwrap();
        assert!(s.head().unwrap_err().is_not_found());
    }
}

#[test]
fn live_reads_in_every_mode_and_writers() {
    let server = server();
    for kind in DriverKind::ALL {
        for mode in [ReadMode::LongPoll, ReadMode::Sse, ReadMode::Auto] {
            let s = AnyClient::new(kind, server.url())
                .stream(&format!("/v1/stream/live-{kind:?}-{mode:?}"));
            s.create(CreateOptions::with_content_type("application/json"))
                .unwrap();
            let mut r = s.reader(Offset::beginning(), mode).unwrap();
            let w = s
                .writer_with(ProducerConfig {
                    content_type: "application/json".into(),
                    ..ProducerConfig::new("http://x/", "w")
                })
                .unwrap();
            for n in 0..50 {
                w.append_json(&serde_json::json!({ "n": n })).unwrap();
            }
            w.close(true).unwrap();
            let mut items = Vec::new();
            while let Some(chunk) = r.next_chunk() {
                for it in chunk.unwrap().items().unwrap() {
                    let v: serde_json::Value = serde_json::from_slice(&it).unwrap();
                    items.push(v["n"].as_u64().unwrap());
                }
            }
            assert_eq!(items, (0..50).collect::<Vec<_>>(), "{kind:?} {mode:?}");
            assert!(r.is_eof(), "{kind:?} {mode:?}");
        }
    }
}
