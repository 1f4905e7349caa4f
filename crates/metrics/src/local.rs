//! One thread's metrics: plain counters, gauges and HDR histograms, owned by that thread and
//! touched without locks or atomics. About once a second the owner hands what changed to the
//! [`Registry`](super::Registry) over a bounded lock-free queue ([`LocalMetrics::maybe_flush`]).
//!
//! Hot-path cost: one hash lookup per recorded value. Allocation happens only the first time a
//! tag value or tag combination is seen, and at flush time, off the per-event path.
//!
//! Tag values that come from clients (`conn_group`, `event_type`, topics) are interned with a
//! cap, `METRIC_TAG_VALUES_MAX`; past it they are recorded as `other`, so a client cannot make
//! the exported series grow without bound.

// foldhash, not SipHash: these maps are hit per event (see perf-results/2026-11-23-metrics-overhead.md).
// Seeded per process; the client-chosen keys are capped (METRIC_TAG_VALUES_MAX), so collisions
// cannot be driven without bound.
use foldhash::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use hdrhistogram::Histogram;

use super::catalog::{Kind, MetricId};

/// Most tags a metric has.
pub const MAX_TAGS: usize = 3;
/// How often owners hand their changes to the registry.
pub const FLUSH_PERIOD: Duration = Duration::from_secs(1);
/// Largest value a histogram holds, in microseconds (one week); larger ones are clamped.
const HISTOGRAM_MAX_US: u64 = 7 * 24 * 3600 * 1_000_000;
/// Value recorded for client-supplied tags past the cap.
pub const OVERFLOW_TAG: &str = "other";

/// An interned tag value, valid within one [`LocalMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u32);

impl Tag {
    /// An unused tag slot.
    pub const NONE: Tag = Tag(u32::MAX);
}

/// A metric and its tag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    id: MetricId,
    tags: [Tag; MAX_TAGS],
}

/// Tag values resolved to text, in the metric's tag order.
pub type TagValues = Arc<[Arc<str>]>;

/// A histogram's recorded values (microseconds) and their exact sum.
#[derive(Debug, Clone)]
pub struct HistogramData {
    /// The values.
    pub histogram: Histogram<u64>,
    /// Their sum in microseconds (the HDR histogram keeps only approximate values).
    pub sum_us: u64,
}

impl HistogramData {
    /// An empty histogram.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 2).expect("invariant: valid bounds");
        HistogramData { histogram, sum_us: 0 }
    }

    fn record(&mut self, micros: u64) {
        self.histogram.saturating_record(micros.clamp(1, HISTOGRAM_MAX_US));
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &HistogramData) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

impl Default for HistogramData {
    fn default() -> Self {
        Self::new()
    }
}

/// What one owner changed since its last flush.
#[derive(Debug, Default)]
pub struct Delta {
    /// Which owner sent it; its gauges replace that owner's previous ones.
    pub source: u32,
    /// Counter increases.
    pub counters: Vec<(MetricId, TagValues, u64)>,
    /// Current gauge values of this owner (all of them, not only changed ones).
    pub gauges: Vec<(MetricId, TagValues, f64)>,
    /// Values recorded since the last flush.
    pub histograms: Vec<(MetricId, TagValues, HistogramData)>,
}

/// Text for interned tags, with the cap on client-supplied values.
#[derive(Debug)]
struct Interner {
    ids: HashMap<Box<str>, Tag>,
    values: Vec<Arc<str>>,
    client_values: usize,
    client_cap: usize,
    overflow: Option<Tag>,
}

impl Interner {
    fn get_or_insert(&mut self, value: &str) -> Tag {
        if let Some(tag) = self.ids.get(value) {
            return *tag;
        }
        let tag = Tag(self.values.len() as u32);
        self.values.push(Arc::from(value));
        self.ids.insert(value.into(), tag);
        tag
    }
}

/// A thread's metrics. Not `Sync`: exactly one thread records into it.
#[derive(Debug)]
pub struct LocalMetrics {
    enabled: bool,
    source: u32,
    interner: Interner,
    counters: HashMap<Key, u64>,
    gauges: HashMap<Key, f64>,
    histograms: HashMap<Key, HistogramData>,
    sink: Option<Sender<Delta>>,
    last_flush: Instant,
}

impl LocalMetrics {
    /// Metrics that go nowhere and cost one branch per call (no exporter configured).
    pub fn disabled() -> Self {
        Self::build(false, 0, 0, None)
    }

