//! Backpressure: when a connection has too many unanswered batches, or its publisher queue is
//! full, the server stops reading that socket. The proof is in the kernel: the bytes the client
//! sent pile up unread in the socket queues (`/proc/net/tcp`), and drain once Kafka catches up. Every batch is still answered and every event lands in Kafka.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use raccoon_protocol::pb;

/// `count` batches of `events` events with `payload_bytes`-byte payloads (unique per event).
fn big_batches(prefix: &str, count: usize, events: usize, payload_bytes: usize) -> Vec<pb::SendEventRequest> {
    (0..count)
        .map(|i| {
            let mut b = batch(&format!("bp-{i}"), prefix, &["bulk"], events);
            for event in &mut b.events {
                let mut payload = event.event_bytes.to_vec();
                payload.resize(payload_bytes, b'x');
                event.event_bytes = Bytes::from(payload);
            }
            b
        })
        .collect()
}

/// Bytes of the first `count` batches on the wire, as the client frames them.
fn frames_bytes(batches: &[pb::SendEventRequest], count: usize) -> u64 {
    batches[..count].iter().map(|b| client_frame(b).len() as u64).sum()
}

/// Sends every batch, waits until the server has read the `read_first` it may read, checks it
/// then reads no further and leaves a good part of them unread in the kernel, then collects one
/// success per batch and reads everything back from Kafka.
fn assert_backpressure(
    server: &TestServer,
    prefix: &str,
    batches: &[pb::SendEventRequest],
    read_first: usize,
    min_unread: u64,
) {
    let kafka = shared_kafka();
    let mut client = server.connect(&[("X-User-ID", "bp")]);
    // Bounded: if the server stopped reading for good, the test fails instead of hanging.
    client.ws.get_ref().set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let client_addr = client.ws.get_ref().local_addr().unwrap();
    for b in batches {
        client.send_batch(b);
    }

    // The server reads what it may (so the check below is not passed by a server that has not
    // got round to reading yet), then is given time to read on if it would.
    let left = frames_bytes(batches, batches.len()) - frames_bytes(batches, read_first);
    wait_for_unread_at_most(server.addr, client_addr, left, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let unread = unread_bytes(server.addr, client_addr);
    assert!(unread >= min_unread, "the server read on: only {unread} bytes are left unread (want >= {min_unread})");

    let started = Instant::now();
    let mut answered = Vec::new();
    for _ in batches {
        let reply = client.reply();
        assert_eq!(reply.status(), pb::Status::Success, "{reply:?}");
        answered.push(reply.data["req_guid"].clone());
    }
    answered.sort();
    let mut want: Vec<String> = batches.iter().map(|b| b.req_guid.clone()).collect();
    want.sort();
    assert_eq!(answered, want);
    assert_eq!(unread_bytes(server.addr, client_addr), 0, "everything was read in the end");
    eprintln!("all {} batches answered {:?} after the check", batches.len(), started.elapsed());
    assert_topics_hold(kafka, &expected_by_topic(prefix, batches));
}

#[test]
fn inflight_limit_stops_reading_the_connection() {
    let kafka = shared_kafka();
    let prefix = unique("bp-inflight");
    // One unanswered batch per connection, and librdkafka holds each for 800 ms: the server reads
    // batch 1 (in flight) and batch 2 (waiting for the permit), and leaves the rest in the kernel.
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "1"),
            ("SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES", "1"),
            ("PUBLISHER_KAFKA_CLIENT_LINGER_MS", "800"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    // 6 batches of 32 KiB; at least two of them must still be unread.
    let batches = big_batches(&prefix, 6, 4, 8 << 10);
    assert_backpressure(&server, &prefix, &batches, 2, 64 << 10);
}

#[test]
fn full_publisher_queue_stops_reading_the_connection() {
    let kafka = shared_kafka();
    let prefix = unique("bp-queue");
    // Acks on receipt, so the in-flight limit plays no part. librdkafka takes 4 events at a time
    // and holds them 800 ms; the publisher queue holds one batch. Batch 1 is in librdkafka,
    // batch 2 in the publisher's hands, batch 3 in the queue, batch 4 with the reader, which
    // waits for room and reads nothing more.
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "0"),
            ("WORKER_BUFFER_CHANNEL_SIZE", "1"),
            ("PUBLISHER_KAFKA_PRODUCER_THREADS", "1"),
            ("PUBLISHER_KAFKA_CLIENT_QUEUE_BUFFERING_MAX_MESSAGES", "4"),
            ("PUBLISHER_KAFKA_CLIENT_LINGER_MS", "800"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    );
    // 8 batches of 32 KiB; at least two of them must still be unread.
    let batches = big_batches(&prefix, 8, 4, 8 << 10);
    assert_backpressure(&server, &prefix, &batches, 4, 64 << 10);

    // The waits are counted, on whichever shard took the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get_from(server.prometheus_addr(), "/metrics").1;
        let waits = sum_of(&text, "shard_publisher_queue_full_total");
        if waits >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no publisher-queue wait counted:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn shutdown_while_the_publisher_queue_is_full_loses_nothing_acknowledged() {
    let kafka = shared_kafka();
    let prefix = unique("bp-shutdown");
    // As above, and a drain timeout far longer than the test allows: the close must not wait for
    // the batch that was read but never queued.
    let mut server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "0"),
            ("WORKER_BUFFER_CHANNEL_SIZE", "1"),
            ("PUBLISHER_KAFKA_PRODUCER_THREADS", "1"),
            ("PUBLISHER_KAFKA_CLIENT_QUEUE_BUFFERING_MAX_MESSAGES", "4"),
            ("PUBLISHER_KAFKA_CLIENT_LINGER_MS", "800"),
            ("WORKER_BUFFER_FLUSH_TIMEOUT_MS", "60000"),
            ("PUBLISHER_KAFKA_FLUSH_INTERVAL_MS", "10000"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let batches = big_batches(&prefix, 8, 4, 8 << 10);
    let mut client = server.connect(&[("X-User-ID", "bp")]);
    client.ws.get_ref().set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let client_addr = client.ws.get_ref().local_addr().unwrap();
    for b in &batches {
        client.send_batch(b);
    }
    // The signal comes once the reader holds batch 4, waiting for room in the queue.
    let left = frames_bytes(&batches, batches.len()) - frames_bytes(&batches, 4);
    wait_for_unread_at_most(server.addr, client_addr, left, Duration::from_secs(10));

    server.terminate_async();
    let signalled = Instant::now();
    let mut acknowledged = Vec::new();
    loop {
        match client.next() {
            tungstenite::Message::Binary(frame) => {
                let reply = <pb::SendEventResponse as prost::Message>::decode(frame).unwrap();
                assert_eq!(reply.status(), pb::Status::Success, "{reply:?}");
                acknowledged.push(reply.data["req_guid"].clone());
            }
            tungstenite::Message::Close(Some(frame)) => {
                assert_eq!(frame.code, tungstenite::protocol::frame::coding::CloseCode::Away);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let closed_after = signalled.elapsed();
    assert!(closed_after < Duration::from_secs(10), "the close took {closed_after:?}");
    // The reader was stuck on a full queue, so some batches were never read, hence never answered.
    assert!(acknowledged.len() < batches.len(), "all {} batches were answered", acknowledged.len());
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(!server.log().contains("lost"), "the server reported lost events:\n{}", server.log());

    // Every acknowledged batch is in Kafka, byte for byte; nothing else is.
    let answered: Vec<_> = batches.iter().filter(|b| acknowledged.contains(&b.req_guid)).cloned().collect();
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &answered));
}
