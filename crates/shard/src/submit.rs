//! Handing decoded batches to the publishers, for every transport: the metrics a received batch
//! records, queueing with backoff while a publisher queue is full, and, for the request-shaped
//! transports (REST, gRPC), waiting for the batch's reply.
//!
//! Hot path: once per batch; no allocation per event.
//!
//! Lives on: owning shard (!Send).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raccoon_core::handoff::{AckToken, Batch, DeliveryOutcome, Failure, Offer, Origin, Persistence, Refusal, Seq};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::batch::DecodedBatch;
use raccoon_protocol::refusal;
use raccoon_protocol::reply::Reply;

use crate::shard::Shard;
use crate::AckMode;

/// First and longest wait while a publisher queue is full.
const QUEUE_FULL_BACKOFF_MIN: Duration = Duration::from_micros(100);
const QUEUE_FULL_BACKOFF_MAX: Duration = Duration::from_millis(5);

/// Why a reply says the publisher has stopped (shutdown raced the batch).
const PUBLISHER_STOPPED: &str = "the publisher has stopped (the server is shutting down)";

/// A batch's answer on its way to a transport: the reply, and, for a batch that was not
/// published, the refusal that REST and gRPC turn into their status ([`refusal`]).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) reply: Reply,
    pub(crate) refusal: Option<Refusal>,
}

impl Answer {
    /// The answer to a batch with this delivery outcome.
    pub(crate) fn of(req_guid: String, outcome: &DeliveryOutcome) -> Answer {
        match outcome {
            DeliveryOutcome::Delivered => Answer { reply: Reply::success(req_guid), refusal: None },
            DeliveryOutcome::Failed(failure) => Answer::failed(req_guid, failure),
        }
    }

    fn failed(req_guid: String, failure: &Failure) -> Answer {
        Answer { reply: refusal::reply(req_guid, failure), refusal: Some(failure.refusal) }
    }

    /// The answer to a batch of `total` events the publishers stopped before taking
    /// (shutdown): not published, send it again (to this server once restarted, or another).
    pub(crate) fn publisher_stopped(req_guid: String, total: usize) -> Answer {
        let failure = Failure {
            refusal: Refusal::Retriable,
            persistence: Persistence::NotPublished,
            failed: total,
            total,
            error_code: 0,
            detail: PUBLISHER_STOPPED.to_owned(),
        };
        Answer::failed(req_guid, &failure)
    }

    fn success(req_guid: String) -> Answer {
        Answer { reply: Reply::success(req_guid), refusal: None }
    }
}

/// Counts a decoded batch and its events.
pub(crate) fn record_batch(shard: &Shard, group: Tag, batch: &DecodedBatch) {
    let mut metrics = shard.metrics().borrow_mut();
    if !metrics.enabled() {
        return;
    }
    let t = shard.tags();
    metrics.add(MetricId::BatchesRead, tags([t.success, t.na, group]), 1);
    let events = batch.events.iter().map(|e| (&e.event_type[..], e.payload.len()));
    raccoon_metrics::count_events(&mut metrics, group, events);
    if let Some(sent) = &batch.sent_time {
        let sent = UNIX_EPOCH + Duration::new(sent.seconds.max(0) as u64, sent.nanos.clamp(0, 999_999_999) as u32);
        if let (Ok(age), false) = (SystemTime::now().duration_since(sent), batch.events.is_empty()) {
            metrics.record(MetricId::EventProcessing, tags([group]), age / batch.events.len() as u32);
        }
    }
}

/// Counts a batch that did not decode (`batches_read_total{status="failed",reason}`).
pub(crate) fn record_refused(shard: &Shard, group: Tag, reason: Tag) {
    shard.stats().borrow_mut().bad_frames += 1;
    shard.metrics().borrow_mut().add(MetricId::BatchesRead, tags([shard.tags().failed, reason, group]), 1);
}

/// Queues a batch for its publisher, waiting (without blocking the shard) while the queue is
/// full. Only a stopped publisher hands the batch back.
pub(crate) async fn submit(shard: &Shard, batch: Batch) -> Result<(), Batch> {
    match try_submit(shard, batch) {
        Offer::Queued => Ok(()),
        Offer::Stopped(batch) => Err(batch),
        Offer::Full(batch) => wait_for_room(shard, batch).await,
    }
}

