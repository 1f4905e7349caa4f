//! End to end: the real server binary with several shards, real WebSocket clients, a real Kafka
//! broker, and a consumer that reads back exactly what was sent.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use raccoon_protocol::pb;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// Several connections across two shards, several batches in flight per connection, two event
/// types: every batch gets exactly one reply echoing its req_guid, and every event is in the
/// topic its type names, byte for byte.
///
/// Each record carries the time its batch was published as its timestamp (CreateTime): the
/// publisher thread hands the batch's events for a topic to librdkafka in one
/// `rd_kafka_produce_batch` call, which reads the wall clock once (`rd_uclock() / 1000`, the
/// same clock and truncation as [`unix_millis`]). So each record's timestamp lies in its own
/// batch's window, from just before the batch was sent (the server cannot have stamped it
/// earlier) to a moment it had certainly been stamped: with `EVENT_ACK=1` the reply, which
/// waits for Kafka's delivery report; with `EVENT_ACK=0` the reply goes out once the batch is
/// queued, possibly before the publisher took it, so the bound is the moment the record had
/// been read back from Kafka. A timestamp from anywhere else (the client's `sent_time`, whole
/// seconds taken before the send; 0; the server's start) falls outside these windows.
fn deliver_and_read_back(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("e2e-ack{event_ack}"));
    let pattern = format!("{prefix}-%s-log");
    let server = start_server(
        kafka,
        &[
            ("SERVER_SHARDS", "2"),
            ("EVENT_ACK", event_ack),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern),
            ("PUBLISHER_KAFKA_PRODUCER_THREADS", "2"),
        ],
    );
    let mut sent = Vec::new();
    // Per req_guid: when the batch was sent and when its reply had arrived (Unix ms).
    let mut windows: HashMap<String, (i64, i64)> = HashMap::new();
    let mut clients: Vec<Client> = (0..6).map(|i| server.connect(&[("X-User-ID", &format!("user-{i}"))])).collect();
    for (c, client) in clients.iter_mut().enumerate() {
        let mut guids = HashSet::new();
        for b in 0..5 {
            let guid = format!("c{c}-b{b}");
            let req = batch(&guid, &prefix, &["page", "click"], 1 + b * 3);
            windows.insert(guid.clone(), (unix_millis(), i64::MAX));
            client.send_batch(&req);
            guids.insert(guid);
            sent.push(req);
        }
        // All five are in flight before the first reply is read.
        let mut replied = HashSet::new();
        for _ in 0..5 {
            let reply = client.reply();
            let replied_at = unix_millis();
            let guid = reply.data.get("req_guid").cloned().unwrap_or_default();
            assert_success(&reply, &guid);
            assert!(guids.contains(&guid), "reply for unknown req_guid {guid:?}");
            assert!(replied.insert(guid.clone()), "two replies for {guid}");
            windows.get_mut(&guid).expect("a window per batch sent").1 = replied_at;
        }
    }
    let batch_of: HashMap<&[u8], &str> =
        sent.iter().flat_map(|b| b.events.iter().map(|e| (&e.event_bytes[..], b.req_guid.as_str()))).collect();
    for (topic, want) in &expected_by_topic(&prefix, &sent) {
        let records = consume_records(kafka, topic, want.len(), raccoon_testkit::consume::CONSUME_LIMIT);
        let read_back = unix_millis();
        let (mut got, mut want): (Vec<&[u8]>, Vec<&[u8]>) =
            (records.iter().map(|(p, _)| &p[..]).collect(), want.iter().map(|p| &p[..]).collect());
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "topic {topic}: got {} records, want {}", got.len(), want.len());
        assert_eq!(got, want, "topic {topic}: payloads differ");
        for (payload, timestamp) in &records {
            let guid = batch_of[&payload[..]];
            let (sent_at, replied_at) = windows[guid];
            let (bound, stamped_by) =
                if event_ack == "1" { ("its reply", replied_at) } else { ("its read-back", read_back) };
            let timestamp = timestamp.unwrap_or_else(|| panic!("{topic}: a record of {guid} has no timestamp"));
            assert!(
                (sent_at..=stamped_by).contains(&timestamp),
                "{topic}: a record of {guid} has timestamp {timestamp}, not between the batch's send ({sent_at}) \
                 and {bound} ({stamped_by})"
            );
        }
    }
}

