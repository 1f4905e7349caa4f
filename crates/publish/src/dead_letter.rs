//! The dead-letter topic (`PUBLISHER_DEAD_LETTER_TOPIC`): an event Kafka rejects for good (see
//! [`crate::classify`]) is written there instead of failing its batch, as its original bytes and
//! key, with headers naming the topic it was meant for and the error ([`crate::record`]), and
//! the batch then succeeds. A dead-letter record that fails in turn fails its event, classified
//! by its own error: "retry" when the dead-letter topic is unavailable (the batch, sent again,
//! finds it back), "rejected" when that topic refuses the record too (too large for it as well).
//!
//! Kafka rejects an event in one of two places: librdkafka, as the publisher thread hands it
//! over, or a broker, in its delivery report on the poll thread. The poll thread sends its
//! rejections back over a channel ([`Route`]); the publisher thread writes every dead letter,
//! within a tick. Dead letters are rare: they go with rust-rdkafka's `send` (one topic lookup
//! by name each), not the native batch call.
//!
//! Runs on: the publisher thread ([`write()`]) and the poll thread ([`Route::send`]).

use std::sync::Arc;

use crossbeam_channel::Sender;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::classify;
use crate::delivery::{error_name, DeliveryContext, InFlight};
use crate::record::{self, BatchHeaders, EventIndex};
use raccoon_core::handoff::Refusal;
use raccoon_metrics::{tags, MetricId};

/// A rejected event on its way from a delivery report to the publisher thread.
pub(crate) struct DeadLetter {
    pub(crate) batch: Arc<InFlight>,
    /// The topic it was meant for.
    pub(crate) topic: String,
    pub(crate) code: RDKafkaErrorCode,
    pub(crate) payload: Vec<u8>,
    pub(crate) key: Option<Vec<u8>>,
    /// The headers it had (`PUBLISHER_KAFKA_RECORD_HEADERS=true`).
    pub(crate) headers: Option<OwnedHeaders>,
}

/// Where a publisher's rejected events go: the dead-letter topic, and the way back to its
/// publisher thread for those a broker rejected.
///
/// Crosses threads (Send + Sync): held by the delivery context.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) topic: Arc<str>,
    pub(crate) back: Sender<DeadLetter>,
}

impl Route {
    /// Whether an event that failed on `topic` with `code` goes to the dead-letter topic: Kafka
    /// rejected it for good, and it was not a dead letter already.
    pub(crate) fn takes(&self, topic: &str, code: RDKafkaErrorCode) -> bool {
        classify::refusal(code) == Refusal::Rejected && topic != &*self.topic
    }

    /// Hands a rejection from a delivery report to the publisher thread. `Err` gives it back
    /// when that thread is gone (its producer is being dropped): the event then fails.
    pub(crate) fn send(&self, letter: DeadLetter) -> Result<(), DeadLetter> {
        self.back.send(letter).map_err(|e| e.0)
    }
}

/// One rejected event, as [`write()`] takes it: borrowed from the publisher's batch, or from a
/// [`DeadLetter`].
pub(crate) struct Letter<'l> {
    pub(crate) batch: &'l Arc<InFlight>,
    pub(crate) topic: &'l str,
    pub(crate) code: RDKafkaErrorCode,
    pub(crate) payload: &'l [u8],
    pub(crate) key: Option<&'l [u8]>,
    /// The record's own headers, when it had them (a delivery report).
    pub(crate) headers: Option<&'l BorrowedHeaders>,
    /// The event's index, when known without its headers (librdkafka refused it as it was
    /// handed over).
    pub(crate) index: Option<u32>,
}

impl<'l> Letter<'l> {
    pub(crate) fn of(letter: &'l DeadLetter) -> Self {
        Letter {
            batch: &letter.batch,
            topic: &letter.topic,
            code: letter.code,
            payload: &letter.payload,
            key: letter.key.as_deref(),
            headers: letter.headers.as_ref().map(OwnedHeaders::as_borrowed),
            index: None,
        }
    }
}

/// The headers of a dead-letter record: where it was going and why, then the record's own
/// headers, or, when it had none, those `PUBLISHER_KAFKA_RECORD_HEADERS` would have given it
/// (the event's index only when known).
fn headers(letter: &Letter<'_>) -> OwnedHeaders {
    let text = |name: &'static std::ffi::CStr| name.to_str().unwrap_or_default();
    let mut out = OwnedHeaders::new_with_capacity(2 + BatchHeaders::MAX)
        .insert(Header { key: text(record::DEAD_LETTER_TOPIC), value: Some(letter.topic) })
        .insert(Header { key: text(record::DEAD_LETTER_ERROR), value: Some(error_name(letter.code)) });
    match letter.headers {
        Some(own) => {
            for header in own.iter() {
                out = out.insert(Header { key: header.key, value: header.value });
            }
        }
        None => {
            let batch = letter.batch;
            let index = letter.index.map(EventIndex::new);
            let headers = BatchHeaders::new(batch.origin(), batch.req_guid(), batch.sent_time());
            headers.each(index.as_ref(), |name, value| {
                out = std::mem::take(&mut out).insert(Header { key: text(name), value: Some(value) });
            });
        }
    }
    out
}

/// Writes `letter` to the dead-letter topic `route_topic` with `producer`. The event stays
/// unsettled until that record's delivery report; if librdkafka refuses the record at once, the
/// event fails here with that refusal.
pub(crate) fn write(producer: &BaseProducer<DeliveryContext>, route_topic: &str, letter: &Letter<'_>) {
    let record = BaseRecord::with_opaque_to(route_topic, Arc::clone(letter.batch))
        .payload(letter.payload)
        .headers(headers(letter));
    let record = match letter.key {
        Some(key) => record.key(key),
        None => record,
    };
    let context = producer.context();
    match producer.send(record) {
        Ok(()) => {
            crate::with_metrics(|m| {
                let (topic, group) = (m.client_tag(letter.topic), m.client_tag(letter.batch.group()));
                let error = m.tag(error_name(letter.code));
                m.add(MetricId::DeadLettered, tags([topic, group, error]), 1);
            });
        }
        Err((error, record)) => {
            drop(record);
            let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
            // Counted (kafka_messages_undelivered_total of the dead-letter topic), not logged at
            // warn: a full queue would log once per event.
            tracing::debug!(topic = route_topic, %error, "dead-letter record refused; its event fails");
            context.count_event(letter.batch, route_topic, Err(code));
            context.settle_failed(letter.batch, route_topic, code);
        }
    }
}
