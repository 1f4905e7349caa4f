//! The publishers' settings, assembled by `raccoon-config` from the `PUBLISHER_*` keys.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

/// Which publisher the threads run (`PUBLISHER_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherKind {
    /// `kafka`: librdkafka producers.
    Kafka,
    /// `log`: every event is logged at INFO, nothing is published, no broker is needed.
    Log,
}

impl fmt::Display for PublisherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublisherKind::Kafka => "kafka",
            PublisherKind::Log => "log",
        })
    }
}

/// Settings of the publisher threads.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `PUBLISHER_TYPE`.
    pub kind: PublisherKind,
    /// Number of publisher threads (of either kind).
    pub threads: NonZeroUsize,
    /// Batches each publisher queue holds.
    pub queue_capacity: usize,
    /// Flush deadline at shutdown.
    pub flush_timeout: Duration,
    /// `PUBLISHER_KAFKA_BATCH_DEADLINE_MS`: a batch whose client waits (`EVENT_ACK=1`) and that
    /// Kafka has not acknowledged within this time of its receipt is answered "retry" (its
    /// events stay with librdkafka, which keeps trying until `message.timeout.ms`).
    pub batch_deadline: Duration,
    /// `PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS`: how long such a batch waits for room in
    /// librdkafka's full queue before its remaining events are refused and it is answered "retry".
    pub queue_full_wait: Duration,
    /// What each Kafka record carries besides the event, and where rejected events go.
    pub records: Records,
    /// librdkafka properties, defaults merged with `PUBLISHER_KAFKA_CLIENT_*` (unused by the
    /// log publisher).
    pub kafka: BTreeMap<String, String>,
}

/// `PUBLISHER_KAFKA_RECORD_KEY`: what each record is keyed by (and so, with librdkafka's default
/// partitioner, which partition it lands on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordKey {
    /// `none`: no key (Raccoon's records); librdkafka spreads records over partitions.
    #[default]
    None,
    /// `conn_id`: the connection's id, so that one client's events stay in order on one partition.
    ConnId,
    /// `conn_group`: the connection's group.
    ConnGroup,
    /// `req_guid`: the batch's id.
    ReqGuid,
}

/// The shape of the records the Kafka publisher writes. The default is Raccoon's: no key, no
/// headers, no dead-letter topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// `PUBLISHER_KAFKA_RECORD_KEY`.
    pub key: RecordKey,
    /// `PUBLISHER_KAFKA_RECORD_HEADERS`: add the connection id and group, the batch's `req_guid`
    /// and `sent_time`, and the event's index in its batch, as headers (crate::record names them).
    pub headers: bool,
    /// `PUBLISHER_DEAD_LETTER_TOPIC`: where events Kafka rejects for good go instead of failing
    /// their batch.
    pub dead_letter_topic: Option<String>,
}