/// Now, in milliseconds since the epoch, truncated: as librdkafka stamps a record.
fn unix_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn ack_on_delivery_reaches_kafka_byte_for_byte() {
    deliver_and_read_back("1");
}

#[test]
fn ack_on_receipt_reaches_kafka_byte_for_byte() {
    deliver_and_read_back("0");
}

/// Waits until `/metrics` shows `duplicates` dropped copies and `read` batches read (the
/// default group).
fn assert_dedup_counts(server: &TestServer, duplicates: f64, read: f64) {
    let g = "conn_group=\"--default--\"";
    let want = [
        (format!("events_duplicate_total{{{g},reason=\"duplicate\"}}"), duplicates),
        (format!("batches_read_total{{status=\"success\",reason=\"NA\",{g}}}"), read),
    ];
    scrape_until(server, &want, Duration::from_secs(15));
}

/// With dedup on, a batch sent again on the same connection gets the original's reply and is
/// published once; a batch without a req_guid is never a duplicate; another connection's batch
/// with the same req_guid is its own. Each dropped copy is counted, and not as a batch read.
fn duplicates_are_answered_and_published_once(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("dedup-ack{event_ack}"));
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", event_ack),
            ("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "true"),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut client = server.connect(&[("X-User-ID", "dedup-1")]);
    let original = batch("retried", &prefix, &["click", "view"], 4);
    // Back to back (with EVENT_ACK=1 the copy usually arrives while the original is in flight),
    // then once more after both replies.
    client.send_batch(&original);
    client.send_batch(&original);
    assert_success(&client.reply(), "retried");
    assert_success(&client.reply(), "retried");
    client.send_batch(&original);
    assert_success(&client.reply(), "retried");

    let unnamed = batch("", &prefix, &["click"], 2);
    for _ in 0..2 {
        client.send_batch(&unnamed);
        assert_success(&client.reply(), "");
    }
    let mut other = server.connect(&[("X-User-ID", "dedup-2")]);
    other.send_batch(&original);
    assert_success(&other.reply(), "retried");

    let published = [original.clone(), unnamed.clone(), unnamed, original];
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &published));
    assert_dedup_counts(&server, 2.0, 4.0);
}

#[test]
fn duplicates_are_dropped_when_acking_on_receipt() {
    duplicates_are_answered_and_published_once("0");
}

#[test]
fn duplicates_are_dropped_when_acking_on_delivery() {
    duplicates_are_answered_and_published_once("1");
}

