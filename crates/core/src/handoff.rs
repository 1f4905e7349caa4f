//! The handoff between shards and publisher threads: what crosses ([`Batch`] one way, [`Ack`]
//! inside a [`ShardMsg`] the other) and the queues a batch crosses in ([`Handoff`]).
//!
//! The publishers build the [`Handoff`] ([`Handoff::channels`]) and keep the receiving ends;
//! `main` gives every shard a clone. A shard offers a batch and learns at once whether it was
//! queued, whether the queue is full (it then stops reading that connection and offers again
//! later) or whether the publishers have stopped: [`Offer`]. Nothing here waits. Every type in
//! this file is `Send` and cheap to move.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Index of a shard (one glommio executor pinned to one CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// Whom an [`Ack`] goes back to on its shard: a WebSocket connection, or one REST or gRPC request
/// waiting for its batch. Unique within its shard for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SinkId(pub u64);

/// A batch's sequence number, unique within its [`SinkId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names the batch a delivery report belongs to: which shard owns its sink, which sink (a
/// WebSocket connection or a REST or gRPC request), which batch on it. It rides along with the
/// batch to the publisher thread and comes back inside the [`Ack`].
///
/// Crosses threads (Send, Copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckToken {
    /// Shard that owns the sink.
    pub shard: ShardId,
    /// The sink on that shard: a WebSocket connection or one REST or gRPC request.
    pub sink: SinkId,
    /// Batch on that sink.
    pub seq: Seq,
}

/// One event of a batch, as the publisher needs it.
///
/// Both fields are slices of the buffer the batch arrived in (a WebSocket message, a REST body,
/// a gRPC message) when it was protobuf, so nothing was copied; a JSON batch's are decoded copies.
/// Crosses threads (Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The event's `type`, valid UTF-8 and a valid topic-name fragment (checked at decode).
    pub event_type: Bytes,
    /// The event's `event_bytes`: the Kafka record value, byte for byte.
    pub payload: Bytes,
}

/// Who sent a batch: the connection's identity, as Raccoon names it (`conn_id`, `conn_group`).
/// One per WebSocket connection, shared by its batches; one per REST or gRPC request.
///
/// Crosses threads (Send + Sync, behind an `Arc`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The connection's id (the `SERVER_WEBSOCKET_CONN_ID_HEADER` value; empty when none was
    /// named).
    pub conn_id: Box<str>,
    /// The connection's group (`conn_group` metric tag).
    pub group: Box<str>,
}

/// The client's `sent_time` of a batch (`google.protobuf.Timestamp`'s two fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// A decoded batch on its way from a shard to a publisher thread.
///
/// Crosses threads (Send).
#[derive(Debug)]
pub struct Batch {
    /// Where the delivery outcome must go.
    pub token: AckToken,
    /// The client's batch id: echoed back in the ack (`EVENT_ACK=1`), and a record key or header
    /// when the publisher is configured so.
    pub req_guid: String,
    /// The events, in the order the client sent them.
    pub events: Vec<EventRecord>,
    /// Whether the shard waits for an [`Ack`] (`EVENT_ACK=1`). With `EVENT_ACK=0` the client was
    /// answered on receipt and the publisher only accounts for failures.
    pub wants_ack: bool,
    /// When the shard finished decoding the batch.
    pub received_at: Instant,
    /// Who sent it.
    pub origin: Arc<Origin>,
    /// The client's `sent_time`, if it set one.
    pub sent_time: Option<SentTime>,
}

/// How a batch fared in Kafka: the worst outcome among its events.
///
/// Crosses threads (Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every event was acknowledged by Kafka.
    Delivered,
    /// At least one event was not (or not yet) published. Boxed: failures are rare, and every
    /// [`Ack`] (which a WebSocket writer's task keeps room for while it writes) stays as small
    /// as when the failure was one `String`.
    Failed(Box<Failure>),
}

/// What a client is told about a batch that was not published, decided once, by the publisher
/// (`raccoon-publish`'s classification table), and turned into each transport's answer in one
/// place (`raccoon_protocol::refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Kafka cannot take the events now (brokers down, queue full, timed out, leader moving):
    /// the same batch may succeed later, so the client should send it again.
    Retriable,
    /// The topic does not exist and cannot be created. Retrying does not help, but Raccoon
    /// answers it as an internal error (code 3, REST 500), and so does this server.
    UnknownTopic,
    /// Kafka will never take the events as they are (a record too large, an invalid topic, not
    /// authorized, an invalid timestamp): the client must not send them again.
    Rejected,
}

impl Refusal {
    /// The label of this refusal in metrics and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            Refusal::Retriable => "retriable",
            Refusal::UnknownTopic => "unknown_topic",
            Refusal::Rejected => "rejected",
        }
    }
}

/// Whether the events of a failed batch may be in Kafka after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Persistence {
    /// None of the failed events reached Kafka: sending the batch again duplicates only the
    /// events that did succeed (`Failure::failed` < `Failure::total`).
    NotPublished,
    /// Some failed events were on their way to a broker when it went away, and may have been
    /// written (librdkafka's "possibly persisted").
    MaybePublished,
    /// The batch was answered before Kafka's outcome was known (its deadline passed, or Kafka
    /// became unreachable): its events are still queued in librdkafka, which keeps trying, so
    /// they may yet be published. The final outcome follows as a late [`Ack`].
    StillPending,
}