/// Counts a batch and queues it if its publisher's queue has room: the path every batch takes
/// first, with no waiting. A WebSocket reader boxes the rare wait ([`wait_for_room`]) so that
/// its idle task does not carry the wait's state.
pub(crate) fn try_submit(shard: &Shard, batch: Batch) -> Offer {
    {
        let mut stats = shard.stats().borrow_mut();
        stats.batches += 1;
        stats.events += batch.events.len() as u64;
    }
    let offer = shard.handoff().offer(batch);
    if let Offer::Full(_) = offer {
        shard.metrics().borrow_mut().add(MetricId::ShardQueueFull, tags([shard.tags().shard]), 1);
    }
    offer
}

/// Retries a batch [`try_submit`] found its queue full for, with backoff, until there is room.
/// Only a stopped publisher hands the batch back.
pub(crate) async fn wait_for_room(shard: &Shard, mut batch: Batch) -> Result<(), Batch> {
    let mut backoff = QUEUE_FULL_BACKOFF_MIN;
    loop {
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(QUEUE_FULL_BACKOFF_MAX);
        match shard.handoff().offer(batch) {
            Offer::Queued => return Ok(()),
            Offer::Full(returned) => batch = returned,
            Offer::Stopped(returned) => return Err(returned),
        }
    }
}

/// Publishes one batch of a request-shaped transport (REST, gRPC) and returns its reply: once
/// it is queued (`EVENT_ACK=0`) or once Kafka's outcome is known (`EVENT_ACK=1`).
///
/// Cancel safety: dropped while waiting (the client left), the batch is still published and
/// its outcome is discarded when it comes back.
pub(crate) async fn publish_request(
    shard: &Rc<Shard>,
    group: Tag,
    origin: Arc<Origin>,
    decoded: DecodedBatch,
    received_at: Instant,
) -> Answer {
    record_batch(shard, group, &decoded);
    if decoded.events.is_empty() {
        return Answer::success(decoded.req_guid);
    }
    let wants_ack = shard.config().ack_mode == AckMode::OnDelivery;
    // Every request is a sink of its own in the ack router: its outcome comes back to it.
    let pending = wants_ack.then(|| shard.await_ack());
    let sink = pending.as_ref().map_or_else(|| shard.next_sink_id(), |p| p.sink());
    let token = AckToken { shard: shard.id(), sink, seq: Seq(0) };
    // With EVENT_ACK=0 the reply is sent here: it takes a copy of the guid, which the batch
    // keeps for the publisher (a record key or header).
    let reply_guid = (!wants_ack).then(|| decoded.req_guid.clone());
    let total = decoded.events.len();
    let sent_time = decoded.client_sent_time();
    let batch =
        Batch { token, req_guid: decoded.req_guid, events: decoded.events, wants_ack, received_at, origin, sent_time };
    if let Err(batch) = submit(shard, batch).await {
        return Answer::publisher_stopped(reply_guid.unwrap_or(batch.req_guid), total);
    }
    let Some(pending) = pending else {
        return Answer::success(reply_guid.unwrap_or_default());
    };
    match pending.outcome().await {
        Some(ack) => Answer::of(ack.req_guid, &ack.outcome),
        // The shard stopped routing before the outcome came (it cannot, while requests wait).
        None => Answer::publisher_stopped(String::new(), total),
    }
}

/// The path every transport's batches take, on a real glommio executor with a handoff the test
/// reads itself (no publisher, no broker): queueing, waiting while the queue is full, a
/// stopped publisher, and the ack router bringing an outcome back to a waiting request or to a
/// WebSocket connection.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test thread waits for the executor it started
mod tests {
    use std::cell::RefCell;
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use crossbeam_channel::Receiver;
    use glommio::{LocalExecutorBuilder, Placement};

    use raccoon_core::handoff::{Ack, EventRecord, Handoff, SentTime, ShardId, ShardMsg, SinkId};
    use raccoon_core::health::Health;
    use raccoon_core::topic::TopicPattern;
    use raccoon_metrics::LocalMetrics;
    use raccoon_protocol::identity::{Identity, IdentityRules};
    use raccoon_protocol::pb::{Code, Status};
    use raccoon_protocol::routing::UpgradeOrigins;
    use raccoon_rt::listen::BindAddress;

    use super::*;
    use crate::registry::Registry;
    use crate::shard::AckSink;
    use crate::{ServerConfig, ShardConfig};