    pub(super) fn new(source: u32, client_cap: usize, sink: Sender<Delta>) -> Self {
        Self::build(true, source, client_cap, Some(sink))
    }

    fn build(enabled: bool, source: u32, client_cap: usize, sink: Option<Sender<Delta>>) -> Self {
        LocalMetrics {
            enabled,
            source,
            interner: Interner {
                ids: HashMap::default(),
                values: Vec::new(),
                client_values: 0,
                client_cap,
                overflow: None,
            },
            counters: HashMap::default(),
            gauges: HashMap::default(),
            histograms: HashMap::default(),
            sink,
            last_flush: Instant::now(),
        }
    }

    /// Whether anything is recorded at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Interns a value this server chose (a status, a reason, a worker name): never capped.
    pub fn tag(&mut self, value: &str) -> Tag {
        if !self.enabled {
            return Tag::NONE;
        }
        self.interner.get_or_insert(value)
    }

    /// Interns a value a client chose (a group, an event type, a topic): past
    /// `METRIC_TAG_VALUES_MAX` distinct ones, [`OVERFLOW_TAG`].
    pub fn client_tag(&mut self, value: &str) -> Tag {
        if !self.enabled {
            return Tag::NONE;
        }
        let interner = &mut self.interner;
        if let Some(tag) = interner.ids.get(value) {
            return *tag;
        }
        if interner.client_values >= interner.client_cap {
            return match interner.overflow {
                Some(tag) => tag,
                None => {
                    let tag = interner.get_or_insert(OVERFLOW_TAG);
                    interner.overflow = Some(tag);
                    tag
                }
            };
        }
        interner.client_values += 1;
        interner.get_or_insert(value)
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(&mut self, id: MetricId, tags: [Tag; MAX_TAGS], n: u64) {
        if self.enabled {
            debug_assert_eq!(id.spec().kind, Kind::Counter, "{id:?}");
            *self.counters.entry(Key { id, tags }).or_insert(0) += n;
        }
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&mut self, id: MetricId, tags: [Tag; MAX_TAGS], value: f64) {
        if self.enabled {
            debug_assert_eq!(id.spec().kind, Kind::Gauge, "{id:?}");
            self.gauges.insert(Key { id, tags }, value);
        }
    }

    /// Records a duration into a histogram.
    #[inline]
    pub fn record(&mut self, id: MetricId, tags: [Tag; MAX_TAGS], value: Duration) {
        if self.enabled {
            debug_assert!(matches!(id.spec().kind, Kind::Histogram(_)), "{id:?}");
            let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
            self.histograms.entry(Key { id, tags }).or_default().record(micros);
        }
    }

    /// Hands the changes since the last flush to the registry if a flush period has passed.
    /// Never blocks: if the registry's queue is full the changes stay here for the next try.
    pub fn maybe_flush(&mut self, now: Instant) {
        if self.flush_due(now) {
            self.flush(now);
        }
    }

    /// Whether a flush period has passed since the last flush (for owners that sample gauges
    /// just before flushing).
    pub fn flush_due(&self, now: Instant) -> bool {
        self.enabled && now.duration_since(self.last_flush) >= FLUSH_PERIOD
    }

    /// Hands the changes to the registry now (at shutdown, or from a timer).
    pub fn flush(&mut self, now: Instant) {
        let Some(sink) = &self.sink else { return };
        self.last_flush = now;
        if sink.is_full() {
            return;
        }
        let delta = self.take_delta();
        // A disconnected registry (shutdown) reads nothing any more: the delta is dropped.
        if let Some(Err(TrySendError::Full(delta))) = self.sink.as_ref().map(|s| s.try_send(delta)) {
            self.put_back(delta);
        }
    }

    fn resolve(&self, key: &Key) -> TagValues {
        let n = key.id.spec().tags.len();
        key.tags[..n]
            .iter()
            .map(|t| self.interner.values.get(t.0 as usize).cloned().unwrap_or_else(|| Arc::from("")))
            .collect()
    }

    fn take_delta(&mut self) -> Delta {
        let counters = std::mem::take(&mut self.counters);
        let histograms = std::mem::take(&mut self.histograms);
        Delta {
            source: self.source,
            counters: counters.into_iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.id, self.resolve(&k), n)).collect(),
            gauges: self.gauges.iter().map(|(k, v)| (k.id, self.resolve(k), *v)).collect(),
            histograms: histograms.into_iter().map(|(k, h)| (k.id, self.resolve(&k), h)).collect(),
        }
    }

    /// Re-adds a delta that could not be sent (by tag text, since it was resolved).
    fn put_back(&mut self, delta: Delta) {
        for (id, values, n) in delta.counters {
            let key = self.key_for(id, &values);
            *self.counters.entry(key).or_insert(0) += n;
        }
        for (id, values, h) in delta.histograms {
            let key = self.key_for(id, &values);
            self.histograms.entry(key).or_default().merge(&h);
        }
    }

    fn key_for(&mut self, id: MetricId, values: &[Arc<str>]) -> Key {
        let mut tags = [Tag::NONE; MAX_TAGS];
        for (slot, value) in tags.iter_mut().zip(values) {
            *slot = self.interner.get_or_insert(value);
        }
        Key { id, tags }
    }
}

