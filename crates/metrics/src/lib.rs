//! Metrics with Raccoon's names and tags, exported over Prometheus and StatsD (either, both or
//! neither).
//!
//! Collection is per thread and lock-free: each shard, publisher thread and Kafka poll thread
//! records into its own [`LocalMetrics`] (plain integers and HDR histograms) and hands what
//! changed to the [`Registry`] about once a second over a bounded queue. The exporters merge
//! those changes when they read. With no exporter enabled, recording is a branch on a
//! constant `false`.
//!
//! The single list of metric names is [`catalog::METRICS`]; README.md's table comes from it.

pub mod catalog;
pub mod io_uring;
pub mod local;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod statsd;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use catalog::MetricId;
pub use local::{tags, LocalMetrics, Tag};
pub use registry::Registry;

/// Counts received events (`events_rx_total`, `events_rx_bytes_total`) of `group` by type:
/// `events` yields each event's type and payload size, in batch order. Consecutive events of one
/// type (the usual batch) cost one update per run, not per event. Types are expected to be
/// ASCII (checked at decode); anything else counts under the empty type.
pub fn count_events<'a>(metrics: &mut LocalMetrics, group: Tag, events: impl IntoIterator<Item = (&'a [u8], usize)>) {
    if !metrics.enabled() {
        return;
    }
    let mut events = events.into_iter().peekable();
    while let Some((event_type, size)) = events.next() {
        let (mut count, mut bytes) = (1u64, size as u64);
        while let Some((_, size)) = events.next_if(|(next, _)| *next == event_type) {
            count += 1;
            bytes += size as u64;
        }
        let event_type = metrics.client_tag(std::str::from_utf8(event_type).unwrap_or(""));
        metrics.add(MetricId::EventsRx, tags([group, event_type]), count);
        metrics.add(MetricId::EventsRxBytes, tags([group, event_type]), bytes);
    }
}

/// Metric settings (`METRIC_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The port (0: a free one) and path Prometheus scrapes, if enabled. The port binds where
    /// `SERVER_BIND_ADDRESS` says, as the others do.
    pub prometheus: Option<(u16, String)>,
    /// StatsD destination and flush period, if enabled.
    pub statsd: Option<(String, Duration)>,
    /// Window of the percentile gauges (`METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS`).
    pub window: Duration,
    /// Distinct client-supplied tag values per thread (`METRIC_TAG_VALUES_MAX`).
    pub tag_values_max: usize,
}

/// The registry and the StatsD exporter, when `METRIC_*` enables an exporter. The Prometheus
/// exporter is an HTTP server, so the binary serves [`prometheus::render`] itself, from
/// [`Metrics::registry`].
pub struct Metrics {
    registry: Option<Arc<Registry>>,
    statsd: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Metrics {
    /// Creates the registry if `config` enables an exporter, and starts the StatsD thread if it
    /// enables StatsD.
    pub fn start(config: &MetricsConfig) -> anyhow::Result<Metrics> {
        use anyhow::Context;
        if config.prometheus.is_none() && config.statsd.is_none() {
            return Ok(Metrics { registry: None, statsd: None });
        }
        let registry = Arc::new(Registry::new(config.tag_values_max, config.window));
        let mut statsd = None;
        if let Some((address, period)) = &config.statsd {
            let exporter = statsd::Exporter::new(address, Arc::clone(&registry))
                .with_context(|| format!("cannot set up StatsD to {address} (METRIC_STATSD_ADDRESS)"))?;
            let stop = Arc::new(AtomicBool::new(false));
            let (period, flag) = (*period, Arc::clone(&stop));
            let thread = std::thread::Builder::new()
                .name("raccoon-statsd".into())
                .spawn(move || statsd::run(exporter, period, &flag))
                .context("cannot start the StatsD thread")?;
            statsd = Some((thread, stop));
        }
        Ok(Metrics { registry: Some(registry), statsd })
    }

    /// A factory of recorders for threads started elsewhere.
    pub fn factory(&self) -> MetricsFactory {
        MetricsFactory(self.registry.clone())
    }

    /// The registry every recorder hands its changes to, when an exporter is enabled.
    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// Sends a last StatsD round (after every recording thread has flushed) and stops.
    pub fn shutdown(self) {
        if let Some((thread, stop)) = self.statsd {
            stop.store(true, std::sync::atomic::Ordering::Release);
            let _ = thread.join();
        }
    }
}

/// Hands out [`LocalMetrics`]; cheap to clone and `Send`.
#[derive(Debug, Clone)]
pub struct MetricsFactory(Option<Arc<Registry>>);

impl MetricsFactory {
    /// A factory whose recorders record nothing.
    pub fn disabled() -> Self {
        MetricsFactory(None)
    }

    /// A recorder for the calling thread.
    pub fn local(&self) -> LocalMetrics {
        self.0.as_ref().map_or_else(LocalMetrics::disabled, |r| r.local())
    }

    /// Whether anything is exported (callers skip work that only feeds metrics).
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Exports the counters of shard `shard`'s io_uring rings `fds` (see [`io_uring`]).
    pub fn watch_io_rings(&self, shard: &str, fds: &[std::os::fd::RawFd]) {
        if let Some(registry) = &self.0 {
            registry.watch_io_rings(shard, fds);
        }
    }
}
