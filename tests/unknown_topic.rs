//! Spec 5.3: with `EVENT_ACK=1`, a batch for a topic that does not exist, on a broker that does
//! not create topics, fails with `CODE_INTERNAL_ERROR` and its `req_guid` on every transport
//! (REST: 500), and the server keeps serving. Runs a broker of its own with
//! `auto.create.topics.enable=false`.

mod common;

use std::time::Duration;

use common::*;
use raccoon_protocol::pb;

fn assert_failed(reply: &pb::SendEventResponse, req_guid: &str) {
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::InternalError), "{reply:?}");
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some(req_guid));
    assert!(reply.reason.starts_with("cannot publish events: "), "{}", reply.reason);
    assert!(reply.reason.contains("Unknown topic"), "the missing topic is named: {}", reply.reason);
}

#[test]
fn a_missing_topic_fails_the_batch_on_every_transport() {
    let broker = PrivateBroker::new("no-auto-create", &[("KAFKA_AUTO_CREATE_TOPICS", "false")]);
    broker.run("start");
    let prefix = unique("missing");
    let server = start_server(
        &broker.addr,
        &[
            ("EVENT_ACK", "1"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            // librdkafka gives up on a topic the cluster does not know after
            // topic.metadata.propagation.max.ms (30 s by default, during which the batch deadline
            // answers "retry"); shortened here so that the missing topic decides the reply.
            ("PUBLISHER_KAFKA_CLIENT_TOPIC_METADATA_PROPAGATION_MAX_MS", "1000"),
            ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", "30000"),
        ],
    );
    server.wait_for_status("/health/ready", 200, Duration::from_secs(15));

    let mut ws = server.connect(&[("X-User-ID", "missing")]);
    ws.send_batch(&batch("ws-missing", &prefix, &["nowhere"], 2));
    assert_failed(&ws.reply(), "ws-missing");

    let (status, reply) = rest_post(server.addr, &batch("rest-missing", &prefix, &["nowhere"], 2), &[]);
    assert_eq!(status, 500, "{reply:?}");
    assert_failed(&reply, "rest-missing");

    let path = "/raystack.raccoon.v1beta1.EventService/SendEvent";
    let reply =
        grpc_call(server.grpc_addr, path, batch("grpc-missing", &prefix, &["nowhere"], 2), &[("x-user-id", "m")])
            .expect("a missing topic is a reply with grpc-status OK, as Raccoon's");
    assert_failed(&reply, "grpc-missing");

    // The connection and the server carry on.
    assert_eq!(server.get("/ping").0, 200);
    ws.send_batch(&batch("ws-empty", &prefix, &[], 0));
    assert_success(&ws.reply(), "ws-empty");
}
