//! Kafka as its users run it: a cluster of three brokers (KRaft, every node broker and
//! controller; `scripts/kafka-cluster.sh` through the test kit's [`PrivateCluster`]), topics
//! replicated 3 times with `min.insync.replicas=2`, auto-created with one partition. The server
//! produces with `acks=all` (its default), `enable.idempotence=true` (its default, set here explicitly all the same) and
//! `EVENT_ACK=1`, so a success answer means every event of the batch is on at least two
//! brokers.
//!
//! One test and one cluster: three JVMs take ~13 s to start on the 2-core CI machine, so the
//! cases run one after the other on the same cluster, each with a server and a topic of its own,
//! and each leaves all three nodes up for the next (except the last):
//!
//! * (b) [`one_broker_down`]: a follower killed, later the leader stopped; the server goes on
//!   answering every batch with success, and the topic holds every event exactly once.
//! * (a) [`leader_killed_under_load`]: the partition's leader killed with SIGKILL while clients
//!   send; a new leader takes over, nothing acknowledged is lost or doubled (the invariant is
//!   [`check_invariant`]'s), and the answer latency across the election is reported.
//! * (c) [`two_brokers_down`]: with the partition below `min.insync.replicas`, every batch is
//!   answered "retry" by its deadline instead of hanging, and once a broker is back batches
//!   succeed again, with no restart.
//!
//! The figures (cluster start, election time, answer latency) go to the test's stderr directly,
//! not through the test harness's capture, so the CI log shows them for a passing run too.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;
use raccoon_protocol::pb;
use tungstenite::Message;

/// WebSocket clients of each case, one batch in flight each.
const CLIENTS: usize = 4;
/// Events per batch.
const EVENTS: usize = 10;
/// The most a client sends one batch (the first send and its retries after error answers).
const MAX_SENDS: usize = 3;
/// How long metadata may take to show what a kill or a restart did.
const METADATA_LIMIT: Duration = Duration::from_secs(30);
/// How long reading a topic back may take.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// Writes a line of figures to stderr past the test harness's capture (which would show it only
/// for a failing test).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "kafka_cluster: {line}");
}