/// Why (part of) a batch was not published.
///
/// Crosses threads (Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the client is told: the worst refusal among the failed events
    /// (`Rejected` > `UnknownTopic` > `Retriable`).
    pub refusal: Refusal,
    /// Whether the failed events may be in Kafka.
    pub persistence: Persistence,
    /// Events of the batch that failed (or are not settled yet).
    pub failed: usize,
    /// Events in the batch.
    pub total: usize,
    /// librdkafka's error code for the first failure of the worst refusal (`rd_kafka_resp_err_t`;
    /// 0 where no Kafka error applies: the log publisher, or a batch answered early none of whose
    /// events had failed yet).
    pub error_code: i32,
    /// What happened, in words: the first failure of the worst refusal, with its topic.
    pub detail: String,
}

/// A batch's delivery outcome on its way back to the owning shard.
///
/// Crosses threads (Send).
#[derive(Debug)]
pub struct Ack {
    /// The batch this ack answers.
    pub token: AckToken,
    /// Echoed to the client as `data["req_guid"]`.
    pub req_guid: String,
    /// What Kafka said.
    pub outcome: DeliveryOutcome,
    /// When the shard had decoded the batch (for latency accounting).
    pub received_at: Instant,
    /// The batch was answered already, early ([`Persistence::StillPending`]); this is its final
    /// outcome, for the shard's bookkeeping (deduplication) only: nothing goes to the client.
    pub late: bool,
}

/// A message for a shard's inbox: the single channel through which other threads reach a shard.
///
/// Crosses threads (Send).
#[derive(Debug)]
pub enum ShardMsg {
    /// A batch's delivery outcome (`EVENT_ACK=1`).
    Ack(Ack),
    /// Stop accepting, drain connections, exit.
    Shutdown,
}

/// What became of a batch offered to the publishers ([`Handoff::offer`]).
#[derive(Debug)]
pub enum Offer {
    /// It is in its publisher's queue.
    Queued,
    /// The queue is full; the batch comes back to be offered again later.
    Full(Batch),
    /// The publishers have stopped (shutdown); the batch comes back unpublished.
    Stopped(Batch),
}

/// The shards' way to the publisher threads: one bounded queue per publisher.
///
/// Crosses threads (Send + Clone): every shard holds a clone. When the last clone is dropped,
/// the publishers see their queues disconnect, flush what they hold and exit.
#[derive(Debug, Clone)]
pub struct Handoff {
    queues: Arc<[Sender<Batch>]>,
}

impl Handoff {
    /// `publishers` bounded queues of `capacity` batches each: the handoff the shards offer to,
    /// and the receiving end of each queue, index-aligned, for the publisher threads.
    pub fn channels(publishers: NonZeroUsize, capacity: usize) -> (Handoff, Vec<Receiver<Batch>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..publishers.get()).map(|_| crossbeam_channel::bounded(capacity)).unzip();
        (Handoff { queues: senders.into() }, receivers)
    }

    /// Offers `batch` to the publisher that serves its sink. Never waits.
    ///
    /// The publisher is `(sink id + shard id) mod publishers`, fixed per sink, so the batches of
    /// one connection reach Kafka's client in the order they were offered.
    pub fn offer(&self, batch: Batch) -> Offer {
        let AckToken { shard, sink, .. } = batch.token;
        let index = (sink.0 as usize).wrapping_add(usize::from(shard.0)) % self.queues.len();
        match self.queues[index].try_send(batch) {
            Ok(()) => Offer::Queued,
            Err(TrySendError::Full(batch)) => Offer::Full(batch),
            Err(TrySendError::Disconnected(batch)) => Offer::Stopped(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(shard: u16, sink: u64) -> Batch {
        Batch {
            token: AckToken { shard: ShardId(shard), sink: SinkId(sink), seq: Seq(0) },
            req_guid: String::new(),
            events: Vec::new(),
            wants_ack: false,
            received_at: Instant::now(),
            origin: Arc::default(),
            sent_time: None,
        }
    }

    #[test]
    fn a_connection_always_reaches_the_same_publisher_and_a_full_queue_hands_the_batch_back() {
        let (handoff, queues) = Handoff::channels(NonZeroUsize::new(3).unwrap(), 1);
        assert!(matches!(handoff.offer(batch(1, 4)), Offer::Queued));
        // (4 + 1) mod 3 = 2
        assert_eq!(queues[2].len(), 1);
        match handoff.offer(batch(1, 4)) {
            Offer::Full(back) => assert_eq!(back.token.sink, SinkId(4)),
            other => panic!("expected Full, got {other:?}"),
        }
        assert!(matches!(handoff.offer(batch(0, 4)), Offer::Queued), "(4 + 0) mod 3 = 1 has room");
        assert_eq!(queues[1].len(), 1);
    }

    #[test]
    fn stopped_publishers_hand_the_batch_back() {
        let (handoff, queues) = Handoff::channels(NonZeroUsize::MIN, 8);
        drop(queues);
        assert!(matches!(handoff.offer(batch(0, 0)), Offer::Stopped(_)));
    }
}