    fn config(ack_mode: AckMode) -> ShardConfig {
        let ms = Duration::from_millis;
        let server = ServerConfig {
            bind: BindAddress::DualStack,
            port: 0,
            max_conn: 8,
            read_buffer_bytes: 4096,
            write_buffer_bytes: 4096,
            identity: IdentityRules {
                id_header: "X-User-ID".into(),
                group_header: None,
                group_default: "--default--".into(),
                id_query_param: None,
                group_query_param: None,
                subprotocol: false,
                anonymous: false,
            },
            ping_interval: ms(30_000),
            pong_wait: ms(60_000),
            write_wait: ms(5_000),
            upgrade_origins: UpgradeOrigins::Any,
            cors: None,
            max_frame_bytes: 1 << 20,
            max_inflight_batches: 4,
            dedup_window: None,
            shard_cpus: vec![0],
            io_memory_bytes: 64 << 10,
            spin_before_park: None,
            drain_timeout: ms(1_000),
            grpc_port: 0,
            grpc_max_message_bytes: 1 << 20,
            grpc_max_concurrent_streams: 8,
            max_body_bytes: 1 << 20,
            http_max_header_bytes: 8192,
            http_max_headers: 64,
            http_header_timeout: ms(5_000),
            body_timeout: ms(5_000),
            http_idle_timeout: ms(60_000),
        };
        ShardConfig { server, ack_mode, topic_pattern: TopicPattern::parse("t-%s").unwrap() }
    }

