//! The gRPC transport against a stock gRPC client (tonic, with prost messages and no generated
//! stubs), the real binary and the real Kafka: spec 5.2 cases 2 and 8, the legacy paths, both
//! ack modes, and the error statuses.

mod common;

use common::*;
use raccoon_protocol::pb;
use tonic::{Code, Status};

const CURRENT: &str = "/raystack.raccoon.v1beta1.EventService/SendEvent";
const LEGACY: [&str; 2] = ["/odpf.raccoon.v1beta1.EventService/SendEvent", "/odpf.raccoon.EventService/SendEvent"];

/// One unary call to the server's gRPC port.
fn call<M: prost::Message + Default + 'static>(
    server: &TestServer,
    path: &'static str,
    message: M,
    metadata: &[(&'static str, &str)],
) -> Result<pb::SendEventResponse, Status> {
    grpc_call(server.grpc_addr, path, message, metadata)
}

fn publishes_over_every_path(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("grpc-ack{event_ack}"));
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", event_ack),
            ("SERVER_SHARDS", "2"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut sent = Vec::new();
    for (i, path) in [CURRENT, LEGACY[0], LEGACY[1]].into_iter().enumerate() {
        let req = batch(&format!("grpc-{i}"), &prefix, &["type_a", "type_b"], 4);
        let reply = call(&server, path, req.clone(), &[("x-user-id", "1234")]).expect("the call succeeds");
        assert_success(&reply, &req.req_guid);
        sent.push(req);
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}

#[test]
fn grpc_publishes_when_acking_on_receipt() {
    publishes_over_every_path("0");
}

#[test]
fn grpc_publishes_when_acking_on_delivery() {
    publishes_over_every_path("1");
}

/// Spec 5.2 case 2 and the error statuses.
#[test]
fn grpc_errors_have_raccoons_statuses() {
    let server = start_server(shared_kafka(), &[("SERVER_GRPC_MAX_MESSAGE_BYTES", "2048")]);
    let small = batch("small", "g", &["a"], 1);

    let missing = call(&server, CURRENT, small.clone(), &[]).expect_err("no id metadata");
    assert_eq!(missing.code(), Code::Unknown);
    assert_eq!(missing.message(), "connection id header missing");

    let big = batch("big", "g", &["a"], 400);
    let too_large = call(&server, CURRENT, big, &[("x-user-id", "1")]).expect_err("over the limit");
    assert_eq!(too_large.code(), Code::ResourceExhausted, "{too_large:?}");
    assert!(too_large.message().contains("vs. 2048"), "{}", too_large.message());

    // A message whose field 1 is a varint where a string belongs does not decode.
    #[derive(Clone, PartialEq, prost::Message)]
    struct NotARequest {
        #[prost(int64, tag = "1")]
        req_guid: i64,
    }
    let malformed = call(&server, CURRENT, NotARequest { req_guid: 7 }, &[("x-user-id", "1")]).expect_err("malformed");
    assert_eq!(malformed.code(), Code::Internal, "{malformed:?}");
    assert!(malformed.message().starts_with("grpc: error unmarshalling request: failed to decode"), "{malformed:?}");

    let bad_type = batch("bad-type", "g", &["not valid"], 1);
    let reply = call(&server, CURRENT, bad_type, &[("x-user-id", "1")]).expect("a reply, not a call error");
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::BadRequest));
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("bad-type"));

    let unknown = call(&server, "/raystack.raccoon.v1beta1.EventService/Nope", small.clone(), &[("x-user-id", "1")])
        .expect_err("unknown method");
    assert_eq!(unknown.code(), Code::Unimplemented);
    assert_eq!(unknown.message(), "unknown method Nope for service raystack.raccoon.v1beta1.EventService");

    // The server is still fine for everybody.
    assert_success(&call(&server, CURRENT, small, &[("x-user-id", "1")]).unwrap(), "small");
}

/// `EVENT_ACK=1` with no Kafka to take the batch: `UNAVAILABLE`, so that gRPC clients' retry
/// policies resend it, with the reason as the status message (Raccoon: a reply with code 3).
#[test]
fn grpc_batch_kafka_cannot_take_is_unavailable_with_the_reason() {
    let server = start_server("127.0.0.1:1", &[("EVENT_ACK", "1"), ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", "1500")]);
    let status = call(&server, CURRENT, batch("doomed", "x", &["a"], 2), &[("x-user-id", "1")]).expect_err("a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().starts_with("cannot publish events: "), "{status:?}");
    assert!(status.message().contains("(retry: "), "{status:?}");
}
