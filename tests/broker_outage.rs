//! A broker outage with `EVENT_ACK=1`: a batch sent while Kafka is down is not acknowledged
//! until Kafka has it, nothing acknowledged is lost, and readiness follows the broker.
//!
//! This test stops and restarts a broker, so it runs its own on other ports instead of the
//! shared one the other test binaries use.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn batch_sent_during_outage_is_acked_only_after_the_broker_returns() {
    let broker = PrivateBroker::new("outage", &[]);
    broker.run("start");
    let prefix = unique("outage");
    let server = start_server(
        &broker.addr,
        &[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    // Readiness follows the broker: checked every 2 s with a 2 s timeout.
    server.wait_for_status("/health/ready", 200, Duration::from_secs(10));
    assert_eq!(server.get("/health/live").0, 200);
    let mut client = server.connect(&[("X-User-ID", "outage")]);

    let before = batch("before", &prefix, &["a", "b"], 4);
    client.send_batch(&before);
    assert_success(&client.reply(), "before");

    broker.run("stop");
    let during = batch("during", &prefix, &["a", "b"], 4);
    client.send_batch(&during);
    // librdkafka keeps the events queued (message.timeout.ms is 300 s by default), so the batch
    // stays unanswered: no success may be claimed for events Kafka does not have.
    if let Some(message) = client.next_within(Duration::from_secs(5)) {
        panic!("a batch was answered while the broker was down: {message:?}\n{}", server.log());
    }
    let body = server.wait_for_status("/health/ready", 503, Duration::from_secs(15));
    assert_eq!(body, "not ready: Kafka unreachable");
    // Liveness does not depend on Kafka.
    assert_eq!(server.get("/health/live").0, 200);

    broker.run("start");
    let reply = client.reply();
    assert_success(&reply, "during");
    server.wait_for_status("/health/ready", 200, Duration::from_secs(15));

    // And the connection carries on as before.
    let after = batch("after", &prefix, &["a"], 2);
    client.send_batch(&after);
    assert_success(&client.reply(), "after");

    assert_topics_hold(&broker.addr, &expected_by_topic(&prefix, &[before, during, after]));
}
