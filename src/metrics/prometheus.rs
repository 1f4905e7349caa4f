//! Prometheus exporter: the registry's sums in the OpenMetrics text format (encoded by
//! `prometheus-client`), served on `METRIC_PROMETHEUS_PORT` at `METRIC_PROMETHEUS_PATH` by
//! hyper on a small unpinned glommio executor of its own thread, `raccoon-prometheus`. Scrapes
//! stay off the shards (rendering locks the registry), and each scrape connection is a task of
//! its own, so an idle or slow client delays no other scrape.

use std::convert::Infallible;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

use super::catalog::{Kind, MetricId, ALL_IDS};
use super::local::TagValues;
use super::{process, Registry};
use crate::rt::{accept_loop, Activity, Deadlines, HyperIo};

/// Content type of the OpenMetrics text format, which Prometheus reads natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a scraper may take to send its request, and to read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive scrape connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// glommio io memory of the exporter's executor: it does no file I/O.
const IO_MEMORY_BYTES: usize = 64 << 10;

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

/// Serves scrapes until the process exits, on a glommio executor of the calling thread.
/// Errors on one connection only end that connection.
pub fn serve(listener: TcpListener, path: String, registry: Arc<Registry>) {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).io_memory(IO_MEMORY_BYTES).make();
    let executor = match executor {
        Ok(executor) => executor,
        Err(error) => {
            tracing::error!(%error, "cannot start the Prometheus exporter; metrics are not served");
            return;
        }
    };
    executor.run(async move {
        let path: Rc<str> = Rc::from(path);
        accept_loop(crate::rt::adopt(listener), move |stream| {
            let (path, registry) = (Rc::clone(&path), Arc::clone(&registry));
            glommio::spawn_local(async move {
                let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
                let activity = Rc::new(Activity::default());
                let deadlines = Deadlines { idle: IDLE_TIMEOUT, head: Some(REQUEST_TIMEOUT) };
                let io = HyperIo::new(stream, Rc::clone(&activity), deadlines);
                let service = hyper::service::service_fn(move |request| {
                    let _active = activity.begin();
                    std::future::ready(Ok::<_, Infallible>(answer(&request, &path, &registry)))
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!(%error, "metrics connection ended");
                }
            })
            .detach();
        })
        .await;
    });
}

fn answer<B>(request: &Request<B>, path: &str, registry: &Arc<Registry>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if request.uri().path() != path {
        (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", Bytes::from_static(b"not found"))
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", Bytes::from_static(b"use GET"))
    } else {
        (StatusCode::OK, CONTENT_TYPE, Bytes::from(render(registry)))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::local::tags;
    use std::time::Instant;

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
