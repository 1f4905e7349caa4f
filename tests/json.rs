//! JSON batches end to end (spec 5.2 cases 3, 6 and 7, and 5.3's RFC 3339 case): WebSocket text
//! frames and REST `application/json` bodies, in Raccoon's own JSON shape and in canonical
//! protobuf JSON, answered in Raccoon's JSON shape, and read back from Kafka byte for byte.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use raccoon_protocol::pb;
use serde_json::{json, Value};
use tungstenite::Message;

/// Standard base64 with padding (what Go's encoding/json writes for `[]byte`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A batch in Raccoon's JSON shape: snake_case, `{seconds, nanos}`, base64 payloads (every
/// other event as an array of byte numbers, as the JS client sends them), plus a field nobody knows.
fn raccoon_json(req: &pb::SendEventRequest) -> String {
    let events: Vec<Value> = req
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let bytes = if i % 2 == 0 { json!(base64(&e.event_bytes)) } else { json!(e.event_bytes.to_vec()) };
            json!({ "event_bytes": bytes, "type": e.r#type, "unknown": {"nested": [1, 2]} })
        })
        .collect();
    let sent = req.sent_time.unwrap_or_default();
    json!({ "req_guid": req.req_guid, "sent_time": {"seconds": sent.seconds, "nanos": sent.nanos}, "events": events, "extra": true })
        .to_string()
}

/// The same batch as canonical protobuf JSON: camelCase, an RFC 3339 `sentTime`.
fn protojson(req: &pb::SendEventRequest) -> String {
    let events: Vec<Value> =
        req.events.iter().map(|e| json!({ "eventBytes": base64(&e.event_bytes), "type": e.r#type })).collect();
    json!({ "reqGuid": req.req_guid, "sentTime": "2026-12-01T10:00:00.250+01:00", "events": events }).to_string()
}

fn assert_json_success(reply: &Value, req_guid: &str) {
    assert_eq!(reply["status"], 1, "{reply}");
    assert_eq!(reply["code"], 1, "{reply}");
    assert!(reply.get("reason").is_none(), "empty fields are left out: {reply}");
    assert_eq!(reply["data"], json!({ "req_guid": req_guid }), "{reply}");
    assert!((reply["sent_time"].as_i64().unwrap() - now_secs()).abs() < 60, "{reply}");
}

fn text_reply(client: &mut Client) -> Value {
    match client.next() {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON reply"),
        other => panic!("expected a text reply, got {other:?}"),
    }
}

fn json_over_both_transports(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("json-ack{event_ack}"));
    let server = start_server(
        kafka,
        &[("EVENT_ACK", event_ack), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    let mut sent = Vec::new();
    let mut ws = server.connect(&[("X-User-ID", "json-user")]);
    for (i, encode) in [raccoon_json as fn(&pb::SendEventRequest) -> String, protojson].into_iter().enumerate() {
        let req = batch(&format!("ws-json-{i}"), &prefix, &["type_a", "type_b"], 4);
        ws.send_raw(Message::Text(encode(&req).into()));
        assert_json_success(&text_reply(&mut ws), &req.req_guid);
        sent.push(req);
    }
    // A binary frame on the same connection still gets a binary reply.
    let binary = batch("ws-proto", &prefix, &["type_a"], 2);
    ws.send_batch(&binary);
    assert_success(&ws.reply(), "ws-proto");
    sent.push(binary);

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    for (i, encode) in [raccoon_json as fn(&pb::SendEventRequest) -> String, protojson].into_iter().enumerate() {
        let req = batch(&format!("rest-json-{i}"), &prefix, &["type_b"], 3);
        let response = agent
            .post(&format!("http://{}/api/v1/events", server.addr))
            .set("Content-Type", "application/json; charset=utf-8")
            .send_string(&encode(&req))
            .expect("200");
        assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));
        let reply: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
        assert_json_success(&reply, &req.req_guid);
        sent.push(req);
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}

#[test]
fn json_batches_reach_kafka_when_acking_on_receipt() {
    json_over_both_transports("0");
}

#[test]
fn json_batches_reach_kafka_when_acking_on_delivery() {
    json_over_both_transports("1");
}

/// Spec 5.2 case 3 and the REST twin: what is not a JSON `SendEventRequest` gets
/// `CODE_BAD_REQUEST` in JSON, and the connection stays open.
#[test]
fn bad_json_is_refused_in_json() {
    let server = start_server(shared_kafka(), &[]);
    let mut ws = server.connect(&[("X-User-ID", "bad-json")]);
    for bad in ["\"\"", "", "{\"events\": 5}", "{\"events\": [{\"event_bytes\": \"not base64!\"}]}"] {
        ws.send_raw(Message::Text(bad.into()));
        let reply = text_reply(&mut ws);
        assert_eq!(reply["status"], 2, "{bad}: {reply}");
        assert_eq!(reply["code"], 2, "{bad}: {reply}");
        assert!(reply["reason"].as_str().unwrap().starts_with("cannot deserialize request: "), "{reply}");
        assert_eq!(reply["data"], json!({ "req_guid": "" }), "{reply}");
    }
    ws.send_raw(Message::Text(json!({"req_guid": "still-open", "events": []}).to_string().into()));
    assert_json_success(&text_reply(&mut ws), "still-open");

    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let response = match agent
        .post(&format!("http://{}/api/v1/events", server.addr))
        .set("Content-Type", "application/json")
        .send_string("{\"sent_time\": \"yesterday\"}")
    {
        Err(ureq::Error::Status(400, response)) => response,
        other => panic!("expected 400, got {other:?}"),
    };
    let detail = response.header("x-raccoon-error-detail").expect("the decoder's detail").to_owned();
    assert!(detail.starts_with("cannot deserialize request: ") && detail.contains("sent_time"), "{detail}");
    let mut body = String::new();
    response.into_reader().read_to_string(&mut body).unwrap();
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((reply["status"].as_i64(), reply["code"].as_i64()), (Some(2), Some(2)), "{reply}");
    assert_eq!(reply["reason"], "deserialization failure", "Raccoon's reason, exactly: {reply}");
    assert!(reply.get("data").is_none(), "{reply}");
}
