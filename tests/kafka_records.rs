//! What the server's Kafka records carry, read back from the real broker:
//!
//! * `PUBLISHER_DEAD_LETTER_TOPIC`: an event the broker rejects for good (larger than its
//!   `message.max.bytes`) lands in the dead-letter topic, as its bytes with the headers naming
//!   where it was going and why, and its batch succeeds, in both ack modes; a dead-letter topic
//!   that refuses the record too fails the batch as rejected (and nothing loops). Without a
//!   dead-letter topic the batch is refused as rejected: `producer_faults.rs`.
//! * `PUBLISHER_KAFKA_RECORD_KEY` (each choice) and `PUBLISHER_KAFKA_RECORD_HEADERS`, on batches
//!   sent over WebSocket, REST and gRPC; and Raccoon's records (no key, no headers) by default.

mod common;

use std::time::Duration;

use common::*;
use raccoon_protocol::pb;
use raccoon_testkit::Record;

/// One event larger than the broker takes (Kafka's `message.max.bytes` default: 1,048,588).
const TOO_LARGE: usize = 1_200_000;
const GRPC_PATH: &str = "/raystack.raccoon.v1beta1.EventService/SendEvent";

/// A `sent_time` every batch of these tests carries, and its header text.
fn sent_time() -> (prost_types::Timestamp, &'static str) {
    (prost_types::Timestamp { seconds: 1_690_020_000, nanos: 123_456_789 }, "2023-07-22T10:00:00.123456789Z")
}

/// A batch of `types.len()` events with a fixed sent_time.
fn timed_batch(req_guid: &str, tag: &str, types: &[&str]) -> pb::SendEventRequest {
    pb::SendEventRequest { sent_time: Some(sent_time().0), ..batch(req_guid, tag, types, types.len()) }
}

fn header_names(record: &Record) -> Vec<&str> {
    record.headers.iter().map(|(name, _)| name.as_str()).collect()
}