#[test]
fn a_copy_of_a_batch_in_flight_gets_its_failure_and_a_later_retry_is_published() {
    // The broker is a socket that accepts and never answers: librdkafka gives up on the events
    // after the 1.5 s message timeout (never sent, so not published), before the batch deadline,
    // so the copy certainly arrives while the original is in flight. It must not be answered
    // with success.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = start_server(
        &silent.local_addr().unwrap().to_string(),
        &[
            ("EVENT_ACK", "1"),
            ("PUBLISHER_KAFKA_CLIENT_MESSAGE_TIMEOUT_MS", "1500"),
            ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", "30000"),
            ("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "true"),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    );
    let mut client = server.connect(&[]);
    let doomed = batch("doomed", "nobroker", &["a"], 3);
    let assert_failed = |reply: pb::SendEventResponse| {
        assert_eq!(reply.code(), pb::Code::InternalError, "{reply:?}");
        assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("doomed"));
        assert!(reply.reason.starts_with("cannot publish events: 3 of 3 events failed"), "{}", reply.reason);
        assert!(reply.reason.ends_with("(retry: none of the batch was published)"), "{}", reply.reason);
    };
    let started = Instant::now();
    client.send_batch(&doomed);
    client.send_batch(&doomed);
    assert_failed(client.reply());
    assert_failed(client.reply());
    assert!(started.elapsed() >= Duration::from_millis(1500), "answered before the message timeout");

    // The failed batch was forgotten: a retry is published again (and fails again: by its own
    // message timeout, or at once once the health check has found no broker) rather than being
    // answered from memory, which the counts below tell apart.
    client.send_batch(&doomed);
    assert_failed(client.reply());
    assert_dedup_counts(&server, 1.0, 2.0);
    drop(silent);
}

#[test]
fn static_pattern_routes_every_type_to_one_topic() {
    let kafka = shared_kafka();
    let topic = unique("static");
    let server = start_server(kafka, &[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &topic)]);
    let mut client = server.connect(&[]);
    let req = batch("s-1", &topic, &["a", "b", "c"], 6);
    client.send_batch(&req);
    assert_success(&client.reply(), "s-1");
    let mut got = consume(kafka, &topic, 6, Duration::from_secs(60));
    let mut want: Vec<Vec<u8>> = req.events.iter().map(|e| e.event_bytes.to_vec()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn malformed_frame_gets_bad_request_and_connection_stays_open() {
    let kafka = shared_kafka();
    let prefix = unique("malformed");
    let server = start_server(
        kafka,
        &[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    let mut client = server.connect(&[("X-User-ID", "1234")]);

    client.send_raw(Message::Binary(Bytes::from_static(&[0x01])));
    let reply = client.reply();
    assert_eq!(reply.status(), pb::Status::Error);
    assert_eq!(reply.code(), pb::Code::BadRequest);
    assert!(reply.reason.starts_with("cannot deserialize request: "), "{}", reply.reason);
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some(""));

    // An event type that cannot name a Kafka topic: refused before anything is published.
    let mut bad = batch("bad-type", &prefix, &["ok"], 2);
    bad.events[1].r#type = "page view".into();
    client.send_batch(&bad);
    let reply = client.reply();
    assert_eq!(reply.code(), pb::Code::BadRequest);
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("bad-type"));
    assert!(reply.reason.contains("index 1"), "{}", reply.reason);

    // Text frames (JSON) are answered in kind.
    client.send_raw(Message::Text("\"\"".into()));
    match client.next() {
        Message::Text(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["status"], 2);
            assert_eq!(json["code"], 2);
            assert_eq!(json["data"]["req_guid"], "");
        }
        other => panic!("expected a text reply, got {other:?}"),
    }

    // Still open and working.
    let good = batch("good", &prefix, &["ok"], 3);
    client.send_batch(&good);
    assert_success(&client.reply(), "good");
    // Only the good batch's events exist: the refused one published nothing.
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &[good]));
}

#[test]
fn empty_batch_is_acknowledged_without_kafka() {
    // Point at a port where no broker listens: an empty batch needs no Kafka at all.
    let server = start_server("127.0.0.1:1", &[("EVENT_ACK", "1")]);
    let mut client = server.connect(&[]);
    client.send_batch(&pb::SendEventRequest { req_guid: "empty".into(), ..Default::default() });
    assert_success(&client.reply(), "empty");
}

#[test]
fn oversized_frame_is_closed_with_1009_after_in_flight_replies() {
    let kafka = shared_kafka();
    let prefix = unique("oversize");
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "1"),
            ("SERVER_WEBSOCKET_MAX_FRAME_BYTES", "2048"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut client = server.connect(&[]);
    let first = batch("before", &prefix, &["x"], 2);
    client.send_batch(&first);
    client.send_raw(Message::Binary(Bytes::from(vec![0u8; 4096])));
    // The batch sent before the oversized frame is still answered (after Kafka has it) ...
    assert_success(&client.reply(), "before");
    // ... then the connection is closed with "message too big", naming both sizes.
    match client.next() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Size);
            assert_eq!(frame.reason.as_str(), "frame of 4096 bytes exceeds max_frame_bytes 2048");
        }
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &[first]));
}