#[test]
fn a_three_broker_cluster_keeps_every_acknowledged_event_exactly_once() {
    let started = Instant::now();
    let cluster = PrivateCluster::new("cluster", &[]);
    cluster.start();
    report(&format!("cluster of 3 started in {:.1} s ({})", started.elapsed().as_secs_f64(), cluster.bootstrap()));

    let t = Instant::now();
    one_broker_down(&cluster);
    report(&format!("(b) one broker down: {:.1} s", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let down = leader_killed_under_load(&cluster);
    report(&format!("(a) leader killed under load: {:.1} s", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    two_brokers_down(&cluster, down);
    report(&format!("(c) two brokers down: {:.1} s", t.elapsed().as_secs_f64()));

    report(&format!("whole test: {:.1} s", started.elapsed().as_secs_f64()));
}

/// The server for one case: `EVENT_ACK=1` and an idempotent producer (the default, named
/// explicitly), events of type `kind` to topic `prefix-kind-log`.
fn server_for(cluster: &PrivateCluster, prefix: &str) -> TestServer {
    start_server(
        &cluster.bootstrap(),
        &[
            ("EVENT_ACK", "1"),
            ("PUBLISHER_KAFKA_CLIENT_ENABLE_IDEMPOTENCE", "true"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    )
}

/// (b) One broker down at a time: the server keeps answering every batch with success (two
/// in-sync replicas remain), and every event is in Kafka exactly once.
///
/// A follower of the topic's partition is killed (SIGKILL): writes wait until the controller
/// fences it (`broker.session.timeout.ms`, 5 s) and drops it from the in-sync replicas, then go
/// on. With it back and in sync, the leader is stopped cleanly: its leadership moves to another
/// in-sync replica and the producer follows. Every batch must be answered with success on its
/// first send: no retry, no error.
fn one_broker_down(cluster: &PrivateCluster) {
    let prefix = unique("cluster-b");
    let server = server_for(cluster, &prefix);
    let topic = format!("{prefix}-down-log");
    let load = start_load(&server, &prefix, "down", CLIENTS);
    let state = cluster.wait_for_isr(&topic, 0, 3, METADATA_LIMIT);
    let leader = state.leader.expect("a leader");
    let follower = *state.isr.iter().find(|&&n| n != leader).expect("a follower");
    std::thread::sleep(Duration::from_secs(1));

    let killed_at = Instant::now();
    cluster.kill(follower);
    let shrunk = cluster.wait_for_partition(&topic, 0, "without the killed follower in sync", METADATA_LIMIT, |s| {
        !s.isr.contains(&follower) && s.isr.len() == 2
    });
    let shrunk_after = killed_at.elapsed();
    assert_eq!(shrunk.leader, Some(leader), "the leader changed when a follower died: {shrunk:?}");
    std::thread::sleep(Duration::from_secs(2));
    cluster.start_node(follower);
    cluster.wait_for_isr(&topic, 0, 3, METADATA_LIMIT);

    let stopped_at = Instant::now();
    cluster.stop_node(leader);
    let moved = cluster.wait_for_partition(&topic, 0, "led by another node", METADATA_LIMIT, |s| {
        s.leader.is_some_and(|l| l != leader)
    });
    let moved_after = stopped_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let batches = load.stop();

    let all = latencies(batches.iter().flat_map(|b| &b.sends));
    let around_kill = latencies(sends_overlapping(&batches, killed_at, killed_at + shrunk_after));
    let around_stop = latencies(sends_overlapping(&batches, stopped_at, stopped_at + moved_after));
    let failed: Vec<&Batch> = batches.iter().filter(|b| b.sends.len() != 1 || !b.sends[0].success).collect();
    assert!(
        failed.is_empty(),
        "with one broker down every batch must be acknowledged at its first send; {} were not, e.g. {:?}",
        failed.len(),
        failed.iter().take(5).map(|b| (&b.req_guid, &b.sends)).collect::<Vec<_>>()
    );
    let summary = check_invariant(cluster, &topic, &batches);
    report(&format!(
        "(b) follower {follower} killed: out of the in-sync replicas after {:.1} s; leader {leader} \
         stopped: node {} leads after {:.1} s",
        shrunk_after.as_secs_f64(),
        moved.leader.expect("a leader"),
        moved_after.as_secs_f64()
    ));
    report(&format!("(b) {summary}"));
    report(&format!("(b) answer latency, all batches: {all}"));
    report(&format!("(b) answer latency, batches in flight while the killed follower was in sync: {around_kill}"));
    report(&format!("(b) answer latency, batches in flight while the leader moved: {around_stop}"));
    drop(server);

    // (a) kills a leader and needs two in-sync replicas after it.
    cluster.start_node(leader);
    cluster.wait_for_isr(&topic, 0, 3, METADATA_LIMIT);
}

/// (a) The partition's leader is killed (SIGKILL) while [`CLIENTS`] clients send batches, each
/// waiting for its answer; a new leader is elected from the in-sync replicas, and the clients
/// go on for a few seconds with that broker down. Every send must be answered within
/// [`REPLY_LIMIT`] (30 s); an error answer is retried with the same `req_guid` and events, and
/// counted; then the topic must satisfy [`check_invariant`]. Every send made after the new
/// leader showed in the metadata must be answered with success (one broker down, as in (b)).
/// The latency of the sends in flight between the kill and the new leader is reported (max and
/// p99), next to the steady state's before and after.
///
/// Returns the killed node, still down.
fn leader_killed_under_load(cluster: &PrivateCluster) -> i32 {
    let prefix = unique("cluster-a");
    let server = server_for(cluster, &prefix);
    let topic = format!("{prefix}-crash-log");
    let load = start_load(&server, &prefix, "crash", CLIENTS);
    let state = cluster.wait_for_isr(&topic, 0, 3, METADATA_LIMIT);
    let leader = state.leader.expect("a leader");
    let steady_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));

    let killed_at = Instant::now();
    cluster.kill(leader);
    let elected = cluster.wait_for_partition(&topic, 0, "led by a surviving node", METADATA_LIMIT, |s| {
        s.leader.is_some_and(|l| l != leader)
    });
    let elected_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let batches = load.stop();

    let before =
        latencies(batches.iter().flat_map(|b| &b.sends).filter(|s| s.sent > steady_from && s.answered < killed_at));
    let election = latencies(sends_overlapping(&batches, killed_at, elected_at));
    let after =
        latencies(batches.iter().flat_map(|b| &b.sends).filter(|s| s.sent > elected_at + Duration::from_secs(1)));
    let summary = check_invariant(cluster, &topic, &batches);
    report(&format!(
        "(a) leader {leader} killed: node {} leads (in sync: {:?}) {:.1} s later",
        elected.leader.expect("a leader"),
        elected.isr,
        (elected_at - killed_at).as_secs_f64()
    ));
    report(&format!("(a) {summary}"));
    report(&format!("(a) answer latency before the kill (from the topic in sync on): {before}"));
    report(&format!("(a) answer latency of the sends in flight from the kill to the new leader: {election}"));
    report(&format!("(a) answer latency from 1 s after the new leader on (one broker down): {after}"));
    assert!(election.count > 0, "no batch was in flight during the election");
    assert!(election.max < REPLY_LIMIT, "a batch took {:?} to be answered", election.max);
    // With the killed leader down, two in-sync replicas remain: (b)'s case, for a crashed leader.
    let refused: Vec<(&str, &str)> = batches
        .iter()
        .flat_map(|b| b.sends.iter().map(move |s| (b.req_guid.as_str(), s)))
        .filter(|(_, s)| s.sent > elected_at && !s.success)
        .map(|(guid, s)| (guid, s.reason.as_str()))
        .collect();
    assert!(refused.is_empty(), "sends after the new leader was elected answered with errors: {refused:?}");
    leader
}

/// The server's batch deadline in (c): the longest a batch may wait for Kafka before it is
/// answered "retry".
const DEADLINE: Duration = Duration::from_secs(2);

/// (c) Two brokers down: `down` (left down by (a)) and a second one stopped, so the partition has
/// one in-sync replica, below `min.insync.replicas=2`. The brokers still answer, so librdkafka
/// does not see every broker down; it retries `NOT_ENOUGH_REPLICAS` until `message.timeout.ms`
/// (300 s). The server answers each such batch "retry" at its deadline instead: every send is
/// answered within the deadline and a margin, and some are answered "retry". Then both nodes
/// come back; once two replicas are in sync, batches succeed again (within 10 s, no restart),
/// and the topic satisfies [`check_invariant`] (a batch answered "retry" while its events were
/// still queued may be in Kafka once per send: its client sent it again).
fn two_brokers_down(cluster: &PrivateCluster, down: i32) {
    let prefix = unique("cluster-c");
    let server = start_server(
        &cluster.bootstrap(),
        &[
            ("EVENT_ACK", "1"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("PUBLISHER_KAFKA_BATCH_DEADLINE_MS", &DEADLINE.as_millis().to_string()),
        ],
    );
    let topic = format!("{prefix}-below-log");
    let load = start_load(&server, &prefix, "below", CLIENTS);
    let state = cluster.wait_for_isr(&topic, 0, 2, METADATA_LIMIT);
    let second = *state.isr.iter().find(|&&n| Some(n) != state.leader).expect("a follower in sync");
    std::thread::sleep(Duration::from_secs(1));

    let stopped_at = Instant::now();
    cluster.stop_node(second);
    std::thread::sleep(Duration::from_secs(8));
    let back_at = Instant::now();
    cluster.start_node(second);
    cluster.start_node(down);
    cluster.wait_for_partition(&topic, 0, "two replicas in sync again", METADATA_LIMIT, |s| s.isr.len() >= 2);
    let in_sync_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let batches = load.stop();

    let sends = || batches.iter().flat_map(|b| &b.sends);
    let below = latencies(sends().filter(|s| s.sent > stopped_at + Duration::from_secs(1) && s.sent < back_at));
    let retried: Vec<&Send> =
        sends().filter(|s| !s.success && s.sent > stopped_at && s.answered < in_sync_at).collect();
    let recovered = sends()
        .filter(|s| s.success && s.sent > in_sync_at)
        .map(|s| s.answered - in_sync_at)
        .min()
        .expect("no batch succeeded after two replicas were in sync again");
    let summary = check_invariant(cluster, &topic, &batches);
    report(&format!("(c) node {second} stopped with node {down} down: answers below min.insync.replicas: {below}"));
    report(&format!("(c) {} answers \"retry\" while below; {summary}", retried.len()));
    report(&format!(
        "(c) nodes back: two replicas in sync {:.1} s after the start, first success {:.1} s after that",
        (in_sync_at - back_at).as_secs_f64(),
        recovered.as_secs_f64()
    ));
    assert!(!retried.is_empty(), "no batch was answered \"retry\" below min.insync.replicas");
    assert!(retried.iter().all(|s| s.reason.contains("(retry")), "error answers that do not say retry");
    assert!(below.count > 0, "no batch was sent while below min.insync.replicas");
    assert!(below.max < DEADLINE + Duration::from_secs(2), "a batch waited {:?}: a hang, not an answer", below.max);
    assert!(recovered < Duration::from_secs(10), "batches succeed again {recovered:?} after recovery");
}

/// One send of a batch and its answer.
#[derive(Debug)]
struct Send {
    sent: Instant,
    answered: Instant,
    success: bool,
    /// The error answer's reason; empty on success.
    reason: String,
}

/// A batch a client sent, once or more (retries after error answers keep its `req_guid` and
/// events).
struct Batch {
    req_guid: String,
    events: Vec<Vec<u8>>,
    sends: Vec<Send>,
}

/// Clients sending until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Batch>>>,
}

impl Load {
    /// Stops the clients (each after its current batch is answered) and returns every batch
    /// they sent.
    fn stop(self) -> Vec<Batch> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().flat_map(|c| c.join().expect("a client panicked")).collect()
    }
}

/// `clients` WebSocket clients, each sending numbered batches of [`EVENTS`] events of type
/// `kind` (unique `req_guid`s, unique payloads) one at a time, waiting for each answer (at most
/// [`REPLY_LIMIT`], else the client panics); a batch answered with an error is sent again, up
/// to [`MAX_SENDS`] times in all.
fn start_load(server: &TestServer, tag: &str, kind: &str, clients: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let clients = (0..clients)
        .map(|c| {
            let (stop, addr, tag, kind) = (Arc::clone(&stop), server.addr, tag.to_owned(), kind.to_owned());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr, &[("X-User-ID", &format!("{kind}-{c}"))]);
                let mut batches = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let request = batch(&format!("{kind}-c{c}-b{n}"), &tag, &[&kind], EVENTS);
                    let mut sent = Batch {
                        req_guid: request.req_guid.clone(),
                        events: request.events.iter().map(|e| e.event_bytes.to_vec()).collect(),
                        sends: Vec::new(),
                    };
                    while sent.sends.len() < MAX_SENDS && !sent.sends.last().is_some_and(|s| s.success) {
                        sent.sends.push(send_and_wait(&mut client, &request));
                    }
                    batches.push(sent);
                }
                batches
            })
        })
        .collect();
    Load { stop, clients }
}

