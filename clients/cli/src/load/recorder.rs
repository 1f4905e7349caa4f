//! What every connection of a `load` run records into, and the once-a-second progress line.
//!
//! Lives on: shared (`Arc`) by the connection tasks, the progress task and the run's driver, on
//! any runtime thread. Counters are atomics; the two histograms sit behind one uncontended-ish
//! mutex, taken once per reply.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raccoon_client::Error;

use crate::latency::Latencies;

/// Counters of a run.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Events in batches handed to the transport.
    pub(crate) sent_events: AtomicU64,
    /// Events in batches answered with success.
    pub(crate) acked_events: AtomicU64,
    /// Batches answered with success.
    pub(crate) acked_batches: AtomicU64,
    /// Batches sent and not answered yet.
    pub(crate) in_flight: AtomicI64,
    /// Failures of any kind (failed batches, failed connections, batches left unanswered).
    pub(crate) errors: AtomicU64,
    /// Connections open.
    pub(crate) connected: AtomicU64,
    /// Latencies go into the run's histogram while set (the measured window).
    pub(crate) measuring: AtomicBool,
    latencies: Mutex<Histograms>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
struct Histograms {
    /// Since the last progress line.
    second: Latencies,
    /// Over the measured window.
    window: Latencies,
}

/// The counters at one moment, for rates over an interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) at: Instant,
    pub(crate) sent_events: u64,
    pub(crate) acked_events: u64,
    pub(crate) acked_batches: u64,
    pub(crate) errors: u64,
}

impl Recorder {
    /// A batch of `events` went out.
    pub(crate) fn sent(&self, events: usize) {
        self.sent_events.fetch_add(events as u64, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A batch of `events` was answered with success after `latency`.
    pub(crate) fn acked(&self, events: usize, latency: Duration) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.acked_events.fetch_add(events as u64, Relaxed);
        self.acked_batches.fetch_add(1, Relaxed);
        let measuring = self.measuring.load(Relaxed);
        let mut h = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        h.second.record(latency);
        if measuring {
            h.window.record(latency);
        }
    }

    /// A batch in flight failed with `error`.
    pub(crate) fn failed(&self, error: &Error) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.error(error_kind(error));
    }

    /// `batches` in flight were left unanswered (the connection ended or the run stopped).
    pub(crate) fn unanswered(&self, batches: usize, why: &str) {
        if batches > 0 {
            self.in_flight.fetch_sub(batches as i64, Relaxed);
            self.errors.fetch_add(batches as u64 - 1, Relaxed);
            self.count_kind(why, batches as u64 - 1);
            self.error(why.to_owned());
        }
    }

    /// A failure not tied to a batch in flight (e.g. a connection that could not open).
    pub(crate) fn error(&self, kind: String) {
        self.errors.fetch_add(1, Relaxed);
        self.count_kind(&kind, 1);
    }

    fn count_kind(&self, kind: &str, n: u64) {
        if n > 0 {
            *self.error_kinds.lock().unwrap_or_else(|e| e.into_inner()).entry(kind.to_owned()).or_default() += n;
        }
    }

    /// The counters now.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            at: Instant::now(),
            sent_events: self.sent_events.load(Relaxed),
            acked_events: self.acked_events.load(Relaxed),
            acked_batches: self.acked_batches.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// The last second's latencies, forgotten as they are returned.
    pub(crate) fn take_second(&self) -> Latencies {
        let mut h = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        let out = h.second.clone();
        h.second.clear();
        out
    }

    /// The measured window's latencies.
    pub(crate) fn window(&self) -> Latencies {
        self.latencies.lock().unwrap_or_else(|e| e.into_inner()).window.clone()
    }

    /// Failures by kind.
    pub(crate) fn error_kinds(&self) -> BTreeMap<String, u64> {
        self.error_kinds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A short name for what failed, the key of "errors by code": the reply's code name for a
/// server's error reply, else the kind of failure.
pub(crate) fn error_kind(error: &Error) -> String {
    match error {
        Error::Reply { response, .. } => response.code.as_str_name().to_owned(),
        Error::Rejected { code, .. } => format!("rejected {}", code.as_str_name()),
        Error::Timeout { .. } => "timeout".to_owned(),
        Error::Transport { .. } => "transport".to_owned(),
        Error::Connect { .. } => "connect".to_owned(),
        Error::Grpc { code, .. } => format!("grpc {code:?}"),
        Error::Http { status, .. } => format!("http {status}"),
        Error::Closed(_) => "closed".to_owned(),
        other => format!("other: {other}"),
    }
}

/// Prints one line a second on stderr until `stop` is set: rates over the last second, totals,
/// in flight and the last second's p50/p99.
pub(crate) async fn progress(recorder: Arc<Recorder>, started: Instant, warmup: Duration, stop: Arc<AtomicBool>) {
    let mut last = recorder.counts();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    while !stop.load(Relaxed) {
        tick.tick().await;
        let now = recorder.counts();
        let secs = now.at.duration_since(last.at).as_secs_f64().max(1e-9);
        let second = recorder.take_second();
        let elapsed = started.elapsed();
        let phase = if recorder.measuring.load(Relaxed) {
            "measure"
        } else if elapsed <= warmup + Duration::from_millis(100) {
            "warm-up"
        } else {
            "drain"
        };
        eprintln!(
            "[{:>4.0}s {phase}] sent {:>9.0} ev/s  acked {:>9.0} ev/s  errors {}  in flight {}  conns {}  p50 {:.2} ms  p99 {:.2} ms",
            elapsed.as_secs_f64(),
            (now.sent_events - last.sent_events) as f64 / secs,
            (now.acked_events - last.acked_events) as f64 / secs,
            now.errors,
            recorder.in_flight.load(Relaxed),
            recorder.connected.load(Relaxed),
            second.ms(0.5),
            second.ms(0.99),
        );
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_failures_are_counted_and_measured_only_in_the_window() {
        let r = Recorder::default();
        r.sent(20);
        r.acked(20, Duration::from_millis(2));
        r.measuring.store(true, Relaxed);
        r.sent(20);
        r.acked(20, Duration::from_millis(4));
        r.sent(20);
        r.failed(&Error::Timeout { addr: "x".into(), timeout: Duration::from_secs(1) });
        r.sent(20);
        r.sent(20);
        r.unanswered(2, "unanswered at stop");
        let c = r.counts();
        assert_eq!((c.sent_events, c.acked_events, c.acked_batches, c.errors), (100, 40, 2, 3));
        assert_eq!(r.in_flight.load(Relaxed), 0);
        assert_eq!(r.window().count(), 1);
        assert_eq!(r.take_second().count(), 2);
        assert_eq!(r.take_second().count(), 0);
        let kinds = r.error_kinds();
        assert_eq!(kinds["timeout"], 1);
        assert_eq!(kinds["unanswered at stop"], 2);
    }
}
