//! The single list of metrics: name, type, tags and meaning. Recording code names metrics by
//! [`MetricId`], the exporters take names, tags and help from here, and README.md's metric
//! reference is generated from it (a test keeps the two identical).

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; exported cumulatively (Prometheus) or as the increase since the last flush
    /// (StatsD `|c`).
    Counter,
    /// A current value (`|g`).
    Gauge,
    /// A distribution in milliseconds, recorded in microseconds into an HDR histogram; exported
    /// with fixed buckets (Prometheus) or as timings (StatsD `|ms`).
    Histogram(Buckets),
}

/// Prometheus bucket boundaries of a histogram, in milliseconds (Raccoon's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// `5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000`.
    Latency,
    /// `1000, 10000, 100000, 600000, 3600000` (session lengths).
    Session,
}

impl Buckets {
    /// Upper bounds in milliseconds, `+Inf` excluded.
    pub fn bounds_ms(self) -> &'static [f64] {
        match self {
            Buckets::Latency => &[5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0],
            Buckets::Session => &[1000.0, 10000.0, 100000.0, 600000.0, 3600000.0],
        }
    }
}

/// Whether a metric is Raccoon's (dashboards and alerts use it) or added here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Same name, type and tags as Raccoon v0.3.
    Raccoon,
    /// Raccoon's name and tags; what it measures differs a little (the doc says how).
    RaccoonChanged,
    /// Added by this server.
    New,
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// The exported name (Prometheus and StatsD alike).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Tag names, in the order recording code passes their values.
    pub tags: &'static [&'static str],
    /// Where the name comes from.
    pub origin: Origin,
    /// What it counts or measures, and when.
    pub help: &'static str,
}

macro_rules! metrics {
    ($($id:ident = $name:literal, $kind:expr, [$($tag:literal),*], $origin:ident, $help:literal;)*) => {
        /// Names a metric in recording code; indexes [`METRICS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)]
        pub enum MetricId { $($id),* }

        /// Every [`MetricId`], in order.
        pub const ALL_IDS: &[MetricId] = &[$(MetricId::$id),*];

        /// Every metric this server exports, in [`MetricId`] order.
        pub const METRICS: &[MetricSpec] = &[
            $(MetricSpec { name: $name, kind: $kind, tags: &[$($tag),*], origin: Origin::$origin, help: $help }),*
        ];
    };
}

use Buckets::{Latency, Session};
use Kind::{Counter, Gauge, Histogram};

