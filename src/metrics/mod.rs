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

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use catalog::MetricId;
pub use local::{tags, LocalMetrics, Tag};
pub use registry::Registry;

use crate::types::EventRecord;

/// Counts received events (`events_rx_total`, `events_rx_bytes_total`) of `group` by type.
/// Consecutive events of one type (the usual batch) cost one update per run, not per event.
pub fn count_events(metrics: &mut LocalMetrics, group: Tag, events: &[EventRecord]) {
    if !metrics.enabled() {
        return;
    }
    let mut events = events.iter().peekable();
    while let Some(first) = events.next() {
        let (mut count, mut bytes) = (1u64, first.payload.len() as u64);
        while let Some(next) = events.next_if(|e| e.event_type == first.event_type) {
            count += 1;
            bytes += next.payload.len() as u64;
        }
        // Types were checked to be ASCII at decode.
        let event_type = metrics.client_tag(std::str::from_utf8(&first.event_type).unwrap_or(""));
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

/// The running exporters.
pub struct Metrics {
    registry: Option<Arc<Registry>>,
    prometheus_addr: Option<SocketAddr>,
    statsd: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Metrics {
    /// Starts the exporter threads that `config` enables; `prometheus` is the Prometheus port's
    /// listener, bound by the caller when `config.prometheus` is set.
    pub fn start(config: &MetricsConfig, prometheus: Option<TcpListener>) -> anyhow::Result<Metrics> {
        use anyhow::Context;
        if config.prometheus.is_none() && config.statsd.is_none() {
            return Ok(Metrics { registry: None, prometheus_addr: None, statsd: None });
        }
        let registry = Arc::new(Registry::new(config.tag_values_max, config.window));
        let mut prometheus_addr = None;
        if let (Some((_, path)), Some(listener)) = (&config.prometheus, prometheus) {
            let bound = listener.local_addr().context("cannot read the Prometheus address")?;
            prometheus_addr = Some(bound);
            let (path, registry) = (path.clone(), Arc::clone(&registry));
            std::thread::Builder::new()
                .name("raccoon-prometheus".into())
                .spawn(move || prometheus::serve(listener, path, registry))
                .context("cannot start the Prometheus thread")?;
        }
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
        Ok(Metrics { registry: Some(registry), prometheus_addr, statsd })
    }

    /// A factory of recorders for threads started elsewhere.
    pub fn factory(&self) -> MetricsFactory {
        MetricsFactory(self.registry.clone())
    }

    /// The address Prometheus scrapes, once bound.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_addr
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