    /// Runs `test` on a shard of its own, in a glommio executor, with a handoff of one queue of
    /// `capacity` batches whose receiving end the test holds.
    fn on_a_shard<F, Fut>(ack_mode: AckMode, capacity: usize, test: F)
    where
        F: FnOnce(Rc<Shard>, Receiver<Batch>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(64 << 10)
            .spawn(move || async move {
                let (handoff, mut queues) = Handoff::channels(NonZeroUsize::MIN, capacity);
                let queue = queues.remove(0);
                let shard = Rc::new(Shard::new(
                    ShardId(3),
                    config(ack_mode),
                    handoff,
                    LocalMetrics::disabled(),
                    Arc::new(Health::without_broker()),
                    Arc::new(Registry::new(8)),
                    crate::ListenerTls::default(),
                ));
                test(shard, queue).await;
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn decoded(guid: &str, types: &[&str]) -> DecodedBatch {
        DecodedBatch {
            req_guid: guid.into(),
            sent_time: None,
            events: types
                .iter()
                .map(|t| EventRecord {
                    event_type: bytes::Bytes::copy_from_slice(t.as_bytes()),
                    payload: bytes::Bytes::from_static(b"payload"),
                })
                .collect(),
        }
    }

    /// Waits (without blocking the executor) for a batch on the test's end of the handoff.
    async fn next_batch(queue: &Receiver<Batch>) -> Batch {
        for _ in 0..1000 {
            if let Ok(batch) = queue.try_recv() {
                return batch;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        panic!("no batch reached the handoff within a second");
    }

    fn ack_for(batch: &Batch, outcome: DeliveryOutcome) -> ShardMsg {
        ShardMsg::Ack(Ack {
            token: batch.token,
            req_guid: batch.req_guid.clone(),
            outcome,
            received_at: batch.received_at,
            late: false,
        })
    }

    #[test]
    fn a_request_on_delivery_waits_for_its_ack_and_the_router_brings_it() {
        on_a_shard(AckMode::OnDelivery, 4, |shard, queue| async move {
            let request = {
                let shard = Rc::clone(&shard);
                glommio::spawn_local(async move {
                    let batch = DecodedBatch {
                        sent_time: raccoon_protocol::timestamp::parse_rfc3339("1970-01-01T00:00:07.000000008Z").ok(),
                        ..decoded("g-1", &["click", "page"])
                    };
                    let origin = Arc::new(Origin { conn_id: "user-1".into(), group: "grp".into() });
                    publish_request(&shard, shard.tags().na, origin, batch, Instant::now()).await
                })
            };
            let batch = next_batch(&queue).await;
            assert_eq!(batch.token.shard, ShardId(3));
            assert!(batch.wants_ack);
            assert_eq!((&*batch.origin.conn_id, &*batch.origin.group), ("user-1", "grp"));
            assert_eq!(batch.sent_time, Some(SentTime { seconds: 7, nanos: 8 }));
            assert_eq!(batch.events.len(), 2);
            assert_eq!(batch.req_guid, "g-1", "the guid rides with the batch, to come back in the ack");
            let failure = Failure {
                refusal: Refusal::Retriable,
                persistence: Persistence::StillPending,
                failed: 2,
                total: 2,
                error_code: -192,
                detail: "broker said no".into(),
            };
            assert!(shard.route(ack_for(&batch, DeliveryOutcome::Failed(Box::new(failure)))));
            let Answer { reply, refusal } = request.await;
            assert_eq!((reply.status, reply.code), (Status::Error, Code::InternalError));
            assert_eq!(refusal, Some(Refusal::Retriable), "REST and gRPC answer by the refusal");
            assert_eq!(reply.req_guid.as_deref(), Some("g-1"));
            assert!(reply.reason.contains("broker said no"), "{}", reply.reason);
            let stats = *shard.stats().borrow();
            assert_eq!((stats.batches, stats.events), (1, 2));
        });
    }

    #[test]
    fn on_receipt_the_request_is_answered_once_queued_and_an_empty_batch_is_not_queued() {
        on_a_shard(AckMode::OnReceipt, 4, |shard, queue| async move {
            let Answer { reply, refusal } =
                publish_request(&shard, shard.tags().na, Arc::default(), decoded("r-1", &["a"]), Instant::now()).await;
            assert_eq!((reply.status, reply.req_guid.as_deref(), refusal), (Status::Success, Some("r-1"), None));
            let batch = queue.try_recv().expect("queued before the reply");
            assert!(!batch.wants_ack);
            assert_eq!(batch.req_guid, "r-1", "the guid rides with the batch too, for record keys and headers");
            let answer =
                publish_request(&shard, shard.tags().na, Arc::default(), decoded("r-2", &[]), Instant::now()).await;
            assert_eq!(answer.reply.status, Status::Success);
            assert!(queue.try_recv().is_err(), "nothing to publish for an empty batch");
        });
    }

    #[test]
    fn a_full_queue_is_waited_out_and_a_stopped_publisher_hands_the_batch_back() {
        on_a_shard(AckMode::OnReceipt, 1, |shard, queue| async move {
            let batch = |guid: &str| Batch {
                token: AckToken { shard: ShardId(3), sink: SinkId(1), seq: Seq(0) },
                req_guid: guid.into(),
                events: Vec::new(),
                wants_ack: false,
                received_at: Instant::now(),
                origin: Arc::default(),
                sent_time: None,
            };
            assert!(matches!(try_submit(&shard, batch("first")), Offer::Queued));
            let Offer::Full(second) = try_submit(&shard, batch("second")) else { panic!("the queue holds one") };
            let waiting = {
                let shard = Rc::clone(&shard);
                glommio::spawn_local(async move { wait_for_room(&shard, second).await })
            };
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(queue.try_recv().unwrap().req_guid, "first");
            assert!(waiting.await.is_ok(), "queued once there was room");
            assert_eq!(queue.try_recv().unwrap().req_guid, "second");
            drop(queue);
            let back = submit(&shard, batch("third")).await.expect_err("no publisher left");
            assert_eq!(back.req_guid, "third");
        });
    }

    /// A WebSocket connection as the router sees it.
    #[derive(Default)]
    struct Sink {
        acks: RefCell<Vec<Ack>>,
        going_away: std::cell::Cell<bool>,
    }

    impl AckSink for Sink {
        fn deliver(&self, ack: Ack) {
            self.acks.borrow_mut().push(ack);
        }
        fn go_away(&self) {
            self.going_away.set(true);
        }
    }

    #[test]
    fn the_router_hands_acks_to_their_connection_and_drops_those_of_closed_ones() {
        on_a_shard(AckMode::OnDelivery, 4, |shard, _queue| async move {
            let sink = Rc::new(Sink::default());
            let identity = Identity { user: "u".into(), group: "g".into(), anonymous: false };
            let (conn, _, _admission) = shard.register(Rc::clone(&sink) as Rc<dyn AckSink>, &identity).unwrap();
            let ack = |conn| {
                ShardMsg::Ack(Ack {
                    token: AckToken { shard: ShardId(3), sink: conn, seq: Seq(7) },
                    req_guid: "w-1".into(),
                    outcome: DeliveryOutcome::Delivered,
                    received_at: Instant::now(),
                    late: false,
                })
            };
            assert!(shard.route(ack(conn)));
            assert!(shard.route(ack(SinkId(conn.0 + 100))), "an unknown connection's ack is dropped");
            assert_eq!(sink.acks.borrow().len(), 1);
            assert_eq!(sink.acks.borrow()[0].token.seq, Seq(7));
            shard.unregister(conn);
            assert!(shard.route(ack(conn)), "a closed connection's ack is dropped");
            assert_eq!(sink.acks.borrow().len(), 1);
            assert!(!shard.route(ShardMsg::Shutdown), "shutdown ends the routing loop");
            assert!(!sink.going_away.get());
        });
    }
}
