//! The log publisher (`PUBLISHER_TYPE=log`): publishes nothing, logs every event, needs no broker.
//! For development and quick starts.
//!
//! Each thread takes [`Batch`]es off its bounded queue, the same queues the Kafka publisher
//! threads serve (shards cannot tell the two apart), and logs one line per event at INFO, as
//! Raccoon's log publisher does:
//!
//! ```text
//! [LogPublisher] kind = json, event_type = page, event = {"page":"home"}
//! [LogPublisher] kind = protobuf, event_type = click, event = 1:"button" 2:3
//! ```
//!
//! A payload that is valid JSON is logged as text; any other is decoded as a schemaless protobuf
//! message ([`raccoon_protocol::rawproto`]). A payload that is neither fails its event, and so its batch:
//! with `EVENT_ACK=1` the client gets `CODE_INTERNAL_ERROR` naming the first such event, with
//! `EVENT_ACK=0` the failure is logged (at most once a second). The outcome reaches the owning
//! shard exactly as a Kafka delivery outcome does.
//!
//! Logging per event at INFO is this publisher's whole purpose, and the one exception to
//! "nothing per event above DEBUG": do not run it under production traffic.
//!
//! Runs on: its own OS threads, `raccoon-log-p` (blocking is fine here, never on a shard).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use std::thread::JoinHandle;

use super::with_metrics;
use crate::throttle::Throttle;
use raccoon_core::handoff::{Ack, Batch, DeliveryOutcome, EventRecord, Failure, Persistence, Refusal, ShardMsg};
use raccoon_metrics::{tags, MetricId, MetricsFactory, Tag};
use raccoon_protocol::rawproto::{self, RawProtoError};

/// How a payload was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Protobuf,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Protobuf => "protobuf",
        }
    }
}

/// Starts one log publisher thread per queue of `queues`. `inboxes[k]` is shard k's inbox.
pub(super) fn start(
    queues: Vec<Receiver<Batch>>,
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    metrics: &MetricsFactory,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let lost_log = Arc::new(Throttle::new());
    let mut handles = Vec::with_capacity(queues.len());
    for (index, rx) in queues.into_iter().enumerate() {
        let worker = LogWorker {
            index,
            inboxes: Arc::clone(&inboxes),
            metrics: metrics.clone(),
            lost_log: Arc::clone(&lost_log),
        };
        handles.push(std::thread::Builder::new().name(format!("raccoon-log-{index}")).spawn(move || worker.run(rx))?);
    }
    Ok(handles)
}

/// A log worker while it serves its queue, with the line it renders into (reused).
struct LogServing {
    worker: LogWorker,
    line: String,
}

impl super::QueueServer for LogServing {
    fn publish(&mut self, batch: Batch, worker_tag: Tag) {
        self.worker.publish(batch, &mut self.line, worker_tag);
    }
}

/// One log publisher thread's state.
///
/// Lives on: its log publisher thread.
struct LogWorker {
    index: usize,
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    metrics: MetricsFactory,
    /// Shared by the threads: failures after an `EVENT_ACK=0` reply, logged once a second.
    lost_log: Arc<Throttle>,
}

impl LogWorker {
    /// Serves the queue until every sender is gone and the queue is empty.
    fn run(self, queue: Receiver<Batch>) {
        let (index, metrics) = (self.index, self.metrics.clone());
        super::serve_queue(index, &metrics, &queue, &mut LogServing { worker: self, line: String::with_capacity(256) });
        tracing::info!(publisher = index, "log publisher stopped");
        with_metrics(|m| m.flush(Instant::now()));
    }

    /// Logs every event of `batch` and sends its outcome where it is due.
    fn publish(&self, batch: Batch, line: &mut String, worker_tag: Tag) {
        let idle = batch.received_at.elapsed();
        with_metrics(|m| m.record(MetricId::BatchIdle, tags([worker_tag]), idle));
        let outcome = log_events(&batch.events, line);
        if !batch.wants_ack {
            if let DeliveryOutcome::Failed(failure) = &outcome {
                // EVENT_ACK=0: the client was already told "success".
                if let Some(suppressed) = self.lost_log.allow() {
                    let detail = &failure.detail;
                    tracing::error!(shard = %batch.token.shard, conn = %batch.token.sink, %detail, suppressed, "events lost after ack on receipt");
                }
            }
            return;
        }
        let Batch { token, req_guid, received_at, .. } = batch;
        let ack = Ack { token, req_guid, outcome, received_at, late: false };
        // A closed inbox means the shard already exited; nothing is waiting for this ack.
        if self.inboxes[usize::from(token.shard.0)].send_blocking(ShardMsg::Ack(ack)).is_err() {
            tracing::debug!(shard = %token.shard, "ack for a shard that has exited");
        }
    }
}