/// The server of the dead-letter tests: the broker is the one to refuse large records
/// (librdkafka's own limit is raised), and the group header is read.
fn dead_letter_server(prefix: &str, dead_letters: &str, ack: &str, headers: bool) -> TestServer {
    start_server(
        shared_kafka(),
        &[
            ("EVENT_ACK", ack),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("PUBLISHER_DEAD_LETTER_TOPIC", dead_letters),
            ("PUBLISHER_KAFKA_RECORD_HEADERS", if headers { "true" } else { "false" }),
            ("PUBLISHER_KAFKA_RECORD_KEY", "conn_id"),
            ("PUBLISHER_KAFKA_CLIENT_MESSAGE_MAX_BYTES", "4000000"),
            ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group"),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    )
}

/// In both ack modes (with record headers on in one, off in the other): a batch of a small
/// event, one the broker rejects, and another small one succeeds; the small ones are in their
/// topic and the large one in the dead-letter topic, byte for byte, keyed as its record was,
/// with headers naming the topic it was meant for, the error, the connection and the batch.
#[test]
fn an_event_the_broker_rejects_lands_in_the_dead_letter_topic_and_its_batch_succeeds() {
    for (ack, headers) in [("1", true), ("0", false)] {
        let prefix = unique(&format!("dead-letter-ack{ack}"));
        let dead_letters = format!("{prefix}-dead-letters");
        // Room for the record the event topic refuses.
        create_topic(shared_kafka(), &dead_letters, &[("max.message.bytes", "4000000")]);
        let server = dead_letter_server(&prefix, &dead_letters, ack, headers);
        let mut request = timed_batch("dl-1", &prefix, &["small", "big", "small"]);
        request.events[1].event_bytes = vec![b'x'; TOO_LARGE].into();

        let mut ws = server.connect(&[("X-User-ID", "dl-user"), ("X-User-Group", "dl-group")]);
        ws.send_batch(&request);
        assert_success(&ws.reply(), "dl-1");

        let letters = consume_full(shared_kafka(), &dead_letters, 1, raccoon_testkit::consume::CONSUME_LIMIT);
        assert_eq!(letters.len(), 1, "ack {ack}: one dead letter, no copies");
        let letter = &letters[0];
        assert!(letter.payload == request.events[1].event_bytes, "ack {ack}: the original bytes");
        assert_eq!(letter.key.as_deref(), Some(&b"dl-user"[..]), "ack {ack}: keyed as its record was");
        let intended = format!("{prefix}-big-log");
        assert_eq!(letter.header("raccoon-topic"), Some(intended.as_str()));
        assert_eq!(letter.header("raccoon-error"), Some("MSG_SIZE_TOO_LARGE"));
        assert_eq!(letter.header("raccoon-conn-id"), Some("dl-user"));
        assert_eq!(letter.header("raccoon-conn-group"), Some("dl-group"));
        assert_eq!(letter.header("raccoon-req-guid"), Some("dl-1"));
        assert_eq!(letter.header("raccoon-sent-time"), Some(sent_time().1));
        if headers {
            // The record's own headers, index included.
            assert_eq!(letter.header("raccoon-event-index"), Some("1"));
        } else {
            // A broker's rejection does not say which event of the batch it was.
            assert_eq!(letter.header("raccoon-event-index"), None, "{:?}", header_names(letter));
        }
        let small: Vec<Vec<u8>> = [0, 2].map(|i| request.events[i].event_bytes.to_vec()).into();
        assert_topic_holds(shared_kafka(), &format!("{prefix}-small-log"), &small);

        let series = format!(
            r#"kafka_messages_dead_lettered_total{{topic="{intended}",conn_group="dl-group",error_code="MSG_SIZE_TOO_LARGE"}}"#
        );
        scrape_until(&server, &[(series, 1.0)], Duration::from_secs(10));
        let delivered = format!(r#"kafka_messages_delivered_total{{topic="{dead_letters}",conn_group="dl-group","#);
        let text = scrape_until(&server, &[], Duration::from_secs(1));
        assert!(
            text.lines().any(|l| l.starts_with(&delivered) && l.ends_with(" 1")),
            "ack {ack}: the dead-letter record's delivery is counted under its topic:\n{text}"
        );
        let log = server.log();
        assert!(!log.contains("events lost"), "ack {ack}: nothing was lost:\n{log}");
    }
}

/// A dead-letter topic that refuses the record as well (its default `max.message.bytes` is the
/// broker's): the batch is refused as rejected, naming that topic, and the record is not sent
/// around again.
#[test]
fn a_dead_letter_the_dead_letter_topic_refuses_fails_its_batch_as_rejected() {
    let prefix = unique("dead-letter-refused");
    let dead_letters = format!("{prefix}-dead-letters");
    create_topic(shared_kafka(), &dead_letters, &[]);
    let server = dead_letter_server(&prefix, &dead_letters, "1", false);
    let mut request = timed_batch("dl-2", &prefix, &["big"]);
    request.events[0].event_bytes = vec![b'x'; TOO_LARGE].into();
    let mut ws = server.connect(&[("X-User-ID", "dl-user")]);
    ws.send_batch(&request);
    let reply = ws.reply();
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::BadRequest), "{reply:?}");
    assert!(reply.reason.contains(&format!("topic {dead_letters}")), "{}", reply.reason);
    assert!(reply.reason.contains("rejected: do not send these events again"), "{}", reply.reason);
    let series = r#"kafka_delivery_errors_total{error_code="MSG_SIZE_TOO_LARGE",retriable="false"}"#;
    // Once at its topic, once at the dead-letter topic, and no more.
    scrape_until(&server, &[(series.to_owned(), 2.0)], Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let text = scrape_until(&server, &[(series.to_owned(), 2.0)], Duration::from_secs(1));
    assert!(text.lines().any(|l| l == format!("{series} 2")), "no loop:\n{text}");
    assert!(consume_to_end(shared_kafka(), &dead_letters, Duration::from_secs(30)).is_empty());
}

/// Sends one batch of two events over each transport, each from a connection of its own; the
/// records, in the order sent (the topic has one partition), and the ids used.
fn send_on_every_transport(server: &TestServer, prefix: &str) -> (Vec<Record>, [(&'static str, &'static str); 3]) {
    let ids = [("ws-user", "ws"), ("rest-user", "rest"), ("grpc-user", "grpc")];
    let mut ws = server.connect(&[("X-User-ID", ids[0].0), ("X-User-Group", ids[0].1)]);
    ws.send_batch(&timed_batch("guid-ws", prefix, &["rec", "rec"]));
    assert_success(&ws.reply(), "guid-ws");
    let (status, reply) = rest_post(
        server.addr,
        &timed_batch("guid-rest", prefix, &["rec", "rec"]),
        &[("X-User-ID", ids[1].0), ("X-User-Group", ids[1].1)],
    );
    assert_eq!(status, 200, "{reply:?}");
    assert_success(&reply, "guid-rest");
    let reply = grpc_call(
        server.grpc_addr,
        GRPC_PATH,
        timed_batch("guid-grpc", prefix, &["rec", "rec"]),
        &[("x-user-id", ids[2].0), ("x-user-group", ids[2].1)],
    )
    .expect("gRPC reply");
    assert_success(&reply, "guid-grpc");
    let records =
        consume_full(shared_kafka(), &format!("{prefix}-rec-log"), 6, raccoon_testkit::consume::CONSUME_LIMIT);
    assert_eq!(records.len(), 6, "two events per transport, no copies");
    (records, ids)
}

#[test]
fn every_record_key_and_the_headers_read_back_for_every_transport() {
    for key in ["none", "conn_id", "conn_group", "req_guid"] {
        let prefix = unique(&format!("records-{}", key.replace('_', "-")));
        // Raccoon's records by default; headers with every key choice but none.
        let headers = key != "none";
        let mut env = vec![("EVENT_ACK", "1"), ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group")];
        let pattern = format!("{prefix}-%s-log");
        env.push(("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern));
        if key != "none" {
            env.push(("PUBLISHER_KAFKA_RECORD_KEY", key));
            env.push(("PUBLISHER_KAFKA_RECORD_HEADERS", "true"));
        }
        let server = start_server(shared_kafka(), &env);
        let (records, ids) = send_on_every_transport(&server, &prefix);
        for (n, record) in records.iter().enumerate() {
            let ((id, group), transport, index) = (ids[n / 2], ["ws", "rest", "grpc"][n / 2], n % 2);
            let guid = format!("guid-{transport}");
            assert!(
                record.payload.starts_with(format!("{prefix}/{guid}/{index}/").as_bytes()),
                "{key}: record {n} in order"
            );
            let want_key = match key {
                "none" => None,
                "conn_id" => Some(id.to_owned()),
                "conn_group" => Some(group.to_owned()),
                "req_guid" => Some(guid.clone()),
                _ => unreachable!(),
            };
            assert_eq!(record.key.as_deref(), want_key.as_ref().map(String::as_bytes), "{key}: {transport} key");
            if !headers {
                assert!(record.headers.is_empty(), "{key}: Raccoon's records have no headers: {:?}", record.headers);
                continue;
            }
            let want = [
                ("raccoon-conn-id", id),
                ("raccoon-conn-group", group),
                ("raccoon-req-guid", &guid),
                ("raccoon-sent-time", sent_time().1),
                ("raccoon-event-index", &index.to_string()),
            ];
            let got: Vec<(&str, &str)> =
                record.headers.iter().map(|(n, v)| (n.as_str(), std::str::from_utf8(v).unwrap())).collect();
            assert_eq!(got, want, "{key}: {transport} headers");
        }
    }
}
