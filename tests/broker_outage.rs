//! Kafka going away under `EVENT_ACK=1`, against the real binary and a broker of the test's own
//! (it is stopped and killed, so not the shared one):
//!
//! * a clean broker stop: every transport answers "retry" (WebSocket code 3, REST 503 with
//!   `Retry-After`, gRPC `UNAVAILABLE`) within a second once the outage is known, and succeeds
//!   again within 5 s of the broker's return, with no restart; every batch answered success is in
//!   Kafka exactly once;
//! * `kill -9` of the broker, three times, under load from clients that resend a batch (same
//!   `req_guid`, same connection, deduplication on) until it succeeds: every batch ends up in
//!   Kafka exactly once.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;
use raccoon_cli::procfs::{self, Pid};
use raccoon_protocol::pb;

/// How a batch was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Success,
    /// The transport's "send it again".
    Retry,
}

/// Sends `request` over each transport's wire form and says how it was answered; anything but
/// success or the transport's retryable answer fails the test.
struct Transports<'a> {
    server: &'a TestServer,
    ws: Client,
    rest: ureq::Agent,
}

/// The transports, by index in [`Transports::send`].
const TRANSPORTS: [&str; 3] = ["websocket", "rest", "grpc"];

impl Transports<'_> {
    fn send(&mut self, transport: usize, request: &pb::SendEventRequest) -> Answer {
        match transport {
            0 => self.websocket(request),
            1 => self.rest(request),
            _ => self.grpc(request),
        }
    }

    fn websocket(&mut self, request: &pb::SendEventRequest) -> Answer {
        self.ws.send_batch(request);
        let reply = self.ws.reply();
        assert_eq!(reply.data.get("req_guid"), Some(&request.req_guid), "{reply:?}");
        match reply.code() {
            pb::Code::Ok => Answer::Success,
            pb::Code::InternalError if reply.reason.contains("(retry") => Answer::Retry,
            _ => panic!("WebSocket: neither success nor retry: {reply:?}"),
        }
    }

    fn rest(&self, request: &pb::SendEventRequest) -> Answer {
        let response = self
            .rest
            .post(&format!("http://{}/api/v1/events", self.server.addr))
            .set("Content-Type", "application/proto")
            .send_bytes(&request.encode_to_vec());
        match response {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                Answer::Success
            }
            Err(ureq::Error::Status(503, response)) => {
                assert_eq!(response.header("Retry-After"), Some("1"), "a 503 says when to retry");
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
                let reply = pb::SendEventResponse::decode(&body[..]).unwrap();
                assert_eq!(reply.code(), pb::Code::InternalError, "{reply:?}");
                assert!(reply.reason.contains("(retry"), "{reply:?}");
                Answer::Retry
            }
            other => panic!("REST: neither 200 nor 503: {other:?}"),
        }
    }

    fn grpc(&self, request: &pb::SendEventRequest) -> Answer {
        match grpc_call(self.server.grpc_addr, GRPC_PATH, request.clone(), &[("x-user-id", "outage-grpc")]) {
            Ok(reply) => {
                assert_eq!(reply.code(), pb::Code::Ok, "{reply:?}");
                Answer::Success
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(status.message().contains("(retry"), "{status:?}");
                Answer::Retry
            }
            Err(status) => panic!("gRPC: neither OK nor UNAVAILABLE: {status:?}"),
        }
    }
}

const GRPC_PATH: &str = "/raystack.raccoon.v1beta1.EventService/SendEvent";