/// Builds a tag array from up to [`MAX_TAGS`] tags.
#[inline]
pub fn tags<const N: usize>(values: [Tag; N]) -> [Tag; MAX_TAGS] {
    let mut out = [Tag::NONE; MAX_TAGS];
    out[..N].copy_from_slice(&values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(cap: usize) -> (LocalMetrics, crossbeam_channel::Receiver<Delta>) {
        let (tx, rx) = crossbeam_channel::bounded(4);
        (LocalMetrics::new(7, cap, tx), rx)
    }

    #[test]
    fn a_flush_carries_what_changed_with_tag_text() {
        let (mut m, rx) = local(10);
        let group = m.client_tag("g1");
        let ty = m.client_tag("click");
        m.add(MetricId::EventsRx, tags([group, ty]), 3);
        m.add(MetricId::EventsRx, tags([group, ty]), 2);
        m.set(MetricId::ConnCount, tags([group]), 4.0);
        m.record(MetricId::EventRtt, tags([]), Duration::from_millis(7));
        m.flush(Instant::now());
        let delta = rx.try_recv().unwrap();
        assert_eq!(delta.source, 7);
        assert_eq!(delta.counters.len(), 1);
        let (id, values, n) = &delta.counters[0];
        assert_eq!((*id, n), (MetricId::EventsRx, &5));
        assert_eq!(values.iter().map(|v| &**v).collect::<Vec<_>>(), ["g1", "click"]);
        assert_eq!(delta.gauges[0].2, 4.0);
        let (_, values, h) = &delta.histograms[0];
        assert!(values.is_empty());
        assert_eq!((h.histogram.len(), h.sum_us), (1, 7000));

        // Counters and histograms start again from zero; gauges are sent again.
        m.flush(Instant::now());
        let delta = rx.try_recv().unwrap();
        assert!(delta.counters.is_empty() && delta.histograms.is_empty());
        assert_eq!(delta.gauges.len(), 1);
    }

    #[test]
    fn client_tags_past_the_cap_become_other() {
        let (mut m, _rx) = local(2);
        let a = m.client_tag("a");
        let b = m.client_tag("b");
        let c = m.client_tag("c");
        let d = m.client_tag("d");
        assert_ne!(a, b);
        assert_eq!(c, d);
        assert_eq!(&*m.interner.values[c.0 as usize], OVERFLOW_TAG);
        // Known values keep their own tag; server-chosen ones are never capped.
        assert_eq!(m.client_tag("a"), a);
        let s = m.tag("success");
        assert_ne!(s, c);
    }

    #[test]
    fn a_full_queue_keeps_the_changes_for_later() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut m = LocalMetrics::new(1, 10, tx);
        let g = m.client_tag("g");
        m.add(MetricId::ConnSuccess, tags([g]), 1);
        m.flush(Instant::now());
        m.add(MetricId::ConnSuccess, tags([g]), 1);
        m.flush(Instant::now()); // queue full: kept
        m.add(MetricId::ConnSuccess, tags([g]), 1);
        assert_eq!(rx.try_recv().unwrap().counters[0].2, 1);
        m.flush(Instant::now());
        assert_eq!(rx.try_recv().unwrap().counters[0].2, 2);
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let mut m = LocalMetrics::disabled();
        let g = m.client_tag("g");
        m.add(MetricId::ConnSuccess, tags([g]), 1);
        assert!(m.counters.is_empty());
        m.flush(Instant::now());
    }
}