/// Sends `request` and waits (at most [`REPLY_LIMIT`]) for its answer.
fn send_and_wait(client: &mut Client, request: &pb::SendEventRequest) -> Send {
    let sent = Instant::now();
    client.send_batch(request);
    let reply = match client.next_within(REPLY_LIMIT) {
        Some(Message::Binary(b)) => pb::SendEventResponse::decode(b).expect("decode reply"),
        Some(other) => panic!("{}: expected a binary reply, got {other:?}", request.req_guid),
        None => panic!("{}: no answer within {REPLY_LIMIT:?}", request.req_guid),
    };
    let answered = Instant::now();
    assert_eq!(reply.data.get("req_guid"), Some(&request.req_guid), "an answer to another batch: {reply:?}");
    let success = reply.status() == pb::Status::Success;
    if success {
        assert_eq!(reply.code(), pb::Code::Ok, "{reply:?}");
    }
    Send { sent, answered, success, reason: reply.reason }
}

/// The sends in flight at some moment of `from..to`: sent before `to`, answered after `from`.
fn sends_overlapping(batches: &[Batch], from: Instant, to: Instant) -> impl Iterator<Item = &Send> {
    batches.iter().flat_map(|b| &b.sends).filter(move |s| s.sent < to && s.answered > from)
}

