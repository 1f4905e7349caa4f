//! The delivery path: librdkafka's per-event reports, folded into one outcome per batch and sent
//! to the shard that owns the batch's connection.
//!
//! Runs on: rdkafka's poll thread (delivery callbacks) and the publisher thread (events librdkafka
//! refused outright). Both may finish a batch, so its counters are atomics; they are touched by
//! at most these two threads, one batch at a time, so they are uncontended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};

use rdkafka::statistics::Statistics;

use crate::throttle::Throttle;
use raccoon_core::handoff::{Ack, AckToken, Batch, DeliveryOutcome, EventRecord, ShardMsg};
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
    group: Arc<str>,
    total: usize,
    remaining: AtomicUsize,
    failed: AtomicUsize,
    first_error: OnceLock<String>,
}

impl InFlight {
    /// Takes over a batch's bookkeeping; its events go to librdkafka separately and are handed
    /// back to the caller.
    pub(crate) fn new(batch: Batch) -> (Arc<Self>, Vec<EventRecord>) {
        let Batch { token, req_guid, events, wants_ack, received_at, group } = batch;
        let in_flight = Arc::new(InFlight {
            token,
            req_guid,
            wants_ack,
            received_at,
            group,
            total: events.len(),
            remaining: AtomicUsize::new(events.len()),
            failed: AtomicUsize::new(0),
            first_error: OnceLock::new(),
        });
        (in_flight, events)
    }

    /// The connection's group.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Records one failed event; only the first failure's text is kept (and only it is formatted).
    pub(crate) fn fail(&self, topic: &str, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error.get_or_init(|| format!("topic {topic}: {error}"));
    }

    /// Marks one event settled; true for the call that settles the last one.
    pub(crate) fn settle_one(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    fn outcome(&self) -> DeliveryOutcome {
        match self.failed.load(Ordering::Acquire) {
            0 => DeliveryOutcome::Delivered,
            failed => DeliveryOutcome::Failed(format!(
                "{failed} of {} events failed; first: {}",
                self.total,
                self.first_error.get().map_or("unknown error", String::as_str)
            )),
        }
    }
}

/// The tags [`DeliveryContext::count_event`] gave the last event it counted on this thread.
struct LastTags {
    topic: Box<str>,
    group: Arc<str>,
    tags: [raccoon_metrics::Tag; 3],
}

thread_local! {
    static LAST_TAGS: std::cell::RefCell<Option<LastTags>> = const { std::cell::RefCell::new(None) };
}

/// rdkafka context of one publisher: routes finished batches to shard inboxes and forwards
/// librdkafka's logs to `tracing`.
///
/// Crosses threads (Send + Sync).
pub(crate) struct DeliveryContext {
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    pattern: TopicPattern,
    lost_log: Throttle,
}

impl DeliveryContext {
    /// A context that delivers acks to `inboxes[shard]`; `pattern` recovers event types from
    /// topics for metric tags.
    pub(crate) fn new(inboxes: Arc<[async_channel::Sender<ShardMsg>]>, pattern: TopicPattern) -> Self {
        DeliveryContext { inboxes, pattern, lost_log: Throttle::new() }
    }

    /// Counts one event's outcome (delivery report, or refusal by librdkafka).
    pub(crate) fn count_event(&self, batch: &InFlight, topic: &str, delivered: bool) {
        super::with_metrics(|m| {
            if !m.enabled() {
                return;
            }
            // Consecutive events mostly share their batch's group and their topic: reuse the
            // last event's tags rather than interning three strings per event (hashing them
            // was the delivery thread's largest cost of its own in the profile).
            let tags3 = LAST_TAGS.with_borrow_mut(|last| match last {
                Some(l) if Arc::ptr_eq(&l.group, &batch.group) && &*l.topic == topic => l.tags,
                _ => {
                    let (topic_tag, group) = (m.client_tag(topic), m.client_tag(batch.group()));
                    let event_type = m.client_tag(self.pattern.event_type_of(topic));
                    let tags3 = [topic_tag, group, event_type];
                    *last = Some(LastTags { topic: topic.into(), group: Arc::clone(&batch.group), tags: tags3 });
                    tags3
                }
            });
            let id = if delivered { MetricId::Delivered } else { MetricId::Undelivered };
            m.add(id, tags(tags3), 1);
        });
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
            if let DeliveryOutcome::Failed(detail) = &outcome {
                // EVENT_ACK=0: the client was already told "success"; this is data loss. Rate
                // limited: a broker outage fails every batch.
                if let Some(suppressed) = self.lost_log.allow() {
                    tracing::error!(shard = %batch.token.shard, conn = %batch.token.sink, %detail, suppressed, "events lost after ack on receipt");
                }
            }
            return;
        }
        let ack = Ack { token: batch.token, req_guid: batch.req_guid.clone(), outcome, received_at: batch.received_at };
        let inbox = &self.inboxes[usize::from(batch.token.shard.0)];
        // Blocking here only slows this poll thread; the shard's inbox router never waits on a
        // publisher, so this cannot deadlock. A closed inbox means the shard already exited.
        if inbox.send_blocking(ShardMsg::Ack(ack)).is_err() {
            tracing::debug!(shard = %batch.token.shard, "ack for a shard that has exited");
        }
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
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
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

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<InFlight>) {
        match result {
            Ok(message) => self.count_event(&batch, message.topic(), true),
            Err((error, message)) => {
                batch.fail(message.topic(), error);
                self.count_event(&batch, message.topic(), false);
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
            group: Arc::from("g"),
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
    fn failures_are_counted_and_the_first_is_named() {
        let (in_flight, _) = InFlight::new(batch(3));
        let timeout = KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::MessageTimedOut);
        in_flight.fail("clickstream-a-log", &timeout);
        in_flight.fail("clickstream-b-log", &timeout);
        let DeliveryOutcome::Failed(text) = in_flight.outcome() else {
            panic!("expected a failure");
        };
        assert!(text.starts_with("2 of 3 events failed; first: topic clickstream-a-log: "), "{text}");
    }
}
