//! Liveness and readiness, for load balancers and orchestrators.
//!
//! * `GET /ping` answers `200 pong` as Raccoon does, whatever the state.
//! * `GET /health/live` answers `200 live` while a shard can answer at all.
//! * `GET /health/ready` answers `200 ready` when Kafka answered the last metadata request and
//!   the server is not draining; otherwise `503` with the reason.
//!
//! A checker thread asks the brokers for metadata every [`CHECK_PERIOD`] with its own
//! librdkafka client, so a slow or dead broker never blocks a publisher or a shard; shards read
//! the outcome from atomics.

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
    /// Current readiness.
    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Acquire) {
            Readiness::Draining
        } else if !self.kafka_reachable.load(Ordering::Acquire) {
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

    /// Starts the checker thread with librdkafka properties `kafka` (the producers' own).
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
        while !self.stop.load(Ordering::Acquire) {
            let reachable = match client.client().fetch_metadata(None, CHECK_TIMEOUT) {
                Ok(metadata) => !metadata.brokers().is_empty(),
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
