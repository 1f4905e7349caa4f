//! Figures the registry computes when it is read: the process's own (from `/proc/self`, in
//! place of Raccoon's Go runtime gauges), the shards' io_uring counters and latency
//! percentiles over the last window.

use std::sync::Arc;

use super::catalog::MetricId;
use super::local::TagValues;
use super::registry::State;

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on every Linux architecture).
const USER_HZ: f64 = 100.0;
/// Percentiles exported for the latency histograms.
const QUANTILES: [(f64, &str); 4] = [(50.0, "0.5"), (90.0, "0.9"), (99.0, "0.99"), (99.9, "0.999")];
/// Histograms whose percentiles are exported.
const WITH_QUANTILES: [MetricId; 2] = [MetricId::EventRtt, MetricId::DeliveryLatency];

/// Refreshes the process gauges and the percentile gauges in `state`.
pub fn refresh(state: &mut State) {
    let none: TagValues = Arc::from(Vec::new());
    if let Some(rss) = rss_bytes() {
        state.set_own_gauge(MetricId::ProcessRss, none.clone(), rss as f64);
    }
    if let Some(fds) = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count()) {
        state.set_own_gauge(MetricId::ProcessFds, none.clone(), fds as f64);
    }
    if let Some(secs) = cpu_seconds() {
        // Whole seconds: the counter type is integral; sub-second detail does not matter here.
        state.set_own_counter(MetricId::ProcessCpu, none, secs as u64);
    }
    let mut rings = std::mem::take(&mut state.rings);
    for ring in &mut rings {
        if let Some((submitted, completed)) = ring.advance() {
            state.add_own_counter(MetricId::IoUringSubmissions, ring.shard.clone(), submitted);
            state.add_own_counter(MetricId::IoUringCompletions, ring.shard.clone(), completed);
        }
    }
    state.rings = rings;
    let mut quantiles = Vec::new();
    for id in WITH_QUANTILES {
        let with_data =
            state.histograms.iter().filter(|((hid, _), h)| *hid == id && !h.last_window.histogram.is_empty());
        for ((hid, _), h) in with_data {
            for (q, label) in QUANTILES {
                let ms = h.last_window.histogram.value_at_percentile(q) as f64 / 1000.0;
                let tags: TagValues = Arc::from(vec![Arc::from(hid.spec().name), Arc::from(label)]);
                quantiles.push((tags, ms));
            }
        }
    }
    for (tags, ms) in quantiles {
        state.set_own_gauge(MetricId::LatencyQuantile, tags, ms);
    }
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes().unwrap() > 1 << 20);
        assert!(cpu_seconds().unwrap() >= 0.0);
    }
}
