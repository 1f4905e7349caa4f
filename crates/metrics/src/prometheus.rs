//! The Prometheus exposition: the registry's sums in the OpenMetrics text format, encoded by
//! `prometheus-client`. The binary serves it (`METRIC_PROMETHEUS_PORT`, `METRIC_PROMETHEUS_PATH`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

use super::catalog::{Kind, MetricId, ALL_IDS};
use super::local::TagValues;
use super::{process, Registry};

/// Content type of the OpenMetrics text format, which Prometheus reads natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric.
pub fn render(registry: &Arc<Registry>) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register_collector(Box::new(RegistryCollector(Arc::clone(registry))));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

#[derive(Debug)]
struct RegistryCollector(Arc<Registry>);

type Labels<'a> = Vec<(&'a str, &'a str)>;

fn labels<'a>(id: MetricId, values: &'a TagValues) -> Labels<'a> {
    id.spec().tags.iter().copied().zip(values.iter().map(|v| &**v)).collect()
}

impl Collector for RegistryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut state = self.0.collect();
        process::refresh(&mut state);
        let gauges = state.gauges();
        for &id in ALL_IDS {
            let spec = id.spec();
            match spec.kind {
                Kind::Counter => {
                    let series: Vec<_> = state.counters.range((id, empty())..).take_while(|(k, _)| k.0 == id).collect();
                    if series.is_empty() {
                        continue;
                    }
                    // The encoder appends `_total` itself.
                    let name = spec.name.strip_suffix("_total").unwrap_or(spec.name);
                    let mut family = encoder.encode_descriptor(name, spec.help, None, MetricType::Counter)?;
                    for ((_, values), n) in series {
                        let labels = labels(id, values);
                        with_labels(&mut family, &labels, |m| m.encode_counter::<Labels<'_>, u64, f64>(n, None))?;
                    }
                }
                Kind::Gauge => {
                    let series: Vec<_> = gauges.range((id, empty())..).take_while(|(k, _)| k.0 == id).collect();
                    if series.is_empty() {
                        continue;
                    }
                    let mut family = encoder.encode_descriptor(spec.name, spec.help, None, MetricType::Gauge)?;
                    for ((_, values), v) in series {
                        let labels = labels(id, values);
                        with_labels(&mut family, &labels, |m| m.encode_gauge(v))?;
                    }
                }
                Kind::Histogram(buckets) => {
                    let series: Vec<_> =
                        state.histograms.range((id, empty())..).take_while(|(k, _)| k.0 == id).collect();
                    if series.is_empty() {
                        continue;
                    }
                    let mut family = encoder.encode_descriptor(spec.name, spec.help, None, MetricType::Histogram)?;
                    for ((_, values), h) in series {
                        let data = &h.total;
                        // Per-bucket counts (the encoder accumulates them), bounds in ms.
                        let mut below = 0u64;
                        let mut counts: Vec<(f64, u64)> = buckets
                            .bounds_ms()
                            .iter()
                            .map(|&ms| {
                                let upto = data.histogram.count_between(0, (ms * 1000.0) as u64);
                                let count = upto - below;
                                below = upto;
                                (ms, count)
                            })
                            .collect();
                        counts.push((f64::MAX, data.histogram.len() - below));
                        let labels = labels(id, values);
                        let (sum, count) = (data.sum_us as f64 / 1000.0, data.histogram.len());
                        with_labels(&mut family, &labels, |m| {
                            m.encode_histogram::<Labels<'_>>(sum, count, &counts, None)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Encodes one series, with `{...}` only when it has labels.
fn with_labels(
    family: &mut MetricEncoder<'_>,
    labels: &Labels<'_>,
    encode: impl FnOnce(&mut MetricEncoder<'_>) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    if labels.is_empty() {
        encode(family)
    } else {
        encode(&mut family.encode_family(labels)?)
    }
}

fn empty() -> TagValues {
    Arc::from(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::tags;
    use std::time::{Duration, Instant};

    #[test]
    fn renders_counters_gauges_and_histograms_with_raccoon_names() {
        let registry = Arc::new(Registry::new(100, Duration::from_secs(10)));
        let mut m = registry.local();
        let (g, t, ok, na) = (m.client_tag("mobile"), m.client_tag("click"), m.tag("success"), m.tag("NA"));
        m.add(MetricId::BatchesRead, tags([ok, na, g]), 2);
        m.add(MetricId::EventsRx, tags([g, t]), 5);
        m.set(MetricId::ConnCount, tags([g]), 1.0);
        m.record(MetricId::EventRtt, tags([]), Duration::from_millis(3));
        m.record(MetricId::EventRtt, tags([]), Duration::from_millis(30));
        m.flush(Instant::now());
        let text = render(&registry);
        for line in [
            "# TYPE batches_read counter",
            r#"batches_read_total{status="success",reason="NA",conn_group="mobile"} 2"#,
            r#"events_rx_total{conn_group="mobile",event_type="click"} 5"#,
            r#"connections_count_current{conn_group="mobile"} 1.0"#,
            "# TYPE event_rtt_ms histogram",
            "event_rtt_ms_count 2",
            "event_rtt_ms_sum 33.0",
            r#"event_rtt_ms_bucket{le="5.0"} 1"#,
            r#"event_rtt_ms_bucket{le="25.0"} 1"#,
            r#"event_rtt_ms_bucket{le="50.0"} 2"#,
            r#"event_rtt_ms_bucket{le="+Inf"} 2"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