metrics! {
    BatchesRead = "batches_read_total", Counter, ["status", "reason", "conn_group"], Raccoon,
        "Batches read: WebSocket frames, REST requests and gRPC calls. `status` success or failed; `reason` NA, serde (not a SendEventRequest, or an event type that cannot name a topic), unknowncontentype (REST without a JSON or protobuf Content-Type), readerr (a REST body or gRPC message that could not be read: too large, too slow, cut off) or closeerror (a WebSocket connection ended, as Raccoon counts it).";
    EventsRx = "events_rx_total", Counter, ["conn_group", "event_type"], Raccoon,
        "Events received in batches that decoded.";
    EventsRxBytes = "events_rx_bytes_total", Counter, ["conn_group", "event_type"], Raccoon,
        "Bytes of `event_bytes` received.";
    EventsDuplicate = "events_duplicate_total", Counter, ["conn_group", "reason"], Raccoon,
        "Batches dropped because the same connection sent their req_guid before (SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED); `reason` is always `duplicate`.";
    ConnSuccess = "user_connection_success_total", Counter, ["conn_group"], Raccoon,
        "WebSocket connections accepted.";
    ConnFailure = "user_connection_failure_total", Counter, ["conn_group", "reason"], Raccoon,
        "WebSocket connections refused after the upgrade; `reason` serverlimit (SERVER_WEBSOCKET_MAX_CONN reached) or exists (a connection with the same id and group is open).";
    ConnCount = "connections_count_current", Gauge, ["conn_group"], Raccoon,
        "Open WebSocket connections, refreshed every second.";
    SessionDuration = "user_session_duration_milliseconds", Histogram(Session), ["conn_group"], Raccoon,
        "Length of WebSocket connections, recorded when they close.";
    TlsHandshakes = "tls_handshakes_total", Counter, ["port", "result"], New,
        "TLS handshakes on a port with TLS (`port` http or grpc), by `result`: ok, cleartext (the client spoke no TLS; a plain HTTP request is answered 400), closed (it left during the handshake), timeout (not done within SERVER_HTTP_HEADER_TIMEOUT_MS), certificate (its client certificate was missing or refused, with mTLS), alert (the client gave up with an alert: a rise after a certificate change means clients do not trust the new one), protocol (rustls refused a message: no shared version or cipher, a malformed hello) or io.";
    PingFailure = "server_ping_failure_total", Counter, ["conn_group"], Raccoon,
        "Server pings that could not be written (the connection is then dropped).";
    PongFailure = "server_pong_failure_total", Counter, ["conn_group"], Raccoon,
        "Pongs (answers to client pings) that could not be written within SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS; the connection is then dropped.";
    BatchIdle = "batch_idle_in_channel_milliseconds", Histogram(Latency), ["worker"], RaccoonChanged,
        "From the batch's decoding to its publisher thread taking it off the queue (Raccoon: from enqueue; here the wait for queue room is included). `worker` is `worker-N`.";
    ProduceBulk = "kafka_producebulk_tt_ms", Histogram(Latency), [], RaccoonChanged,
        "Time a publisher thread takes to hand one batch to librdkafka (Raccoon's also waited for delivery; see kafka_delivery_latency_milliseconds).";
    EventProcessing = "event_processing_duration_milliseconds", Histogram(Latency), ["conn_group"], Raccoon,
        "(receipt - the batch's client `sent_time`) / events in the batch. Meaningless when client clocks are off.";
    WorkerProcessing = "worker_processing_duration_milliseconds", Histogram(Latency), ["worker"], Raccoon,
        "(hand-off to librdkafka done - taken off the queue) / events in the batch.";
    ServerProcessing = "server_processing_latency_milliseconds", Histogram(Latency), ["conn_group"], Raccoon,
        "(Kafka's delivery report for a batch's last event - its receipt) / events in the batch.";
    EventRtt = "event_rtt_ms", Histogram(Latency), [], RaccoonChanged,
        "Receive-to-ack latency: from a batch's receipt to its reply written to the socket (WebSocket) or handed to the HTTP connection (REST, gRPC). Both ack modes (Raccoon: EVENT_ACK=1 only).";
    DeliveryLatency = "kafka_delivery_latency_milliseconds", Histogram(Latency), [], New,
        "Receive-to-Kafka latency: from a batch's receipt to the delivery report of its last event.";
    LatencyQuantile = "latency_quantile_milliseconds", Gauge, ["metric", "quantile"], New,
        "Percentiles (0.5, 0.9, 0.99, 0.999) of event_rtt_ms and kafka_delivery_latency_milliseconds over the last METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS, from the full-resolution histograms.";
    Delivered = "kafka_messages_delivered_total", Counter, ["topic", "conn_group", "event_type"], Raccoon,
        "Events Kafka confirmed. `event_type` is NA when the topic pattern has no %s.";
    Undelivered = "kafka_messages_undelivered_total", Counter, ["topic", "conn_group", "event_type"], Raccoon,
        "Events that failed: refused by librdkafka or reported failed.";
    UnknownTopic = "kafka_unknown_topic_failure_total", Counter, ["topic", "event_type", "conn_group"], Raccoon,
        "Events refused at once because the topic does not exist (auto-creation off).";
    DeliveryErrors = "kafka_delivery_errors_total", Counter, ["error_code", "retriable"], New,
        "Events that failed, by librdkafka's error name (`MSG_SIZE_TOO_LARGE`, `_MSG_TIMED_OUT`, `_ALL_BROKERS_DOWN` for events not offered to a Kafka known to be down, ...) and whether the client is told to retry (`true`) or not (`false`: rejected, or a missing topic). The table is in crates/publish/src/classify.rs.";
    AnsweredEarly = "kafka_batches_answered_early_total", Counter, ["reason"], New,
        "Batches (EVENT_ACK=1) answered \"retry\" before Kafka's outcome was known: `kafka_down` (a producer found every broker down) or `deadline` (not acknowledged within PUBLISHER_KAFKA_BATCH_DEADLINE_MS). Their events stay with librdkafka and may still be published.";
    DeadLettered = "kafka_messages_dead_lettered_total", Counter, ["topic", "conn_group", "error_code"], New,
        "Events Kafka rejected for good (`error_code`, e.g. `MSG_SIZE_TOO_LARGE`) that were sent to PUBLISHER_DEAD_LETTER_TOPIC instead of failing their batch; `topic` is the topic they were meant for (where they also count in kafka_messages_undelivered_total). Whether the dead-letter record landed shows as `kafka_messages_delivered_total{topic=<the dead-letter topic>}`.";
    ProducerRebuilds = "kafka_producer_rebuilds_total", Counter, [], New,
        "Kafka producers built anew after a fatal librdkafka error (or a SIGUSR2 fault drill); the batches the old one held are answered \"retry\".";
    TxMessages = "kafka_tx_messages_total", Gauge, [], Raccoon,
        "librdkafka statistics `txmsgs` summed over producers; needs PUBLISHER_KAFKA_CLIENT_STATISTICS_INTERVAL_MS > 0.";
    TxBytes = "kafka_tx_messages_bytes_total", Gauge, [], Raccoon,
        "librdkafka statistics `txmsg_bytes` summed over producers; needs statistics.";
    BrokerTx = "kafka_brokers_tx_total", Gauge, ["broker"], Raccoon,
        "librdkafka per-broker requests sent; needs statistics.";
    BrokerTxBytes = "kafka_brokers_tx_bytes_total", Gauge, ["broker"], Raccoon,
        "librdkafka per-broker bytes sent; needs statistics.";
    BrokerRtt = "kafka_brokers_rtt_average_milliseconds", Gauge, ["broker"], RaccoonChanged,
        "librdkafka per-broker average request round trip, in milliseconds (Raccoon exported microseconds under this name); needs statistics.";
    ProcessRss = "process_resident_memory_bytes", Gauge, [], New,
        "Resident memory of the process (in place of Raccoon's Go heap gauges).";
    ProcessCpu = "process_cpu_seconds_total", Counter, [], New,
        "User plus system CPU time of the process.";
    ProcessFds = "process_open_fds", Gauge, [], New,
        "Open file descriptors (sockets included).";
    ShardTasks = "shard_tasks_executed_total", Counter, ["shard"], New,
        "Tasks a shard's executor ran.";
    ShardBusy = "shard_busy_ratio", Gauge, ["shard"], New,
        "Share of the last second a shard's executor spent running tasks rather than waiting in io_uring; near 1 means the shard is saturated.";
    ShardSchedulerRuns = "shard_scheduler_runs_total", Counter, ["shard"], New,
        "Times a shard's scheduler picked a task queue to run.";
    ShardTimerLag = "shard_timer_lag_milliseconds", Gauge, ["shard"], New,
        "How late the shard's one-second metrics timer fired (last sample): how long a task that is ready waits for the shard's core. glommio 0.9 exposes no run-queue length; this is the run-queue delay instead.";
    ShardInbox = "shard_inbox_depth", Gauge, ["shard"], New,
        "Delivery outcomes waiting in the shard's inbox, sampled every second; growing means the shard falls behind on acks.";
    ShardQueueFull = "shard_publisher_queue_full_total", Counter, ["shard"], New,
        "Batches a shard had to hold because their publisher queue was full; meanwhile their connection is not read (back-pressure on the client).";
    IoUringSubmissions = "io_uring_submissions_total", Counter, ["shard"], New,
        "Requests a shard's executor queued to its io_uring rings (socket reads and writes, accepts, timers), from the rings' SqTail in /proc/self/fdinfo.";
    IoUringCompletions = "io_uring_completions_total", Counter, ["shard"], New,
        "Completions the kernel posted to a shard's io_uring rings (CqTail). Submissions minus completions over time is work the kernel still holds (mostly reads waiting for data).";
    PublisherQueue = "publisher_queue_depth", Gauge, ["worker"], New,
        "Batches waiting in a publisher thread's queue (at most WORKER_BUFFER_CHANNEL_SIZE), sampled every second.";
}

