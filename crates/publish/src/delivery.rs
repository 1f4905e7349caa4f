//! The delivery path: librdkafka's per-event reports, folded into one outcome per batch and sent
//! to the shard that owns the batch's connection.
//!
//! Runs on: rdkafka's poll thread (delivery callbacks) and the publisher thread (events librdkafka
//! refused outright). Both may finish a batch, so its counters are atomics; they are touched by
//! at most these two threads, one batch at a time, so they are uncontended.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

use crate::classify;
use crate::dead_letter::{DeadLetter, Route};
use crate::throttle::Throttle;
use raccoon_core::handoff::{
    Ack, AckToken, Batch, DeliveryOutcome, EventRecord, Failure, Origin, Persistence, Refusal, SentTime, ShardMsg,
};
use raccoon_core::health::Health;
use raccoon_core::topic::TopicPattern;
use raccoon_metrics::{tags, MetricId};

/// One batch in flight in librdkafka: a clone rides with every one of its events as the
/// delivery opaque.
///
/// Crosses threads (Send + Sync).
#[derive(Debug)]
pub(crate) struct InFlight {
    token: AckToken,
    req_guid: String,
    wants_ack: bool,
    received_at: Instant,
    origin: Arc<Origin>,
    sent_time: Option<SentTime>,
    total: usize,
    remaining: AtomicUsize,
    failed: AtomicUsize,
    /// Some failed event may have been written (librdkafka's "possibly persisted").
    maybe_published: AtomicBool,
    /// The client was answered before the last event settled ([`InFlight::answer_early`]).
    answered: AtomicBool,
    /// The worst failure so far: its refusal, error code and text. Locked only when an event
    /// fails, by at most the two threads that settle events.
    worst: Mutex<Option<(Refusal, RDKafkaErrorCode, String)>>,
}

impl InFlight {
    /// Takes over a batch's bookkeeping; its events go to librdkafka separately and are handed
    /// back to the caller.
    pub(crate) fn new(batch: Batch) -> (Arc<Self>, Vec<EventRecord>) {
        let Batch { token, req_guid, events, wants_ack, received_at, origin, sent_time } = batch;
        let in_flight = Arc::new(InFlight {
            token,
            req_guid,
            wants_ack,
            received_at,
            origin,
            sent_time,
            total: events.len(),
            remaining: AtomicUsize::new(events.len()),
            failed: AtomicUsize::new(0),
            maybe_published: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            worst: Mutex::new(None),
        });
        (in_flight, events)
    }

    /// The connection's group.
    pub(crate) fn group(&self) -> &str {
        &self.origin.group
    }

    /// Who sent the batch.
    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The batch's `req_guid`.
    pub(crate) fn req_guid(&self) -> &str {
        &self.req_guid
    }

    /// The client's `sent_time` of the batch.
    pub(crate) fn sent_time(&self) -> Option<SentTime> {
        self.sent_time
    }

    /// When the shard had decoded the batch.
    pub(crate) fn received_at(&self) -> Instant {
        self.received_at
    }

    /// Whether every event has settled (delivered or failed).
    pub(crate) fn settled(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Records one failed event, classified by [`classify::refusal`]. Only the first failure of
    /// the worst refusal is kept in words (and only it is formatted).
    pub(crate) fn fail(&self, topic: &str, code: RDKafkaErrorCode, persistence: Persistence) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if persistence != Persistence::NotPublished {
            self.maybe_published.store(true, Ordering::Relaxed);
        }
        let refusal = classify::refusal(code);
        let mut worst = self.worst();
        if worst.as_ref().is_none_or(|(kept, _, _)| refusal > *kept) {
            *worst = Some((refusal, code, format!("topic {topic}: {}", KafkaError::MessageProduction(code))));
        }
    }

