//! `load`'s final figures: rates over the measured window, ack latency percentiles, errors by
//! kind, server and own CPU and memory; as text for the terminal and as JSON for `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::conn::Pace;
use super::recorder::Counts;
use crate::latency::Latencies;
use crate::procfs::Usage;
use crate::send::{EncodingArg, Transport};
use crate::workload::WorkloadArgs;

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) transport: Transport,
    pub(crate) encoding: EncodingArg,
    pub(crate) url: String,
    pub(crate) connections: usize,
    pub(crate) opened: usize,
    pub(crate) source_ips: u8,
    pub(crate) pace: Pace,
    pub(crate) rate: Option<f64>,
    pub(crate) workload: WorkloadArgs,
    pub(crate) warmup_s: f64,
    /// The counters at the start and the end of the measured window.
    pub(crate) window: (Counts, Counts),
    /// The counters once every connection ended.
    pub(crate) total: Counts,
    /// Ack latencies of the measured window.
    pub(crate) latency: Latencies,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) server: Option<Usage>,
    /// The server's RSS before the connections opened.
    pub(crate) server_idle_rss: Option<u64>,
    pub(crate) own: Option<Usage>,
}

impl Report {
    fn secs(&self) -> f64 {
        self.window.1.at.duration_since(self.window.0.at).as_secs_f64().max(1e-9)
    }

    fn sent_in_window(&self) -> u64 {
        self.window.1.sent_events - self.window.0.sent_events
    }

    fn acked_in_window(&self) -> u64 {
        self.window.1.acked_events - self.window.0.acked_events
    }

    /// The report as one JSON object.
    pub(crate) fn json(&self) -> serde_json::Value {
        let (mode, in_flight) = match self.pace {
            Pace::Closed { in_flight } => ("closed", in_flight),
            Pace::Open { max_in_flight, .. } => ("open", max_in_flight),
        };
        let secs = self.secs();
        serde_json::json!({
            "command": "load",
            "transport": self.transport.name(),
            "encoding": self.encoding.name(),
            "url": self.url,
            "connections": self.connections,
            "connections_opened": self.opened,
            "source_ips": self.source_ips,
            "mode": mode,
            "in_flight": in_flight,
            "rate_events_per_sec": self.rate,
            "workload": self.workload.json(),
            "warmup_s": self.warmup_s,
            "duration_s": secs,
            "sent_events": self.sent_in_window(),
            "acked_events": self.acked_in_window(),
            "acked_batches": self.window.1.acked_batches - self.window.0.acked_batches,
            "sent_events_per_sec": self.sent_in_window() as f64 / secs,
            "acked_events_per_sec": self.acked_in_window() as f64 / secs,
            "ack_latency": self.latency.json(),
            "total": {
                "sent_events": self.total.sent_events,
                "acked_events": self.total.acked_events,
                "errors": self.total.errors,
            },
            "errors": self.total.errors,
            "errors_by_kind": self.errors,
            "server": self.server.map(|u| {
                let mut j = u.json(self.acked_in_window());
                j["rss_before_connections_bytes"] = serde_json::json!(self.server_idle_rss);
                j
            }),
            "client": self.own.map(|u| u.json(self.acked_in_window())),
        })
    }

    /// The report for the terminal.
    pub(crate) fn text(&self) -> String {
        let secs = self.secs();
        let mut out = String::new();
        let pace = match self.pace {
            Pace::Closed { in_flight } => format!("closed loop, {in_flight} in flight per connection"),
            Pace::Open { max_in_flight, .. } => {
                format!("open loop at {} events/s (at most {max_in_flight} in flight)", self.rate.unwrap_or_default())
            }
        };
        let _ = writeln!(
            out,
            "load: {}/{} {} ({}) connections to {}, {pace}; {} events of {} B per batch, types {}",
            self.opened,
            self.connections,
            self.transport.name(),
            self.encoding.name(),
            self.url,
            self.workload.batch,
            self.workload.event_bytes,
            self.workload.types.join(",")
        );
        let _ = writeln!(
            out,
            "window {secs:.1} s after {:.1} s warm-up: sent {:.0} events/s, acked {:.0} events/s ({} events)",
            self.warmup_s,
            self.sent_in_window() as f64 / secs,
            self.acked_in_window() as f64 / secs,
            self.acked_in_window()
        );
        let _ = writeln!(out, "ack latency ({} batches): {}", self.latency.count(), self.latency.line());
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let list: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let _ = writeln!(out, "errors: {} ({})", self.total.errors, list.join(", "));
        }
        for (who, usage) in [("server", &self.server), ("load generator", &self.own)] {
            if let Some(u) = usage {
                let per_event = if self.acked_in_window() > 0 {
                    format!(", {:.2} µs CPU per acked event", u.cpu_seconds * 1e6 / self.acked_in_window() as f64)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{who}: CPU {:.1}% of a core{per_event}; RSS {:.1} MiB (peak {:.1} MiB)",
                    u.cpu_percent,
                    u.rss_bytes as f64 / 1048576.0,
                    u.peak_rss_bytes as f64 / 1048576.0
                );
            }
        }
        out
    }
}
