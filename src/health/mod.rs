//! Liveness and readiness, for load balancers and orchestrators.
//!
//! * `GET /ping` answers `200 pong` as Raccoon does, whatever the state.
//! * `GET /health/live` answers `200 live` while a shard can answer at all.
//! * `GET /health/ready` answers `200 ready` when Kafka answered the last check (which brokers
//!   are there) and the server is not draining; otherwise `503` with the reason. A server whose
//!   publisher needs no broker (`PUBLISHER_TYPE=log`, [`Health::without_broker`]) is ready until
//!   it drains.
//!
//! A checker thread asks the cluster for its brokers every [`CHECK_PERIOD`] with its own
//! librdkafka client, so a slow or dead broker never blocks a publisher or a shard; shards read
//! the outcome from atomics. The question names no topic ([`cluster`]): its answer does not grow
//! with the cluster's topics.

mod cluster;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

/// How often Kafka's reachability is checked.
pub const CHECK_PERIOD: Duration = Duration::from_secs(2);
/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// Starts the checker thread with librdkafka properties `kafka` (the producers' own). Until
    /// its first check, readiness is [`Readiness::KafkaUnreachable`].
    pub fn start_checker(self: &Arc<Self>, kafka: &BTreeMap<String, String>) -> anyhow::Result<()> {
        use anyhow::Context;
        let mut config = ClientConfig::new();
        // Statistics would pile up unread in this client's queue.
        for (key, value) in kafka.iter().filter(|(k, _)| k.as_str() != "statistics.interval.ms") {
            config.set(key, value);
        }
        let client: BaseProducer = config.create().context("cannot create the Kafka health-check client")?;
        let health = Arc::clone(self);
        std::thread::Builder::new()
            .name("raccoon-health".into())
            .spawn(move || health.check_loop(&client))
            .context("cannot start the health-check thread")?;
        Ok(())
    }

    fn check_loop(&self, client: &BaseProducer) {
        let mut probe = cluster::ClusterProbe::new(client.client());
        while !self.stop.load(Ordering::Acquire) {
            let reachable = match probe.brokers(CHECK_TIMEOUT) {
                Ok(brokers) => brokers > 0,
                Err(error) => {
                    tracing::debug!(%error, "Kafka health check failed");
                    false
                }
            };
            let was = self.kafka_reachable.swap(reachable, Ordering::AcqRel);
            if was != reachable {
                if reachable {
                    tracing::info!("Kafka reachable: ready");
                } else {
                    tracing::warn!("Kafka unreachable: not ready");
                }
            }
            // Serves (and so frees) whatever librdkafka queued for this client, logs included.
            client.poll(CHECK_PERIOD);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_readiness_follows_the_checks_and_draining_wins() {
        let health = Health::default();
        assert_eq!(health.readiness(), Readiness::KafkaUnreachable, "not ready before the first check");
        health.kafka_reachable.store(true, Ordering::Release);
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