impl MetricId {
    /// This metric's entry in [`METRICS`].
    pub fn spec(self) -> &'static MetricSpec {
        &METRICS[self as usize]
    }
}

/// The metric reference as a Markdown table, as README.md carries it between the
/// `metrics-reference` markers.
pub fn markdown_reference() -> String {
    let mut out = String::from("| Metric | Type | Tags | Origin | Meaning |\n|---|---|---|---|---|\n");
    for m in METRICS {
        let kind = match m.kind {
            Kind::Counter => "counter".to_owned(),
            Kind::Gauge => "gauge".to_owned(),
            Kind::Histogram(b) => {
                let bounds: Vec<String> = b.bounds_ms().iter().map(|v| v.to_string()).collect();
                format!("histogram (ms: {})", bounds.join(", "))
            }
        };
        let tags = if m.tags.is_empty() {
            "-".to_owned()
        } else {
            m.tags.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        };
        let origin = match m.origin {
            Origin::Raccoon => "Raccoon",
            Origin::RaccoonChanged => "Raccoon, changed",
            Origin::New => "new",
        };
        out.push_str(&format!("| `{}` | {kind} | {tags} | {origin} | {} |\n", m.name, m.help.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_their_own_entries() {
        assert_eq!(MetricId::BatchesRead.spec().name, "batches_read_total");
        assert_eq!(MetricId::PublisherQueue.spec().name, "publisher_queue_depth");
        assert_eq!(METRICS.len(), MetricId::PublisherQueue as usize + 1);
        assert!(ALL_IDS.iter().enumerate().all(|(i, id)| *id as usize == i));
    }

    #[test]
    fn names_are_unique_and_counters_end_in_total() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.tags.len() <= super::super::local::MAX_TAGS, "{} has too many tags", m.name);
            if m.kind == Kind::Counter {
                // The Prometheus encoder appends `_total` to counters; names are given with it.
                assert!(m.name.ends_with("_total"), "{}", m.name);
            }
        }
    }

    #[test]
    fn readme_lists_every_metric_as_the_code_defines_it() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let start = "<!-- metrics-reference:start -->\n";
        let from = readme.find(start).expect("README.md has no metrics-reference:start marker") + start.len();
        let to = readme[from..].find("<!-- metrics-reference:end -->").expect("no metrics-reference:end marker") + from;
        let want = markdown_reference();
        assert!(readme[from..to] == want, "README.md's metric table is out of date; replace it with:\n{want}");
    }

    /// PromQL aggregation operators (they may be followed by `by (...)` instead of `(`).
    const AGGREGATIONS: &[&str] = &["sum", "avg", "min", "max", "count", "group", "topk", "bottomk", "quantile"];

    /// Metric and label names a PromQL expression uses: `(metrics, labels)`. Enough PromQL for
    /// the dashboard: selectors with `{...}` matchers, `[...]` ranges, `by (...)` and function
    /// calls.
    fn promql_names(expr: &str) -> (Vec<String>, Vec<String>) {
        let (mut metrics, mut labels) = (Vec::new(), Vec::new());
        let chars: Vec<char> = expr.chars().collect();
        let (mut i, mut in_matchers, mut in_by) = (0, false, false);
        while i < chars.len() {
            let c = chars[i];
            if c == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else if c == '[' {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            } else if c == '{' || c == '}' {
                in_matchers = c == '{';
                i += 1;
            } else if c == ')' {
                in_by = false;
                i += 1;
            } else if c.is_ascii_alphabetic() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if in_matchers || in_by {
                    labels.push(word);
                } else if word == "by" || word == "without" {
                    in_by = true;
                    // Skip the `(` so that it is not taken for a call.
                    while i < chars.len() && chars[i] != '(' {
                        i += 1;
                    }
                    i += 1;
                } else if next != Some(&'(') && !AGGREGATIONS.contains(&word.as_str()) {
                    metrics.push(word);
                }
            } else {
                i += 1;
            }
        }
        (metrics, labels)
    }

    /// The spec a series name belongs to (a histogram's `_bucket`/`_sum`/`_count` too), and
    /// whether it is a histogram bucket (which adds the `le` label).
    fn series_spec(series: &str) -> Option<(&'static MetricSpec, bool)> {
        METRICS.iter().find_map(|m| {
            if m.name == series {
                return Some((m, false));
            }
            let Kind::Histogram(_) = m.kind else { return None };
            let suffix = series.strip_prefix(m.name)?;
            ["_bucket", "_sum", "_count"].contains(&suffix).then_some((m, suffix == "_bucket"))
        })
    }

    #[test]
    fn promql_scanner_tells_metrics_from_labels_and_functions() {
        let (metrics, labels) =
            promql_names(r#"sum by (le, worker) (rate(batch_idle_in_channel_milliseconds_bucket{shard=~"$x"}[5m]))"#);
        assert_eq!(metrics, ["batch_idle_in_channel_milliseconds_bucket"]);
        assert_eq!(labels, ["le", "worker", "shard"]);
        assert_eq!(series_spec("event_rtt_ms_bucket").map(|(m, b)| (m.name, b)), Some(("event_rtt_ms", true)));
        assert!(series_spec("events_rx_total_bucket").is_none());
        assert!(series_spec("no_such_metric").is_none());
    }

    #[test]
    fn grafana_dashboard_queries_only_metrics_and_tags_the_code_exports() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dashboards/raccoon.json");
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        fn walk(value: &serde_json::Value, exprs: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("expr", serde_json::Value::String(e)) => exprs.push(e.clone()),
                            // Template variables: `label_values(metric, label)`.
                            ("query", serde_json::Value::String(q)) if q.starts_with("label_values(") => {
                                let inner = &q["label_values(".len()..q.len() - 1];
                                let (metric, label) = inner.split_once(',').expect("label_values(metric, label)");
                                exprs.push(format!("sum by ({}) ({})", label.trim(), metric.trim()));
                            }
                            _ => walk(v, exprs),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, exprs)),
                _ => {}
            }
        }
        walk(&dashboard, &mut exprs);
        assert!(exprs.len() >= 20, "found only {} queries in the dashboard", exprs.len());
        for expr in &exprs {
            let (metrics, labels) = promql_names(expr);
            assert!(!metrics.is_empty(), "no metric found in {expr:?}");
            let mut known_labels = vec!["le"];
            for series in &metrics {
                let (spec, _) = series_spec(series).unwrap_or_else(|| panic!("{expr:?}: {series} is not exported"));
                known_labels.extend(spec.tags);
            }
            for label in &labels {
                assert!(known_labels.contains(&label.as_str()), "{expr:?}: no metric in it has the tag {label}");
            }
        }
    }
}
