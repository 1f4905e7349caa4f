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
//! slow or dead broker never blocks a publisher or a shard. Shards read the outcome from atomics.

use std::sync::atomic::{AtomicBool, Ordering};

/// Shared health flags.
///
/// Crosses threads (Send + Sync).
#[derive(Debug, Default)]
pub struct Health {
    /// The publisher needs no broker: Kafka's reachability does not matter.
    no_broker: bool,
    kafka_reachable: AtomicBool,
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
        Health { no_broker: true, ..Health::default() }
    }

    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if !self.no_broker && !self.kafka_reachable.load(Ordering::Acquire) {
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

    /// Records the outcome of a reachability check; returns the previous one.
    pub fn set_kafka_reachable(&self, reachable: bool) -> bool {
        self.kafka_reachable.swap(reachable, Ordering::AcqRel)
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
        health.set_kafka_reachable(true);
        assert_eq!(health.readiness(), Readiness::Ready);
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
