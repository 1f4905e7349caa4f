//! `PUBLISHER_TYPE=log`: the real binary with no broker at all (bootstrap servers point at a
//! port nothing listens on), real WebSocket clients, and the server's own log as the output.

mod common;

use bytes::Bytes;
use common::*;
use prost::Message as _;
use raccoon_protocol::pb;

/// Where no broker listens: the log publisher must not need one.
const NO_BROKER: &str = "127.0.0.1:1";

fn start(event_ack: &str) -> TestServer {
    start_server(NO_BROKER, &[("PUBLISHER_TYPE", "log"), ("EVENT_ACK", event_ack), ("SERVER_SHARDS", "2")])
}

fn request(req_guid: &str, events: Vec<(&str, Vec<u8>)>) -> pb::SendEventRequest {
    pb::SendEventRequest {
        req_guid: req_guid.to_owned(),
        sent_time: Some(prost_types::Timestamp { seconds: now_secs(), nanos: 0 }),
        events: events
            .into_iter()
            .map(|(t, payload)| pb::Event { event_bytes: Bytes::from(payload), r#type: t.to_owned() })
            .collect(),
    }
}

/// A protobuf payload (an encoded `pb::Event`) and how the log renders it.
fn protobuf_payload() -> (Vec<u8>, &'static str) {
    let inner = pb::Event { event_bytes: Bytes::from_static(b"button-7"), r#type: "tap".into() };
    (inner.encode_to_vec(), r#"1:"button-7" 2:"tap""#)
}

#[test]
fn events_are_logged_acked_and_no_broker_is_needed() {
    let mut server = start("1");
    assert_eq!(server.get("/health/ready"), (200, "ready".to_owned()), "ready without any broker");
    assert!(server.log().contains("kafka=none"), "the startup line claims no broker:\n{}", server.log());

    let mut client = server.connect(&[("X-User-ID", "dev-1")]);
    let (proto, proto_text) = protobuf_payload();
    let json = br#"{"page":"home","items":[1,2]}"#.to_vec();
    client.send_batch(&request("guid-ok", vec![("page", json), ("click", proto)]));
    assert_success(&client.reply(), "guid-ok");
    server.assert_logged(r#"[LogPublisher] kind = json, event_type = page, event = {"page":"home","items":[1,2]}"#);
    server.assert_logged(&format!("[LogPublisher] kind = protobuf, event_type = click, event = {proto_text}"));

    // Event 1 is neither JSON nor protobuf (a varint cut short): the batch fails, naming it, and
    // is rejected for good (logging it again would fail the same way).
    let good = br#"{"ok":true}"#.to_vec();
    client.send_batch(&request("guid-bad", vec![("page", good), ("view", vec![0x08, 0xff])]));
    let reply = client.reply();
    assert_eq!(reply.status(), pb::Status::Error, "reply: {reply:?}");
    assert_eq!(reply.code(), pb::Code::BadRequest, "reply: {reply:?}");
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("guid-bad"));
    assert!(
        reply.reason.contains("event 1 (type view): neither JSON nor protobuf: truncated field at byte 0"),
        "reason: {}",
        reply.reason
    );
    // The good event of that batch was still logged.
    server.assert_logged(r#"event_type = page, event = {"ok":true}"#);

    client.close();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}:\n{}", server.log());
    assert!(server.log().contains("log publisher stopped"), "{}", server.log());
}

#[test]
fn ack_on_receipt_answers_and_logs_and_reports_losses() {
    let mut server = start("0");
    let mut client = server.connect(&[("X-User-ID", "dev-2")]);
    let (proto, proto_text) = protobuf_payload();
    client.send_batch(&request("guid-0", vec![("signup", proto)]));
    assert_success(&client.reply(), "guid-0");
    server.assert_logged(&format!("[LogPublisher] kind = protobuf, event_type = signup, event = {proto_text}"));

    // Answered on receipt, so the undecodable event can only be reported as lost.
    client.send_batch(&request("guid-lost", vec![("view", vec![0xff])]));
    assert_success(&client.reply(), "guid-lost");
    server.assert_logged("events lost after ack on receipt");

    client.close();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}:\n{}", server.log());
}
