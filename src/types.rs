//! Small types that cross the boundary between shards and publisher threads.
//!
//! Shard code and publisher code never import each other; they meet here and in the channels
//! that `main.rs` builds. Every type in this file is `Send` and cheap to move.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// Index of a shard (one glommio executor pinned to one CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// A connection's id, unique within its shard for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A batch's sequence number, unique within its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names the batch a delivery report belongs to: which shard owns the connection, which
/// connection, which batch on it. It rides along with the batch to the publisher thread and comes
/// back inside the [`Ack`].
///
/// Crosses threads (Send, Copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckToken {
    /// Shard that owns the connection.
    pub shard: ShardId,
    /// Connection on that shard.
    pub conn: ConnId,
    /// Batch on that connection.
    pub seq: Seq,
}

/// One event of a batch, as the publisher needs it.
///
/// Both fields are slices of the WebSocket frame the batch arrived in (zero-copy).
/// Crosses threads (Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The event's `type`, valid UTF-8 and a valid topic-name fragment (checked at decode).
    pub event_type: Bytes,
    /// The event's `event_bytes`: the Kafka record value, byte for byte.
    pub payload: Bytes,
}

/// A decoded batch on its way from a shard to a publisher thread.
///
/// Crosses threads (Send).
#[derive(Debug)]
pub struct Batch {
    /// Where the delivery outcome must go.
    pub token: AckToken,
    /// The client's batch id; echoed back in the ack.
    pub req_guid: String,
    /// The events, in the order the client sent them.
    pub events: Vec<EventRecord>,
    /// Whether the shard waits for an [`Ack`] (`EVENT_ACK=1`). With `EVENT_ACK=0` the client was
    /// answered on receipt and the publisher only accounts for failures.
    pub wants_ack: bool,
    /// When the shard finished decoding the batch.
    pub received_at: Instant,
    /// The connection's group (`conn_group` metric tag).
    pub group: Arc<str>,
}

/// How a batch fared in Kafka: the worst outcome among its events.
///
/// Crosses threads (Send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every event was acknowledged by Kafka.
    Delivered,
    /// At least one event failed; the text says how many and names the first failure
    /// (topic and Kafka error).
    Failed(String),
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
