//! The merged view: every thread's [`Delta`]s summed into cumulative values, read by the
//! exporters. Only exporter threads take its lock; recording threads only ever `try_send` into
//! its queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::catalog::MetricId;
use super::io_uring::WatchedRing;
use super::local::{Delta, HistogramData, LocalMetrics, TagValues};

/// Capacity of the queue from recording threads to the registry, in deltas. Each thread sends
/// about one a second, so this covers minutes without a scrape.
const QUEUE_CAPACITY: usize = 4096;

/// A histogram's cumulative values and its recent window (for percentiles).
#[derive(Debug, Default)]
pub struct HistogramState {
    /// Everything since startup.
    pub total: HistogramData,
    /// Values since the current window began.
    current: HistogramData,
    /// The last complete window.
    pub last_window: HistogramData,
}

/// Cumulative values, keyed by metric and tag values.
#[derive(Debug, Default)]
pub struct State {
    /// Counter totals.
    pub counters: BTreeMap<(MetricId, TagValues), u64>,
    /// The latest gauge values of each source.
    gauges: HashMap<(u32, MetricId, TagValues), f64>,
    /// Histograms.
    pub histograms: BTreeMap<(MetricId, TagValues), HistogramState>,
    window_start: Option<Instant>,
    /// The shards' io_uring rings, read at each refresh.
    pub(crate) rings: Vec<WatchedRing>,
}

impl State {
    fn merge(&mut self, delta: Delta) {
        for (id, tags, n) in delta.counters {
            *self.counters.entry((id, tags)).or_insert(0) += n;
        }
        for (id, tags, value) in delta.gauges {
            self.gauges.insert((delta.source, id, tags), value);
        }
        for (id, tags, h) in delta.histograms {
            let state = self.histograms.entry((id, tags)).or_default();
            state.total.merge(&h);
            state.current.merge(&h);
        }
    }

    /// Gauges summed over their sources.
    pub fn gauges(&self) -> BTreeMap<(MetricId, TagValues), f64> {
        let mut out = BTreeMap::new();
        for ((_, id, tags), value) in &self.gauges {
            *out.entry((*id, tags.clone())).or_insert(0.0) += value;
        }
        out
    }

    /// Sets a gauge this registry computes itself (process figures, percentiles).
    pub fn set_own_gauge(&mut self, id: MetricId, tags: TagValues, value: f64) {
        self.gauges.insert((u32::MAX, id, tags), value);
    }

    /// Sets a counter this registry reads itself (process CPU time).
    pub fn set_own_counter(&mut self, id: MetricId, tags: TagValues, value: u64) {
        self.counters.insert((id, tags), value);
    }

    /// Adds to a counter this registry reads itself (io_uring rings).
    pub fn add_own_counter(&mut self, id: MetricId, tags: TagValues, n: u64) {
        *self.counters.entry((id, tags)).or_insert(0) += n;
    }

    fn rotate_windows(&mut self, now: Instant, window: Duration) {
        let start = *self.window_start.get_or_insert(now);
        if now.duration_since(start) < window {
            return;
        }
        self.window_start = Some(now);
        for state in self.histograms.values_mut() {
            state.last_window = std::mem::take(&mut state.current);
        }
    }
}

/// Where recording threads send their changes and exporters read the sums.
///
/// Crosses threads (Send + Sync).
#[derive(Debug)]
pub struct Registry {
    tx: Sender<Delta>,
    rx: Receiver<Delta>,
    state: Mutex<State>,
    next_source: AtomicU32,
    tag_values_max: usize,
    window: Duration,
}

impl Registry {
    /// A registry whose percentile gauges cover `window`; each recording thread may use
    /// `tag_values_max` distinct client-supplied tag values.
    pub fn new(tag_values_max: usize, window: Duration) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        Registry { tx, rx, state: Mutex::new(State::default()), next_source: AtomicU32::new(0), tag_values_max, window }
    }

    /// A recorder for one thread.
    pub fn local(&self) -> LocalMetrics {
        let source = self.next_source.fetch_add(1, Ordering::Relaxed);
        LocalMetrics::new(source, self.tag_values_max, self.tx.clone())
    }

    /// Reads the io_uring rings `fds` of shard `shard` at every refresh from now on.
    pub fn watch_io_rings(&self, shard: &str, fds: &[std::os::fd::RawFd]) {
        let tags: TagValues = Arc::from(vec![Arc::<str>::from(shard)]);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.rings.extend(fds.iter().map(|fd| WatchedRing::new(tags.clone(), *fd)));
    }

    /// Merges every pending delta and returns the sums. Exporter threads only.
    pub fn collect(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the sums half-merged in a way that
        // matters more than losing metrics, so a poisoned lock is used as is.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for delta in self.rx.try_iter() {
            state.merge(delta);
        }
        state.rotate_windows(Instant::now(), self.window);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::tags;

    #[test]
    fn deltas_from_several_threads_add_up() {
        let registry = Registry::new(100, Duration::from_secs(10));
        let mut a = registry.local();
        let mut b = registry.local();
        for m in [&mut a, &mut b] {
            let g = m.client_tag("g");
            m.add(MetricId::ConnSuccess, tags([g]), 2);
            m.set(MetricId::ConnCount, tags([g]), 3.0);
            m.record(MetricId::EventRtt, tags([]), Duration::from_millis(4));
            m.flush(Instant::now());
        }
        let state = registry.collect();
        let (key, n) = state.counters.iter().next().unwrap();
        assert_eq!((key.0, &*key.1[0], *n), (MetricId::ConnSuccess, "g", 4));
        assert_eq!(state.gauges().values().copied().collect::<Vec<_>>(), [6.0]);
        let h = state.histograms.values().next().unwrap();
        assert_eq!((h.total.histogram.len(), h.total.sum_us), (2, 8000));
    }
}
