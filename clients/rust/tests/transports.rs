//! Every transport and encoding against the real server and Kafka: what the client sends lands
//! in Kafka byte for byte, and the reply names the batch's `req_guid`.

mod common;

use std::time::Duration;

use common::*;
use raccoon_client::{App, Batch, Code, Encoding, Event, GrpcClient, RestClient, WsClient};

/// Three events per batch, with bytes that are not UTF-8 and unique per (tag, index).
fn batch(tag: &str, event_type: &str) -> (Batch, Vec<Vec<u8>>) {
    let payloads: Vec<Vec<u8>> =
        (0..3u8).map(|i| [format!("{tag}/{i}/").as_bytes(), &[0x00, 0xff, i]].concat()).collect();
    let batch = Batch::new(payloads.iter().map(|p| Event::new(event_type, p.clone())));
    (batch, payloads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_and_encoding_lands_in_kafka() {
    let prefix = unique("client");
    let pattern = format!("{prefix}-%s-log");
    let server = start_server(&[("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern), ("EVENT_ACK", "1")]);
    let app = App { id: "app-1".into(), name: "client-tests".into(), version: "1.0".into() };
    let mut expected = Vec::new();
    for (name, encoding) in [("proto", Encoding::Proto), ("json", Encoding::Json)] {
        // WebSocket: acks on the stream and through send_and_wait.
        let ws = WsClient::builder(&server.ws_url()).encoding(encoding).app(&app).connect().await.unwrap();
        let mut acks = ws.subscribe(16);
        let event_type = format!("ws_{name}");
        let (b, payloads) = batch(&format!("ws-{name}-1"), &event_type);
        let guid = b.req_guid().to_owned();
        assert_eq!(ws.send(b).await.unwrap(), guid);
        let ack = tokio::time::timeout(Duration::from_secs(30), acks.recv()).await.unwrap().unwrap();
        assert_eq!(ack.req_guid, guid);
        let response = ack.result.unwrap();
        assert_eq!((response.code, response.req_guid()), (Code::Ok, Some(guid.as_str())));
        expected.push((event_type.clone(), payloads));
        let (b, payloads) = batch(&format!("ws-{name}-2"), &event_type);
        let b = b.with_req_guid(format!("mine-{name}"));
        let (guid, response) = ws.send_and_wait(b).await.unwrap();
        assert_eq!((guid.as_str(), response.req_guid()), (format!("mine-{name}").as_str(), Some(guid.as_str())));
        expected.last_mut().unwrap().1.extend(payloads);
        ws.close().await;
        let stats = ws.stats();
        assert_eq!((stats.batches_sent, stats.batches_acked, stats.retries), (2, 2, 0));
        assert!(stats.bytes_received > 0 && stats.bytes_sent > 0);

        let rest = RestClient::builder(&server.http_url()).encoding(encoding).app(&app).build().unwrap();
        let event_type = format!("rest_{name}");
        let (b, payloads) = batch(&format!("rest-{name}"), &event_type);
        let want = b.req_guid().to_owned();
        let (guid, response) = rest.send(b).await.unwrap();
        assert_eq!((guid.as_str(), response.req_guid(), response.code), (want.as_str(), Some(want.as_str()), Code::Ok));
        expected.push((event_type, payloads));
    }
    let grpc = GrpcClient::builder(&server.grpc_url()).app(&app).build().unwrap();
    let (b, payloads) = batch("grpc", "grpc_proto");
    let (guid, response) = grpc.send(b).await.unwrap();
    assert_eq!((response.req_guid(), response.code), (Some(guid.as_str()), Code::Ok));
    expected.push(("grpc_proto".into(), payloads));
    assert_eq!(grpc.stats().batches_acked, 1);

    tokio::task::spawn_blocking(move || {
        for (event_type, payloads) in expected {
            assert_topic_holds(&format!("{prefix}-{event_type}-log"), &payloads);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn error_replies_are_errors_and_not_retried() {
    let server = start_server(&[]);
    let bad = || Batch::new([Event::new("not a topic!", "x")]);
    let rest = RestClient::builder(&server.http_url()).encoding(Encoding::Json).build().unwrap();
    let err = rest.send(bad()).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::BadRequest), "{err}");
    assert!(!err.is_retryable());
    let grpc = GrpcClient::builder(&server.grpc_url()).build().unwrap();
    assert_eq!(grpc.send(bad()).await.unwrap_err().code(), Some(Code::BadRequest));
    let ws = WsClient::builder(&server.ws_url()).connect().await.unwrap();
    assert_eq!(ws.send_and_wait(bad()).await.unwrap_err().code(), Some(Code::BadRequest));
    for retries in [rest.stats().retries, grpc.stats().retries, ws.stats().retries] {
        assert_eq!(retries, 0);
    }
    // The connection is still good after an error reply.
    assert!(ws.send_and_wait(Event::new("fine", "x")).await.is_ok());
}