#[test]
fn publish_failure_is_reported_with_reason_when_acking_on_delivery() {
    // No broker on this port: the batch must come back as an error that says why and to
    // retry, never as a success.
    let server = start_server("127.0.0.1:1", &[("EVENT_ACK", "1")]);
    server.wait_for_log("Kafka known down", |log| log.contains("every broker is down"));
    let mut client = server.connect(&[]);
    client.send_batch(&batch("doomed", "nobroker", &["a"], 3));
    let reply = client.reply();
    assert_eq!(reply.status(), pb::Status::Error);
    assert_eq!(reply.code(), pb::Code::InternalError);
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("doomed"));
    assert!(reply.reason.starts_with("cannot publish events: 3 of 3 events failed"), "{}", reply.reason);
    assert!(reply.reason.contains("clickstream-a-log"), "{}", reply.reason);
    assert!(reply.reason.ends_with("(retry: none of the batch was published)"), "{}", reply.reason);
}

/// librdkafka's queue full: a batch whose client waits is answered "retry" once the queue has
/// stayed full for `PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS`, not at its deadline, and a batch behind
/// it does not wait again while the queue stays full. The broker is a socket that never
/// answers, and librdkafka's queue holds 10 events.
#[test]
fn a_batch_that_finds_librdkafkas_queue_full_is_answered_retry_after_the_wait() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = start_server(
        &silent.local_addr().unwrap().to_string(),
        &[
            ("EVENT_ACK", "1"),
            ("PUBLISHER_KAFKA_CLIENT_QUEUE_BUFFERING_MAX_MESSAGES", "10"),
            ("PUBLISHER_KAFKA_CLIENT_BATCH_NUM_MESSAGES", "10"),
            ("PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS", "300"),
            ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", "60000"),
        ],
    );
    let mut client = server.connect(&[]);
    let started = Instant::now();
    client.send_batch(&batch("overflow", "full", &["a"], 20));
    let reply = client.reply();
    let took = started.elapsed();
    assert_eq!(reply.code(), pb::Code::InternalError, "{reply:?}");
    assert!(reply.reason.contains("librdkafka's queue stayed full for 300 ms"), "{}", reply.reason);
    assert!(reply.reason.contains("still queued for Kafka"), "10 of its events are queued: {}", reply.reason);
    assert!(took >= Duration::from_millis(300), "answered before the wait: {took:?}");
    assert!(took < Duration::from_secs(30), "answered at {took:?}, as if by the deadline");

    // The queue is still full: the next batch is refused without waiting again, not published.
    client.send_batch(&batch("behind", "full", &["a"], 5));
    let reply = client.reply();
    assert_eq!(reply.code(), pb::Code::InternalError, "{reply:?}");
    assert!(reply.reason.starts_with("cannot publish events: 5 of 5 events failed"), "{}", reply.reason);
    assert!(reply.reason.ends_with("(retry: none of the batch was published)"), "{}", reply.reason);
    drop(silent);
}

