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
    /// librdkafka properties, defaults merged with `PUBLISHER_KAFKA_CLIENT_*` (unused by the
    /// log publisher).
    pub kafka: BTreeMap<String, String>,
}
