//! Kafka faults the shared broker can show without being stopped, against the real binary with
//! `EVENT_ACK=1`:
//!
//! * a record larger than the broker's `message.max.bytes` is rejected for good: answered
//!   `CODE_BAD_REQUEST` on every transport (REST 400, gRPC `OK` with the reply), counted as a
//!   non-retriable delivery error, and the connection carries on;
//! * a fatal producer error (raised on demand with the SIGUSR2 fault drill, which calls
//!   librdkafka's `rd_kafka_test_fatal_error`) does not wedge the server: the producer is rebuilt,
//!   every batch is answered (success or "retry"), and what was answered success is in Kafka once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use raccoon_protocol::pb;

/// One event larger than the broker takes (Kafka's `message.max.bytes` default: 1,048,588).
const TOO_LARGE: usize = 1_200_000;

fn assert_rejected(reply: &pb::SendEventResponse, req_guid: &str) {
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::BadRequest), "{reply:?}");
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some(req_guid));
    assert!(reply.reason.contains("Message size too large"), "{}", reply.reason);
    assert!(reply.reason.contains("rejected: do not send these events again"), "{}", reply.reason);
}

#[test]
fn a_record_the_broker_rejects_is_answered_bad_request_on_every_transport() {
    let prefix = unique("rejected");
    let server = start_server(
        shared_kafka(),
        &[
            ("EVENT_ACK", "1"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            // librdkafka's own limit is raised so that the broker is the one to refuse.
            ("PUBLISHER_KAFKA_CLIENT_MESSAGE_MAX_BYTES", "4000000"),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    );
    let large = |guid: &str| {
        let mut request = batch(guid, &prefix, &["big"], 1);
        request.events[0].event_bytes = vec![b'x'; TOO_LARGE].into();
        request
    };

    let mut ws = server.connect(&[("X-User-ID", "rejected")]);
    ws.send_batch(&large("ws-large"));
    assert_rejected(&ws.reply(), "ws-large");

    let (status, reply) = rest_post(server.addr, &large("rest-large"), &[]);
    assert_eq!(status, 400, "{reply:?}");
    assert_rejected(&reply, "rest-large");

    let path = "/raystack.raccoon.v1beta1.EventService/SendEvent";
    let reply = grpc_call(server.grpc_addr, path, large("grpc-large"), &[("x-user-id", "rejected")])
        .expect("a rejected batch is a reply, not a gRPC error");
    assert_rejected(&reply, "grpc-large");

    // Counted by librdkafka's name for the error, as not retriable.
    let series = r#"kafka_delivery_errors_total{error_code="MSG_SIZE_TOO_LARGE",retriable="false"}"#;
    scrape_until(&server, &[(series.to_owned(), 3.0)], Duration::from_secs(10));

    // The connection and the topic carry on.
    let small = batch("ws-small", &prefix, &["big"], 2);
    ws.send_batch(&small);
    assert_success(&ws.reply(), "ws-small");
    assert_topics_hold(shared_kafka(), &expected_by_topic(&prefix, &[small]));
}

#[test]
fn a_fatal_producer_error_rebuilds_the_producer_and_every_batch_is_answered() {
    let prefix = unique("fatal");
    let server = start_server(
        shared_kafka(),
        &[
            ("EVENT_ACK", "1"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    // Batches keep flowing while the drill happens, so that the old producer holds some.
    let client = {
        let (stop, sent, acked, prefix) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&acked), prefix.clone());
        let mut ws = server.connect(&[("X-User-ID", "fatal")]);
        std::thread::spawn(move || {
            let (mut n, mut retried) = (0, 0);
            while !stop.load(Ordering::Acquire) {
                let request = batch(&format!("f{n}"), &prefix, &["a", "b"], 20);
                n += 1;
                sent.lock().unwrap().push(request.clone());
                ws.send_batch(&request);
                let reply = ws.reply();
                match reply.code() {
                    pb::Code::Ok => acked.lock().unwrap().push(request.req_guid),
                    pb::Code::InternalError if reply.reason.contains("(retry") => retried += 1,
                    _ => panic!("neither success nor retry: {reply:?}"),
                }
            }
            retried
        })
    };
    let has_acks = || !acked.lock().unwrap().is_empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_acks() {
        assert!(Instant::now() < deadline, "no batch succeeded before the drill");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.fault_drill();
    scrape_until(&server, &[("kafka_producer_rebuilds_total".to_owned(), 1.0)], Duration::from_secs(10));
    server.wait_for_log("the rebuild", |log| log.contains("fatal producer error: producer rebuilt"));
    // The new producer publishes.
    let before = acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < before + 5 {
        assert!(Instant::now() < deadline, "no batch succeeded after the rebuild:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    let retried = client.join().expect("the client failed");
    let (sent, acked) = (sent.lock().unwrap().clone(), acked.lock().unwrap().clone());
    eprintln!("fault drill: {} batches sent, {} acknowledged, {retried} answered retry", sent.len(), acked.len());
    assert_acked_once(shared_kafka(), &prefix, &sent, &acked);
}
