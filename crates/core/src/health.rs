//! Liveness and readiness, for load balancers and orchestrators.
//!
//! * `GET /ping` answers `200 pong` as Raccoon does, whatever the state.
//! * `GET /health/live` answers `200 live` while a shard can answer at all.
//! * `GET /health/ready` answers `200 ready` when Kafka answered the last check (which brokers
//!   are there) and the server is not draining; otherwise `503` with the reason. A server whose
//!   publisher needs no broker (`PUBLISHER_TYPE=log`, [`Health::without_broker`]) is ready until
//!   it drains.
//!
//! The flags live here; what sets them is the publishers' checker thread (in `raccoon-publish`),
//! which asks the cluster for its brokers every two seconds with its own librdkafka client, so a
//! slow or dead broker never blocks a publisher or a shard, and the producers themselves, which
//! report at once when librdkafka finds every broker down ([`Health::report_kafka_down`]; the
//! checker's next success clears it). Shards read readiness from atomics; publishers read
//! [`Health::kafka_known_down`] to answer batches at once instead of queueing them for a Kafka
//! that is not there. Only the producers' report counts for that: a failed check makes the
//! server not ready, but one check's failure (one broker of several not answering it in time)
//! is not enough to refuse every batch; a batch for a Kafka that hangs is answered by its
//! deadline instead.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Kafka's state in [`Health`] before the first check (the `Default`), and for a server without
/// a broker.
const UNKNOWN: u8 = 0;
const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

/// Shared health flags.
///
/// Crosses threads (Send + Sync).
#[derive(Debug, Default)]
pub struct Health {
    /// The publisher needs no broker: Kafka's reachability does not matter.
    no_broker: bool,
    /// `UNKNOWN` until the first check, then what the last check said.
    kafka: AtomicU8,
    /// A producer found every broker down since the checker last reached Kafka.
    producers_down: AtomicBool,
    draining: AtomicBool,
    stop: AtomicBool,
}

/// What `/health/ready` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Take traffic.
    Ready,
    /// Kafka did not answer the last check.
    KafkaUnreachable,
    /// Shutting down.
    Draining,
}

impl Health {
    /// Flags for a server whose publisher needs no broker (the log publisher): ready from the
    /// start, with no checker to run.
    pub fn without_broker() -> Health {
        Health { no_broker: true, kafka: AtomicU8::new(UNKNOWN), ..Health::default() }
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if !self.no_broker
            && (self.kafka.load(Ordering::Acquire) != REACHABLE || self.producers_down.load(Ordering::Acquire))
        {
            Readiness::KafkaUnreachable
        } else {
            Readiness::Ready
        }
    }

    /// Marks the server as draining (shutdown began) and stops the checker.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.stop.store(true, Ordering::Release);
    }

    /// Records the outcome of a reachability check; returns whether the previous check found
    /// Kafka reachable. A check that reaches Kafka also clears the producers' report.
    pub fn set_kafka_reachable(&self, reachable: bool) -> bool {
        let state = if reachable { REACHABLE } else { UNREACHABLE };
        if reachable {
            self.producers_down.store(false, Ordering::Release);
        }
        self.kafka.swap(state, Ordering::AcqRel) == REACHABLE
    }

    /// A producer found every broker down (librdkafka's `ALL_BROKERS_DOWN`): Kafka is known to be
    /// down until the checker next reaches it. Returns whether this is news.
    pub fn report_kafka_down(&self) -> bool {
        !self.producers_down.swap(true, Ordering::AcqRel)
    }

    /// Whether Kafka is known to be down: a producer found every broker down, and the health
    /// checker has not reached Kafka since. Always false for a server without a broker.
    pub fn kafka_known_down(&self) -> bool {
        !self.no_broker && self.producers_down.load(Ordering::Acquire)
    }

    /// Whether the checker should stop (shutdown began).
    pub fn checker_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_readiness_follows_the_checks_and_draining_wins() {
        let health = Health::default();
        assert_eq!(health.readiness(), Readiness::KafkaUnreachable, "not ready before the first check");
        assert!(!health.kafka_known_down(), "unknown is not down");
        health.set_kafka_reachable(true);
        assert_eq!(health.readiness(), Readiness::Ready);
        assert!(health.report_kafka_down(), "news: it was reachable");
        assert!(!health.report_kafka_down(), "known already");
        assert!(health.kafka_known_down());
        assert_eq!(health.readiness(), Readiness::KafkaUnreachable);
        assert!(health.set_kafka_reachable(true), "the last check had reached it");
        assert!(!health.kafka_known_down(), "a check that reaches Kafka clears the report");
        assert!(health.set_kafka_reachable(false), "the check before had reached it");
        assert!(!health.kafka_known_down(), "a failed check alone is not \"known down\"");
        assert_eq!(health.readiness(), Readiness::KafkaUnreachable, "but it is not ready");
        health.start_draining();
        assert_eq!(health.readiness(), Readiness::Draining);
    }

    #[test]
    fn a_server_without_broker_is_ready_until_it_drains() {
        let health = Health::without_broker();
        assert_eq!(health.readiness(), Readiness::Ready);
        health.start_draining();
        assert_eq!(health.readiness(), Readiness::Draining);
    }
}