/// Logs each event, rendering into `line` (reused across events); the batch's outcome names
/// the first event that is neither JSON nor protobuf.
fn log_events(events: &[EventRecord], line: &mut String) -> DeliveryOutcome {
    let mut failed = 0usize;
    let mut first_failure = None;
    for (index, event) in events.iter().enumerate() {
        line.clear();
        let event_type = String::from_utf8_lossy(&event.event_type);
        match render(&event.payload, line) {
            Ok(kind) => {
                tracing::info!("[LogPublisher] kind = {}, event_type = {event_type}, event = {line}", kind.as_str());
            }
            Err(error) => {
                tracing::debug!(index, %event_type, %error, "event is neither JSON nor protobuf");
                failed += 1;
                first_failure.get_or_insert_with(|| {
                    format!("event {index} (type {event_type}): neither JSON nor protobuf: {error}")
                });
            }
        }
    }
    match first_failure {
        None => DeliveryOutcome::Delivered,
        // Logging them again would fail the same way: rejected, not to be sent again.
        Some(first) => DeliveryOutcome::Failed(Box::new(Failure {
            refusal: Refusal::Rejected,
            persistence: Persistence::NotPublished,
            failed,
            total: events.len(),
            error_code: 0,
            detail: format!("{failed} of {} events failed; first: {first}", events.len()),
        })),
    }
}

/// Renders a payload as its log text: JSON as it is, anything else as schemaless protobuf.
fn render(payload: &[u8], out: &mut String) -> Result<Kind, RawProtoError> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        // serde_json accepts only UTF-8, so this is never lossy.
        out.push_str(&String::from_utf8_lossy(payload));
        return Ok(Kind::Json);
    }
    rawproto::decode_to_text(payload, out).map(|()| Kind::Protobuf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use prost::Message as _;
    use raccoon_core::handoff::{AckToken, Handoff, Offer, Seq, ShardId, SinkId};
    use raccoon_protocol::pb;
    use std::num::NonZeroUsize;

    fn event(event_type: &'static str, payload: Vec<u8>) -> EventRecord {
        EventRecord { event_type: Bytes::from_static(event_type.as_bytes()), payload: Bytes::from(payload) }
    }

    fn rendered(payload: &[u8]) -> (Result<Kind, RawProtoError>, String) {
        let mut out = String::new();
        (render(payload, &mut out), out)
    }

    #[test]
    fn json_is_logged_as_text_and_anything_else_as_protobuf() {
        assert_eq!(
            rendered(br#"{"page": "home", "n": [1, 2]}"#),
            (Ok(Kind::Json), r#"{"page": "home", "n": [1, 2]}"#.into())
        );
        assert_eq!(rendered(b"42"), (Ok(Kind::Json), "42".into()));
        let proto = pb::Event { event_bytes: Bytes::from_static(b"x"), r#type: "click".into() }.encode_to_vec();
        assert_eq!(rendered(&proto), (Ok(Kind::Protobuf), r#"1:"x" 2:"click""#.into()));
        assert_eq!(rendered(b"").0, Ok(Kind::Protobuf), "an empty message is valid protobuf");
        assert_eq!(rendered(&[0xff, 0xff]).0, Err(RawProtoError::Truncated { at: 0 }));
    }

    #[test]
    fn the_outcome_names_the_first_bad_event() {
        let mut line = String::new();
        let good = event("page", br#"{"a":1}"#.to_vec());
        assert_eq!(log_events(&[good.clone(), good.clone()], &mut line), DeliveryOutcome::Delivered);
        let events = [good, event("click", vec![0x0a, 0x05]), event("view", vec![0x0f])];
        let DeliveryOutcome::Failed(failure) = log_events(&events, &mut line) else {
            panic!("expected a failure");
        };
        assert_eq!((failure.refusal, failure.failed, failure.total), (Refusal::Rejected, 2, 3));
        assert_eq!(
            failure.detail,
            "2 of 3 events failed; first: event 1 (type click): neither JSON nor protobuf: truncated field at byte 0"
        );
    }

    fn batch(wants_ack: bool, payload: &[u8]) -> Batch {
        Batch {
            token: AckToken { shard: ShardId(1), sink: SinkId(7), seq: Seq(3) },
            req_guid: "guid-1".into(),
            events: vec![event("page", payload.to_vec())],
            wants_ack,
            received_at: Instant::now(),
            origin: Arc::new(raccoon_core::handoff::Origin { conn_id: "c".into(), group: "g".into() }),
            sent_time: None,
        }
    }

    #[test]
    fn outcomes_go_to_the_owning_shard_and_threads_exit_when_the_queues_go() {
        let (tx0, _rx0) = async_channel::bounded(4);
        let (tx1, rx1) = async_channel::bounded(4);
        let (handoff, queues) = Handoff::channels(NonZeroUsize::MIN, 4);
        let threads = start(queues, Arc::from(vec![tx0, tx1]), &MetricsFactory::disabled()).unwrap();
        for b in [batch(true, b"[1]"), batch(false, &[0xff]), batch(true, &[0xff])] {
            assert!(matches!(handoff.offer(b), Offer::Queued));
        }
        drop(handoff);
        for thread in threads {
            thread.join().unwrap();
        }
        let acks: Vec<_> = std::iter::from_fn(|| rx1.try_recv().ok()).collect();
        assert_eq!(acks.len(), 2, "no ack for the EVENT_ACK=0 batch: {acks:?}");
        let [ShardMsg::Ack(ok), ShardMsg::Ack(failed)] = &acks[..] else {
            panic!("expected two acks: {acks:?}");
        };
        assert_eq!(
            (ok.token.sink, ok.req_guid.as_str(), &ok.outcome),
            (SinkId(7), "guid-1", &DeliveryOutcome::Delivered)
        );
        let DeliveryOutcome::Failed(failure) = &failed.outcome else {
            panic!("expected a failure: {failed:?}");
        };
        assert!(failure.detail.contains("event 0 (type page)"), "{failure:?}");
        assert!(!failed.late);
    }
}