/// Count, median, p99 and max of some sends' answer latencies.
struct Latencies {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn latencies<'a>(sends: impl Iterator<Item = &'a Send>) -> Latencies {
    let mut all: Vec<Duration> = sends.map(|s| s.answered - s.sent).collect();
    all.sort_unstable();
    Latencies {
        count: all.len(),
        p50: nearest_rank(&all, 0.50),
        p99: nearest_rank(&all, 0.99),
        max: all.last().copied().unwrap_or_default(),
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{} sends, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// Reads the whole topic back (to its high watermark, bootstrapping from all three nodes) and
/// checks, for every batch `b` that a client sent `sends(b)` times (1, plus one per retry after
/// an error answer; always the same `req_guid` and events, and every event's payload is unique
/// to its batch and index), that each of its events is in the topic
///
/// * at least once if a send of `b` was answered with success: nothing acknowledged is lost,
///   because with `acks=all` and `min.insync.replicas=2` an acknowledged record is on at least
///   two brokers, and a new leader is only ever one of the in-sync replicas (unclean leader
///   election is off);
/// * at most `sends(b)` times: librdkafka's own retries (say of a request in flight to a leader
///   that was killed, sent again to its successor) carry the idempotent producer's id and
///   sequence numbers, which the new leader, holding the replicated producer state, recognises,
///   so one send puts each event in the log at most once. A client's retry is a new send with
///   new sequence numbers, so a batch sent twice may be there twice (the server's
///   per-connection `req_guid` dedup, `SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED`, is off). So a batch
///   acknowledged at its only send is there exactly once, and one answered only with errors
///   may be missing (an error answer is not a loss) but never more than sent;
///
/// and that the topic holds nothing else. Returns a one-line summary.
fn check_invariant(cluster: &PrivateCluster, topic: &str, batches: &[Batch]) -> String {
    let records = consume_to_end(&cluster.bootstrap(), topic, READ_LIMIT);
    let mut copies: HashMap<&[u8], usize> = HashMap::new();
    for payload in &records {
        *copies.entry(payload.as_slice()).or_default() += 1;
    }
    let (mut lost, mut too_many) = (Vec::new(), Vec::new());
    let (mut acked_events, mut retried, mut errors, mut unacked) = (0, 0, 0, 0);
    let mut reasons: Vec<&str> = Vec::new();
    for b in batches {
        let acked = b.sends.iter().any(|s| s.success);
        let sends = b.sends.len();
        retried += usize::from(sends > 1);
        errors += b.sends.iter().filter(|s| !s.success).count();
        reasons.extend(b.sends.iter().filter(|s| !s.success).map(|s| s.reason.as_str()));
        unacked += usize::from(!acked);
        for event in &b.events {
            let n = copies.remove(event.as_slice()).unwrap_or(0);
            if acked {
                acked_events += 1;
                if n == 0 {
                    lost.push(&b.req_guid);
                }
            }
            if n > sends {
                too_many.push((&b.req_guid, n, sends));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{topic}: {} acknowledged events missing, of batches {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        too_many.is_empty(),
        "{topic}: {} events more often than their batch was sent (batch, copies, sends): {:?}",
        too_many.len(),
        &too_many[..too_many.len().min(10)]
    );
    assert!(copies.is_empty(), "{topic}: {} records no client sent", copies.len());
    reasons.sort_unstable();
    reasons.dedup();
    format!(
        "{} batches, {acked_events} acknowledged events read back once each ({} records); {errors} error \
         answers, {retried} batches retried, {unacked} never acknowledged{}",
        batches.len(),
        records.len(),
        if reasons.is_empty() { String::new() } else { format!("; reasons: {reasons:?}") }
    )
}