/// A batch librdkafka holds longer than `PUBLISHER_KAFKA_BATCH_DEADLINE_MS` is answered "retry,
/// still queued" at its deadline, not after librdkafka's message timeout, and with dedup a copy
/// sent meanwhile is not published again. The broker here is a listening socket that never
/// answers, so librdkafka neither delivers nor declares every broker down in time.
#[test]
fn a_batch_past_its_deadline_is_answered_retry_and_its_copy_is_not_published() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let server = start_server(
        &addr,
        &[
            ("EVENT_ACK", "1"),
            ("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "true"),
            ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", "700"),
        ],
    );
    let mut client = server.connect(&[]);
    let slow = batch("slow", "silent", &["a"], 2);
    let started = Instant::now();
    client.send_batch(&slow);
    let reply = client.reply();
    let took = started.elapsed();
    assert_eq!(reply.code(), pb::Code::InternalError, "{reply:?}");
    assert!(reply.reason.contains("not acknowledged within 700 ms"), "{}", reply.reason);
    assert!(reply.reason.contains("still queued for Kafka and may yet be published"), "{}", reply.reason);
    // Answered by the deadline: after it, and long before the 300 s message timeout.
    assert!(took >= Duration::from_millis(700), "answered before its deadline: {took:?}");
    assert!(took < Duration::from_secs(60), "answered at {took:?}");
    client.send_batch(&slow);
    let copy = client.reply();
    assert_eq!(copy.code(), pb::Code::InternalError, "{copy:?}");
    assert!(copy.reason.contains("an earlier copy of this batch is still queued for Kafka"), "{}", copy.reason);
    drop(silent);
}