#[test]
fn an_outage_is_answered_retry_on_every_transport_and_recovery_needs_no_restart() {
    let broker = PrivateBroker::new("outage", &[]);
    broker.run("start");
    let prefix = unique("outage");
    let server = start_server(
        &broker.addr,
        &[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    // Readiness follows the broker: checked every 2 s with a 2 s timeout.
    server.wait_for_status("/health/ready", 200, Duration::from_secs(10));
    let rest = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let mut wire = Transports { server: &server, ws: server.connect(&[("X-User-ID", "outage")]), rest };
    let mut sent = Vec::new();
    let mut acked = Vec::new();
    let mut n = 0;
    let mut next = |sent: &mut Vec<pb::SendEventRequest>| {
        n += 1;
        let request = batch(&format!("b{n}"), &prefix, &["a", "b"], 4);
        sent.push(request.clone());
        request
    };
    for (t, name) in TRANSPORTS.iter().enumerate() {
        let request = next(&mut sent);
        assert_eq!(wire.send(t, &request), Answer::Success, "{name} before the outage");
        acked.push(request.req_guid);
    }

    // Timed from the moment the stop begins (the broker closes its connections as it goes).
    let stopped = Instant::now();
    broker.run("stop");
    // Until 8 s after the stop: a batch at a time on each transport, each answer timed. The
    // outage is known once a first "retry" comes back (librdkafka reports every broker down as
    // soon as its connections close; a broker that stops answering without closing them is
    // known by the health check, within 4 s).
    let mut known: Option<Duration> = None;
    let mut after_known: Vec<Duration> = Vec::new();
    let mut retried = [0usize; 3];
    while stopped.elapsed() < Duration::from_secs(8) {
        for (t, retries) in retried.iter_mut().enumerate() {
            let request = next(&mut sent);
            let sent_at = Instant::now();
            let answer = wire.send(t, &request);
            let took = sent_at.elapsed();
            match answer {
                Answer::Success => acked.push(request.req_guid),
                Answer::Retry => {
                    *retries += 1;
                    known.get_or_insert(sent_at.duration_since(stopped) + took);
                }
            }
            // The outage is known before this batch was sent: its answer must be quick.
            if known.is_some_and(|k| sent_at.duration_since(stopped) >= k) {
                after_known.push(took);
            }
        }
    }
    let known = known.expect("no batch was answered \"retry\" while the broker was down");
    assert!(retried.iter().all(|&r| r > 0), "every transport answers retry: {retried:?}");
    after_known.sort_unstable();
    let p99 = nearest_rank(&after_known, 0.99);
    eprintln!(
        "outage known {:?} after the stop; {} answers after that: p99 {p99:?}, max {:?}",
        known,
        after_known.len(),
        after_known.last().unwrap()
    );
    assert!(p99 < Duration::from_secs(1), "answers once the outage is known: p99 {p99:?}");
    assert_eq!(server.wait_for_status("/health/ready", 503, Duration::from_secs(15)), "not ready: Kafka unreachable");
    // Liveness does not depend on Kafka.
    assert_eq!(server.get("/health/live").0, 200);

    broker.run("start");
    let back = Instant::now();
    let mut recovered = [None; 3];
    while recovered.iter().any(Option::is_none) {
        assert!(back.elapsed() < Duration::from_secs(20), "no recovery 20 s after the broker's return: {recovered:?}");
        for (t, slot) in recovered.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let request = next(&mut sent);
            let answer = wire.send(t, &request);
            if answer == Answer::Success {
                acked.push(request.req_guid);
                *slot = Some(back.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let slowest = recovered.iter().flatten().max().copied().unwrap();
    eprintln!("recovered (websocket, rest, grpc) {recovered:?} after the broker was ready");
    assert!(slowest <= Duration::from_secs(5), "batches succeed again within 5 s: {recovered:?}");
    server.wait_for_status("/health/ready", 200, Duration::from_secs(15));

    assert_acked_once(&broker.addr, &prefix, &sent, &acked);
}

/// A knob of the crash test: `RACCOON_CRASH_<NAME>` from the environment, else `default` (CI's
/// size; perf-results/2026-12-03-delivery.md has a larger run).
fn knob(name: &str, default: usize) -> usize {
    std::env::var(format!("RACCOON_CRASH_{name}")).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server's resident memory, in KiB (0 if it cannot be read).
fn rss_kib(pid: u32) -> u64 {
    procfs::sample(Pid::Other(pid)).map_or(0, |sample| sample.rss_bytes / 1024)
}

#[test]
fn broker_crashes_under_load_leave_every_batch_in_kafka_exactly_once() {
    let (clients, cycles, events) = (knob("CLIENTS", 4), knob("CYCLES", 3), knob("EVENTS", 10));
    let broker = PrivateBroker::new("crash", &[]);
    broker.run("start");
    let prefix = unique("crash");
    let server = start_server(
        &broker.addr,
        &[
            ("EVENT_ACK", "1"),
            ("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "true"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    server.wait_for_status("/health/ready", 200, Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let began = Instant::now();
    let client_threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, sent, prefix) = (Arc::clone(&stop), Arc::clone(&sent), prefix.clone());
            let mut ws = server.connect(&[("X-User-ID", &format!("crash-{c}"))]);
            std::thread::spawn(move || {
                let (mut batches, mut resends) = (0usize, 0usize);
                let mut slowest = Duration::ZERO;
                while !stop.load(Ordering::Acquire) {
                    let request = batch(&format!("c{c}-{batches}"), &prefix, &["a"], events);
                    sent.lock().unwrap().push(request.clone());
                    // Sent again, same guid, until it succeeds: the server must publish it once.
                    let started = Instant::now();
                    loop {
                        let attempt = Instant::now();
                        ws.send_batch(&request);
                        let reply = ws.reply();
                        slowest = slowest.max(attempt.elapsed());
                        match reply.code() {
                            pb::Code::Ok => break,
                            pb::Code::InternalError => {
                                resends += 1;
                                assert!(
                                    started.elapsed() < Duration::from_secs(120),
                                    "batch never succeeded: {reply:?}"
                                );
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            _ => panic!("client {c}: {reply:?}"),
                        }
                    }
                    batches += 1;
                }
                (batches, resends, slowest)
            })
        })
        .collect();
    let mut rss = vec![(0.0, rss_kib(server.pid()))];
    let sample = |rss: &mut Vec<(f64, u64)>| rss.push((began.elapsed().as_secs_f64(), rss_kib(server.pid())));
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_secs(2));
        sample(&mut rss);
        broker.run("kill");
        std::thread::sleep(Duration::from_secs(1));
        sample(&mut rss);
        broker.run("start");
        sample(&mut rss);
        eprintln!("cycle {cycle}: broker killed and restarted");
    }
    std::thread::sleep(Duration::from_secs(2));
    sample(&mut rss);
    stop.store(true, Ordering::Release);
    let (mut batches, mut resends, mut slowest) = (0, 0, Duration::ZERO);
    for client in client_threads {
        let (b, r, s) = client.join().expect("a client failed");
        batches += b;
        resends += r;
        slowest = slowest.max(s);
    }
    let sent = sent.lock().unwrap().clone();
    let seconds = began.elapsed().as_secs_f64();
    eprintln!(
        "{cycles} crash cycles, {clients} clients, {seconds:.1} s: {batches} batches of {events} events acknowledged \
         ({:.0} events/s), {resends} resends, slowest answer {slowest:?}",
        (batches * events) as f64 / seconds
    );
    eprintln!("server RSS over time (s, KiB): {rss:?}");
    assert!(resends > 0, "the crashes were not noticed by any client");
    // Every batch was acknowledged in the end: each of its events is there exactly once.
    assert_topics_hold(&broker.addr, &expected_by_topic(&prefix, &sent));
}
