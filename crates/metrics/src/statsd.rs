//! StatsD exporter: every `METRIC_STATSD_FLUSH_PERIOD_MS`, what changed is sent over UDP to
//! `METRIC_STATSD_ADDRESS` with Telegraf-style tags in the bucket name, as Raccoon sends them
//! (`name,k=v,k2=v2:1|c`), minus Raccoon's stray empty tags. Packets are assembled by `cadence`.
//!
//! Counters go as their increase since the last flush (`|c`), gauges as their value (`|g`), and
//! histograms as timings (`|ms`, whole milliseconds): one line per distinct value with the
//! sample rate `1/count`, which Telegraf's statsd input expands back into `count` values. A
//! flush therefore costs lines per distinct value, not per recorded event.

use std::collections::{BTreeMap, HashMap};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, StatsdClient};

use super::catalog::{Kind, MetricId};
use super::local::{HistogramData, TagValues};
use super::Registry;

/// Sends what changed since the previous call.
pub struct Exporter {
    client: StatsdClient,
    registry: Arc<Registry>,
    sent_counters: HashMap<(MetricId, TagValues), u64>,
    sent_histograms: HashMap<(MetricId, TagValues), HistogramData>,
}

impl Exporter {
    /// An exporter sending to `address` (`host:port`).
    pub fn new(address: &str, registry: Arc<Registry>) -> anyhow::Result<Self> {
        let bind = if address.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
        let socket = UdpSocket::bind(bind)?;
        let sink = BufferedUdpMetricSink::from(address, socket)?;
        let client = StatsdClient::builder("", sink)
            .with_error_handler(|error| tracing::debug!(%error, "statsd send failed"))
            .build();
        Ok(Exporter { client, registry, sent_counters: HashMap::new(), sent_histograms: HashMap::new() })
    }

    /// Sends one round.
    pub fn flush(&mut self) {
        let mut state = self.registry.collect();
        super::process::refresh(&mut state);
        for ((id, tags), total) in &state.counters {
            let sent = self.sent_counters.entry((*id, tags.clone())).or_insert(0);
            let increase = total - *sent;
            *sent = *total;
            if increase > 0 {
                let _ = self.client.count(&bucket(*id, tags), increase);
            }
        }
        for ((id, tags), value) in state.gauges() {
            let _ = self.client.gauge(&bucket(id, &tags), value);
        }
        for ((id, tags), h) in &state.histograms {
            let Kind::Histogram(_) = id.spec().kind else { continue };
            let sent = self.sent_histograms.entry((*id, tags.clone())).or_default();
            let mut new = h.total.histogram.clone();
            if new.subtract(&sent.histogram).is_err() {
                continue;
            }
            sent.histogram = h.total.histogram.clone();
            // Group by whole milliseconds, as the timing lines carry.
            let mut by_ms: BTreeMap<u64, u64> = BTreeMap::new();
            for v in new.iter_recorded() {
                let ms = (new.median_equivalent(v.value_iterated_to()) + 500) / 1000;
                *by_ms.entry(ms).or_insert(0) += v.count_at_value();
            }
            let name = bucket(*id, tags);
            for (ms, count) in by_ms {
                let timing = self.client.time_with_tags(&name, ms);
                let timing = if count > 1 { timing.with_sampling_rate(1.0 / count as f64) } else { timing };
                let _ = timing.try_send();
            }
        }
        drop(state);
        let _ = self.client.flush();
    }
}

/// `name,k=v,...` with tags in the metric's order and no empty ones.
fn bucket(id: MetricId, values: &TagValues) -> String {
    let mut out = String::from(id.spec().name);
    for (key, value) in id.spec().tags.iter().zip(values.iter()) {
        if value.is_empty() {
            continue;
        }
        out.push(',');
        out.push_str(key);
        out.push('=');
        // Telegraf's separators cannot appear in a tag value.
        out.extend(value.chars().map(|c| if matches!(c, ',' | '=' | ':' | '|' | ' ') { '_' } else { c }));
    }
    out
}

/// Runs [`Exporter::flush`] every `period` until `stop` is set, then once more.
pub fn run(mut exporter: Exporter, period: Duration, stop: &AtomicBool) {
    let tick = Duration::from_millis(50).min(period);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        waited += tick;
        if waited >= period {
            waited = Duration::ZERO;
            exporter.flush();
        }
    }
    exporter.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_carry_clean_tags() {
        let values: TagValues = Arc::from(vec![Arc::from("success"), Arc::from(""), Arc::from("a,b=c")]);
        assert_eq!(bucket(MetricId::BatchesRead, &values), "batches_read_total,status=success,conn_group=a_b_c");
        let none: TagValues = Arc::from(Vec::new());
        assert_eq!(bucket(MetricId::EventRtt, &none), "event_rtt_ms");
    }
}