#[test]
fn connection_limit_answers_code_4_then_closes_1008() {
    let server = start_server(shared_kafka(), &[("SERVER_SHARDS", "1"), ("SERVER_WEBSOCKET_MAX_CONN", "2")]);
    let _a = server.connect(&[("X-User-ID", "a")]);
    let _b = server.connect(&[("X-User-ID", "b")]);
    let mut c = server.connect(&[("X-User-ID", "c")]);
    let reply = c.reply();
    assert_eq!(reply.status(), pb::Status::Error);
    assert_eq!(reply.code(), pb::Code::MaxConnectionLimitReached);
    assert_eq!(reply.reason, "max connection reached");
    assert!(reply.data.is_empty());
    match c.next() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert_eq!(frame.reason.as_str(), "Max connection reached");
        }
        other => panic!("expected close 1008, got {other:?}"),
    }
    // A closed connection frees its slot.
    drop(_a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = server.connect(&[("X-User-ID", "d")]);
        d.send_batch(&pb::SendEventRequest { req_guid: "probe".into(), ..Default::default() });
        let reply = d.reply();
        if reply.code() == pb::Code::Ok {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn server_pings_and_drops_silent_clients() {
    let server = start_server(
        shared_kafka(),
        &[("SERVER_WEBSOCKET_PING_INTERVAL_MS", "200"), ("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "1000")],
    );
    // A reading client sees pings with Raccoon's payload, answers them and stays connected.
    let mut live = server.connect(&[("X-User-ID", "live")]);
    live.set_read_timeout(Duration::from_secs(5));
    // At least 2.5 s (twice the ping interval plus the pong wait) and 5 pings; each ping is due
    // an interval after the one before was sent, so late timers on a busy machine make them come
    // later, not fewer: up to twice the 2.5 s for them.
    let mut pings = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) || pings < 5 {
        assert!(started.elapsed() < Duration::from_secs(5), "only {pings} pings in 5 s at a 200 ms interval");
        if let Message::Ping(payload) = live.ws.read().unwrap() {
            assert_eq!(&payload[..], b"--ping--");
            pings += 1;
        }
    }
    live.send_batch(&pb::SendEventRequest { req_guid: "alive".into(), ..Default::default() });
    assert_success(&live.reply(), "alive");

    // A client that never reads never answers pings: dropped one ping interval plus the pong
    // wait after its upgrade (1.2 s). Waited for on the socket, which is never read: reading it
    // would answer the pings. Not before (counted from before the upgrade), and not much later
    // (counted from its end).
    let requested = Instant::now();
    let silent = server.connect(&[("X-User-ID", "silent")]);
    let upgraded = Instant::now();
    let gone = hangup_within(silent.ws.get_ref(), Duration::from_secs(15)).expect("silent client was not dropped");
    let (due, margin) = (Duration::from_millis(200 + 1000), Duration::from_millis(800));
    assert!(
        gone - requested >= due && gone - upgraded <= due + margin,
        "silent client dropped {:?} after its upgrade began, {:?} after it ended",
        gone - requested,
        gone - upgraded
    );
}

#[test]
fn http_port_answers_ping_and_errors() {
    let server = start_server(shared_kafka(), &[]);
    let pong = server.http("GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(pong.starts_with("HTTP/1.1 200 OK\r\n"), "{pong}");
    assert!(pong.ends_with("\r\n\r\npong"), "{pong}");
    let missing = server.http("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let put = server.http("PUT /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(put.starts_with("HTTP/1.1 405 "), "{put}");
    let not_ws = server.http("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(not_ws.starts_with("HTTP/1.1 400 "), "{not_ws}");
    let garbage = server.http("\x16\x03\x01garbage\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    // Keep-alive: two pings on one connection.
    let two =
        server.http("GET /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(two.matches("pong").count(), 2, "{two}");
}

#[test]
fn shutdown_answers_in_flight_batches_then_closes_1001() {
    let kafka = shared_kafka();
    let prefix = unique("shutdown");
    let mut server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "1"),
            ("SERVER_SHARDS", "2"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            // librdkafka holds every event for 2 s, so all ten batches, read by the server (the
            // pong below says when), are still unacknowledged when the signal arrives.
            ("PUBLISHER_KAFKA_CLIENT_LINGER_MS", "2000"),
        ],
    );
    let mut client = server.connect(&[]);
    let batches: Vec<_> = (0..10).map(|i| batch(&format!("sd-{i}"), &prefix, &["x", "y"], 20)).collect();
    for b in &batches {
        client.send_batch(b);
    }
    // The connection's reader takes frames in order and hands each batch over before it reads
    // the next frame, so the pong for a ping sent behind them means all ten were read.
    client.send_raw(Message::Ping(Bytes::from_static(b"all read?")));
    let mut answered = HashSet::new();
    let mut record = |reply: pb::SendEventResponse| {
        let guid = reply.data["req_guid"].clone();
        assert_success(&reply, &guid);
        assert!(answered.insert(guid.clone()), "two replies for {guid}");
    };
    let deadline = Instant::now() + REPLY_LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no pong within {REPLY_LIMIT:?}");
        match client.ws.read().expect("read from server") {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"all read?");
                break;
            }
            Message::Ping(_) => {}
            // Only on a machine that took longer than the linger to get here.
            Message::Binary(b) => record(<pb::SendEventResponse as prost::Message>::decode(b).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let status = {
        // Terminate while the batches are in flight; the server must answer them all first.
        server.terminate_async();
        loop {
            match client.next() {
                Message::Binary(b) => record(<pb::SendEventResponse as prost::Message>::decode(b).unwrap()),
                Message::Close(Some(frame)) => {
                    assert_eq!(frame.code, CloseCode::Away);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answered.len(), 10, "every in-flight batch is answered before the close");
        server.wait(Duration::from_secs(30))
    };
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &batches));
}

#[test]
fn bad_configuration_fails_at_startup_naming_the_key() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_raccoon")).env_clear().env("EVENT_ACK", "2").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("EVENT_ACK"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raccoon"))
        .env_clear()
        .env("SERVER_BIND_ADDRESS", "127.0.0.1")
        .env("SERVER_WEBSOCKET_PORT", "0")
        .env("PUBLISHER_KAFKA_CLIENT_NO_SUCH_PROPERTY", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no.such.property"), "{stderr}");

    // The producer is idempotent by default: a setting that conflicts with it fails startup
    // with librdkafka's words naming the property, and turning idempotence off allows it.
    let start_with = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_raccoon"));
        command.env_clear().env("SERVER_BIND_ADDRESS", "127.0.0.1").env("SERVER_WEBSOCKET_PORT", "0");
        command.env("SERVER_GRPC_PORT", "0").env("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", "127.0.0.1:1");
        command.envs(env.iter().copied()).stdin(std::process::Stdio::null());
        command
    };
    for (property, env, value) in
        [("acks", "PUBLISHER_KAFKA_CLIENT_ACKS", "1"), ("max.in.flight", "PUBLISHER_KAFKA_CLIENT_MAX_IN_FLIGHT", "10")]
    {
        let output = start_with(&[(env, value)]).output().unwrap();
        assert!(!output.status.success(), "{env}={value} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(property) && stderr.contains("enable.idempotence"), "{env}: {stderr}");
    }
    let mut allowed =
        start_with(&[("PUBLISHER_KAFKA_CLIENT_ACKS", "1"), ("PUBLISHER_KAFKA_CLIENT_ENABLE_IDEMPOTENCE", "false")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(allowed.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains(r#""raccoon":"listening""#), "acks=1 without idempotence starts: {line:?}");
    allowed.kill().unwrap();
    allowed.wait().unwrap();

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_raccoon")).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"));
}

/// Spec 5.3: a client's ping is answered with a pong carrying the same payload.
#[test]
fn client_pings_get_pongs_with_their_payload() {
    let server = start_server(shared_kafka(), &[]);
    let mut client = server.connect(&[("X-User-ID", "pinger")]);
    for payload in [&b"hello"[..], b"", &[0u8, 255, 7]] {
        client.send_raw(Message::Ping(Bytes::copy_from_slice(payload)));
        let deadline = Instant::now() + REPLY_LIMIT;
        loop {
            assert!(Instant::now() < deadline, "no pong for {payload:?}");
            match client.ws.read().expect("read") {
                Message::Pong(got) => {
                    assert_eq!(&got[..], payload);
                    break;
                }
                Message::Ping(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    client.close();
}

/// Spec 3.1: an empty `type` fills the pattern's `%s` with nothing (`clickstream--log` for the
/// default pattern), over every transport.
#[test]
fn an_empty_type_routes_to_the_pattern_without_it() {
    let kafka = shared_kafka();
    let prefix = unique("empty-type");
    let server = start_server(
        kafka,
        &[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    let mut client = server.connect(&[]);
    let req = batch("e-1", &prefix, &[""], 3);
    client.send_batch(&req);
    assert_success(&client.reply(), "e-1");
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &[req]));
}

/// The opening handshake however it arrives: whole in one read (answered without hyper), cut
/// into pieces (hyper reads it), or with the first batch right behind it in the same write.
/// Each gets the same 101, its batch is answered, and its events are in Kafka.
#[test]
fn handshakes_whole_split_or_with_a_batch_behind_them_all_deliver() {
    let kafka = shared_kafka();
    let prefix = unique("handshake");
    let pattern = format!("{prefix}-%s-log");
    let server = start_server(kafka, &[("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern)]);
    let accept = tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    let header = |head: &str, name: &str| {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let cases: [(&str, &[usize], bool); 4] =
        [("whole", &[], false), ("split", &[20, 90], false), ("pipelined", &[], true), ("split-pipelined", &[5], true)];
    let mut sent = Vec::new();
    for (i, (name, cuts, pipelined)) in cases.into_iter().enumerate() {
        let req = batch(name, &prefix, &["hs"], 2);
        let after = if pipelined { client_frame(&req) } else { Vec::new() };
        let (head, mut client) = upgrade_by_hand(server.addr, &[("X-User-ID", &format!("hs-{i}"))], cuts, &after);
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{name}: {head}");
        assert_eq!(header(&head, "sec-websocket-accept").as_deref(), Some(accept.as_str()), "{name}: {head}");
        assert_eq!(header(&head, "upgrade").as_deref(), Some("websocket"), "{name}: {head}");
        assert_eq!(header(&head, "connection").as_deref(), Some("Upgrade"), "{name}: {head}");
        if !pipelined {
            client.send_batch(&req);
        }
        assert_success(&client.reply(), name);
        client.close();
        sent.push(req);
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}
