//! The Kafka health checker: a thread with a librdkafka client of its own that asks the cluster
//! for its brokers every [`CHECK_PERIOD`] and records the answer in the shared [`Health`]
//! flags, so a slow or dead broker never blocks a publisher or a shard. The question names no
//! topic ([`cluster`]): its answer does not grow with the cluster's topics.

mod cluster;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use raccoon_core::health::Health;

/// How often Kafka's reachability is checked.
pub const CHECK_PERIOD: Duration = Duration::from_secs(2);
/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the checker thread with librdkafka properties `kafka` (the producers' own). Until its
/// first check, readiness is [`Readiness::KafkaUnreachable`](raccoon_core::health::Readiness);
/// it stops once [`Health::start_draining`] is called.
pub fn start_checker(health: &Arc<Health>, kafka: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    // Statistics would pile up unread in this client's queue.
    for (key, value) in kafka.iter().filter(|(k, _)| k.as_str() != "statistics.interval.ms") {
        config.set(key, value);
    }
    let client: BaseProducer = config.create().context("cannot create the Kafka health-check client")?;
    let health = Arc::clone(health);
    std::thread::Builder::new()
        .name("raccoon-health".into())
        .spawn(move || check_loop(&health, &client))
        .context("cannot start the health-check thread")?;
    Ok(())
}

fn check_loop(health: &Health, client: &BaseProducer) {
    let mut probe = cluster::ClusterProbe::new(client.client());
    while !health.checker_stopped() {
        // A failed question is asked once more at once: librdkafka may have sent it to a broker
        // that just went away while others are up.
        let reachable = (0..2).any(|_| match probe.brokers(CHECK_TIMEOUT) {
            Ok(brokers) => brokers > 0,
            Err(error) => {
                tracing::debug!(%error, "Kafka health check failed");
                false
            }
        });
        let was = health.set_kafka_reachable(reachable);
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