    /// The worst failure so far. A panic while it was held (not expected) leaves it usable.
    fn worst(&self) -> std::sync::MutexGuard<'_, Option<(Refusal, RDKafkaErrorCode, String)>> {
        self.worst.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks one event settled; true for the call that settles the last one.
    pub(crate) fn settle_one(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The failure a client is told about now, before its events settled, when `why` (Kafka
    /// unreachable, the deadline passed) means waiting longer would leave it hanging. `None` when
    /// the batch needs no answer (`EVENT_ACK=0`) or was answered already: the early answer and the
    /// final one are never both sent.
    pub(crate) fn answer_early(&self, why: &str) -> Option<Failure> {
        if !self.wants_ack || self.answered.swap(true, Ordering::AcqRel) {
            return None;
        }
        let worst = self.worst();
        // No Kafka error decided this answer: the code is that of an event failed already, if any.
        let (refusal, error_code) =
            worst.as_ref().map_or((Refusal::Retriable, 0), |(refusal, code, _)| (*refusal, *code as i32));
        let unsettled = self.remaining.load(Ordering::Acquire);
        Some(Failure {
            refusal,
            persistence: Persistence::StillPending,
            failed: self.failed.load(Ordering::Acquire) + unsettled,
            total: self.total,
            error_code,
            detail: format!("{unsettled} of {} events not yet acknowledged by Kafka: {why}", self.total),
        })
    }

    fn outcome(&self) -> DeliveryOutcome {
        match self.failed.load(Ordering::Acquire) {
            0 => DeliveryOutcome::Delivered,
            failed => {
                let worst = self.worst();
                let (refusal, code, first) = match worst.as_ref() {
                    Some((refusal, code, text)) => (*refusal, *code as i32, text.as_str()),
                    None => (Refusal::Retriable, 0, "unknown error"),
                };
                let persistence = if self.maybe_published.load(Ordering::Acquire) {
                    Persistence::MaybePublished
                } else {
                    Persistence::NotPublished
                };
                DeliveryOutcome::Failed(Box::new(Failure {
                    refusal,
                    persistence,
                    failed,
                    total: self.total,
                    error_code: code,
                    detail: format!("{failed} of {} events failed; first: {first}", self.total),
                }))
            }
        }
    }
}

/// The tags [`DeliveryContext::count_event`] gave the last event it counted on this thread.
struct LastTags {
    topic: Box<str>,
    origin: Arc<Origin>,
    tags: [raccoon_metrics::Tag; 3],
}

thread_local! {
    static LAST_TAGS: std::cell::RefCell<Option<LastTags>> = const { std::cell::RefCell::new(None) };
}

/// rdkafka context of one publisher: routes finished batches to shard inboxes, reports a
/// Kafka with no broker left to the shared [`Health`], flags a fatal error for the publisher
/// thread to rebuild its producer, and forwards librdkafka's logs to `tracing`.
///
/// Crosses threads (Send + Sync).
pub(crate) struct DeliveryContext {
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    pattern: TopicPattern,
    health: Arc<Health>,
    /// Set by every error event librdkafka raises (other than every broker down): the publisher
    /// thread then asks librdkafka whether it was fatal (the event does not say so to
    /// rust-rdkafka's callback) and, if so, builds a new producer.
    errors_raised: AtomicBool,
    /// Where events Kafka rejects for good go, if a dead-letter topic is set.
    dead_letters: Option<Route>,
    lost_log: Throttle,
}

impl DeliveryContext {
    /// A context that delivers acks to `inboxes[shard]`; `pattern` recovers event types from
    /// topics for metric tags; `health` learns at once when every broker is down; rejected events
    /// go to `dead_letters`, if given.
    pub(crate) fn new(
        inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
        pattern: TopicPattern,
        health: Arc<Health>,
        dead_letters: Option<Route>,
    ) -> Self {
        DeliveryContext {
            inboxes,
            pattern,
            health,
            errors_raised: AtomicBool::new(false),
            dead_letters,
            lost_log: Throttle::new(),
        }
    }

    /// Whether librdkafka raised an error event since the last call: the caller then checks
    /// whether the producer hit a fatal error.
    pub(crate) fn take_errors_raised(&self) -> bool {
        self.errors_raised.swap(false, Ordering::AcqRel)
    }

    /// Makes the next [`DeliveryContext::take_errors_raised`] true again.
    pub(crate) fn recheck_errors(&self) {
        self.errors_raised.store(true, Ordering::Release);
    }

    /// Counts one event's outcome (delivery report, or refusal by librdkafka): delivered, or the
    /// error it failed with.
    pub(crate) fn count_event(&self, batch: &InFlight, topic: &str, result: Result<(), RDKafkaErrorCode>) {
        super::with_metrics(|m| {
            if !m.enabled() {
                return;
            }
            // Consecutive events mostly share their batch's group and their topic: reuse the
            // last event's tags rather than interning three strings per event (hashing them
            // was the delivery thread's largest cost of its own in the profile).
            let tags3 = LAST_TAGS.with_borrow_mut(|last| match last {
                Some(l) if Arc::ptr_eq(&l.origin, &batch.origin) && &*l.topic == topic => l.tags,
                _ => {
                    let (topic_tag, group) = (m.client_tag(topic), m.client_tag(batch.group()));
                    let event_type = m.client_tag(self.pattern.event_type_of(topic));
                    let tags3 = [topic_tag, group, event_type];
                    *last = Some(LastTags { topic: topic.into(), origin: Arc::clone(&batch.origin), tags: tags3 });
                    tags3
                }
            });
            match result {
                Ok(()) => m.add(MetricId::Delivered, tags(tags3), 1),
                Err(code) => {
                    m.add(MetricId::Undelivered, tags(tags3), 1);
                    let retriable = classify::refusal(code) == Refusal::Retriable;
                    let (name, retriable) = (m.tag(error_name(code)), m.tag(if retriable { "true" } else { "false" }));
                    m.add(MetricId::DeliveryErrors, tags([name, retriable]), 1);
                }
            }
        });
    }

    /// Answers `batch` now, before its events settled (see [`InFlight::answer_early`]); its final
    /// outcome follows as a late ack when the last event settles.
    /// True when it was answered now (not before, and a client waits).
    pub(crate) fn answer_early(&self, batch: &InFlight, why: &str) -> bool {
        let Some(failure) = batch.answer_early(why) else { return false };
        self.send(batch, DeliveryOutcome::Failed(Box::new(failure)), false);
        true
    }

    /// Settles one event of `batch` that failed on `topic` with `code` outside a delivery report
    /// (refused by librdkafka, or given up on), completing the batch if it was the last.
    pub(crate) fn settle_failed(&self, batch: &InFlight, topic: &str, code: RDKafkaErrorCode) {
        batch.fail(topic, code, Persistence::NotPublished);
        if batch.settle_one() {
            self.complete(batch);
        }
    }

    /// Called once per batch, by whichever thread settled its last event.
    pub(crate) fn complete(&self, batch: &InFlight) {
        let outcome = batch.outcome();
        super::with_metrics(|m| {
            let taken = batch.received_at.elapsed();
            m.record(MetricId::DeliveryLatency, tags([]), taken);
            let group = m.client_tag(batch.group());
            m.record(MetricId::ServerProcessing, tags([group]), taken / batch.total.max(1) as u32);
        });
        if !batch.wants_ack {
            if let DeliveryOutcome::Failed(failure) = &outcome {
                // EVENT_ACK=0: the client was already told "success"; this is data loss. Rate
                // limited: a broker outage fails every batch.
                if let Some(suppressed) = self.lost_log.allow() {
                    let detail = &failure.detail;
                    tracing::error!(shard = %batch.token.shard, conn = %batch.token.sink, %detail, suppressed, "events lost after ack on receipt");
                }
            }
            return;
        }
        // Answered early: this final outcome is bookkeeping for the shard (deduplication).
        let late = batch.answered.swap(true, Ordering::AcqRel);
        self.send(batch, outcome, late);
    }

    fn send(&self, batch: &InFlight, outcome: DeliveryOutcome, late: bool) {
        let ack =
            Ack { token: batch.token, req_guid: batch.req_guid.clone(), outcome, received_at: batch.received_at, late };
        let inbox = &self.inboxes[usize::from(batch.token.shard.0)];
        // Blocking here only slows this poll thread; the shard's inbox router never waits on a
        // publisher, so this cannot deadlock. A closed inbox means the shard already exited.
        if inbox.send_blocking(ShardMsg::Ack(ack)).is_err() {
            tracing::debug!(shard = %batch.token.shard, "ack for a shard that has exited");
        }
    }
}

/// librdkafka's name of an error code (`MSG_SIZE_TOO_LARGE`, `_MSG_TIMED_OUT`), the
/// `error_code` tag of `kafka_delivery_errors_total`.
#[allow(unsafe_code)]
pub(crate) fn error_name(code: RDKafkaErrorCode) -> &'static str {
    let raw = rdsys::rd_kafka_resp_err_t::try_from(code as i32)
        .unwrap_or(rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN);
    // SAFETY: rd_kafka_err2name returns a static NUL-terminated string for any code, known or
    // not.
    unsafe { std::ffi::CStr::from_ptr(rdsys::rd_kafka_err2name(raw)) }.to_str().unwrap_or("UNKNOWN")
}

/// A rejected event of a delivery report, for the publisher thread to dead-letter.
fn dead_letter(batch: Arc<InFlight>, message: &BorrowedMessage<'_>, code: RDKafkaErrorCode) -> DeadLetter {
    DeadLetter {
        batch,
        topic: message.topic().to_owned(),
        code,
        payload: message.payload().unwrap_or_default().to_vec(),
        key: message.key().map(<[u8]>::to_vec),
        headers: message.headers().map(BorrowedHeaders::detach),
    }
}

/// librdkafka's word on whether a failed message may be in the log.
#[allow(unsafe_code)]
fn persistence(message: &BorrowedMessage<'_>) -> Persistence {
    // SAFETY: the message is alive for the length of the delivery callback that lent it.
    let status = unsafe { rdsys::rd_kafka_message_status(message.ptr()) };
    match status {
        rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Persistence::NotPublished,
        _ => Persistence::MaybePublished,
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                // The shards' next batches are answered at once, and those in flight now, until
                // the health checker reaches a broker again.
                if self.health.report_kafka_down() {
                    tracing::warn!(target: "librdkafka", "every broker is down: batches are answered \"retry\" until Kafka is back ({reason})");
                }
            }
            _ => {
                self.errors_raised.store(true, Ordering::Release);
                tracing::warn!(target: "librdkafka", error = %error, "{reason}");
            }
        }
    }

    fn stats(&self, statistics: Statistics) {
        super::with_metrics(|m| {
            m.set(MetricId::TxMessages, tags([]), statistics.txmsgs as f64);
            m.set(MetricId::TxBytes, tags([]), statistics.txmsg_bytes as f64);
            for broker in statistics.brokers.values() {
                // Bootstrap placeholders have no node name of their own worth a series.
                if broker.nodeid < 0 {
                    continue;
                }
                let name = m.tag(&broker.nodename);
                m.set(MetricId::BrokerTx, tags([name]), broker.tx as f64);
                m.set(MetricId::BrokerTxBytes, tags([name]), broker.txbytes as f64);
                if let Some(rtt) = &broker.rtt {
                    // librdkafka reports microseconds.
                    m.set(MetricId::BrokerRtt, tags([name]), rtt.avg as f64 / 1000.0);
                }
            }
        });
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut batch: Arc<InFlight>) {
        match result {
            Ok(message) => self.count_event(&batch, message.topic(), Ok(())),
            Err((error, message)) => {
                let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                self.count_event(&batch, message.topic(), Err(code));
                if let Some(route) = self.dead_letters.as_ref().filter(|route| route.takes(message.topic(), code)) {
                    match route.send(dead_letter(batch, message, code)) {
                        // Settled when its dead-letter record is.
                        Ok(()) => return,
                        Err(letter) => batch = letter.batch,
                    }
                }
                batch.fail(message.topic(), code, persistence(message));
            }
        }
        if batch.settle_one() {
            self.complete(&batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raccoon_core::handoff::{Seq, ShardId, SinkId};

    fn batch(events: usize) -> Batch {
        Batch {
            token: AckToken { shard: ShardId(1), sink: SinkId(2), seq: Seq(3) },
            req_guid: "guid".into(),
            events: (0..events)
                .map(|_| EventRecord { event_type: Bytes::from_static(b"t"), payload: Bytes::from_static(b"p") })
                .collect(),
            wants_ack: true,
            received_at: Instant::now(),
            origin: Arc::new(raccoon_core::handoff::Origin { conn_id: "c".into(), group: "g".into() }),
            sent_time: None,
        }
    }

    #[test]
    fn the_last_settled_event_completes_the_batch() {
        let (in_flight, events) = InFlight::new(batch(3));
        assert_eq!(events.len(), 3);
        assert!(!in_flight.settle_one());
        assert!(!in_flight.settle_one());
        assert!(in_flight.settle_one());
        assert_eq!(in_flight.outcome(), DeliveryOutcome::Delivered);
        assert_eq!(in_flight.req_guid, "guid");
    }

    #[test]
    fn failures_are_counted_and_the_worst_is_named() {
        let (in_flight, _) = InFlight::new(batch(4));
        in_flight.fail("clickstream-a-log", RDKafkaErrorCode::MessageTimedOut, Persistence::NotPublished);
        in_flight.fail("clickstream-b-log", RDKafkaErrorCode::MessageSizeTooLarge, Persistence::NotPublished);
        in_flight.fail("clickstream-c-log", RDKafkaErrorCode::InvalidTimestamp, Persistence::NotPublished);
        let DeliveryOutcome::Failed(failure) = in_flight.outcome() else {
            panic!("expected a failure");
        };
        assert_eq!(failure.refusal, Refusal::Rejected, "one rejected event decides the batch");
        assert_eq!(failure.error_code, RDKafkaErrorCode::MessageSizeTooLarge as i32, "the first rejected one");
        assert_eq!((failure.failed, failure.total), (3, 4));
        assert_eq!(failure.persistence, Persistence::NotPublished);
        assert!(failure.detail.starts_with("3 of 4 events failed; first: topic clickstream-b-log: "), "{failure:?}");
    }

    #[test]
    fn a_possibly_persisted_event_makes_the_batch_maybe_published() {
        let (in_flight, _) = InFlight::new(batch(2));
        in_flight.fail("t", RDKafkaErrorCode::MessageTimedOut, Persistence::MaybePublished);
        let DeliveryOutcome::Failed(failure) = in_flight.outcome() else { panic!("expected a failure") };
        assert_eq!((failure.refusal, failure.persistence), (Refusal::Retriable, Persistence::MaybePublished));
    }

    #[test]
    fn an_early_answer_is_given_once_and_says_the_events_are_pending() {
        let (in_flight, _) = InFlight::new(batch(3));
        assert!(!in_flight.settle_one());
        assert!(!in_flight.settle_one());
        let failure = in_flight.answer_early("Kafka unreachable").expect("the first early answer");
        assert_eq!((failure.refusal, failure.persistence), (Refusal::Retriable, Persistence::StillPending));
        assert_eq!((failure.failed, failure.total), (1, 3), "one event is not settled");
        assert_eq!(failure.error_code, 0, "no Kafka error decided it");
        assert!(failure.detail.ends_with("Kafka unreachable"), "{}", failure.detail);
        assert!(in_flight.answer_early("again").is_none(), "answered once");
    }

    #[test]
    fn a_batch_without_ack_is_never_answered_early() {
        let mut unacked = batch(1);
        unacked.wants_ack = false;
        let (in_flight, _) = InFlight::new(unacked);
        assert!(in_flight.answer_early("Kafka unreachable").is_none());
    }

    #[test]
    fn error_names_are_librdkafkas() {
        assert_eq!(error_name(RDKafkaErrorCode::MessageSizeTooLarge), "MSG_SIZE_TOO_LARGE");
        assert_eq!(error_name(RDKafkaErrorCode::MessageTimedOut), "_MSG_TIMED_OUT");
        assert_eq!(error_name(RDKafkaErrorCode::AllBrokersDown), "_ALL_BROKERS_DOWN");
    }
}
