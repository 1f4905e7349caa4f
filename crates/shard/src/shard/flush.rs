//! The shard's metrics flush: gauges and executor counters refreshed, then everything recorded
//! since the last flush handed to the registry.
//!
//! Lives on: owning shard (!Send).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use raccoon_metrics::{tags, MetricId, Tag};

use super::Shard;

impl Shard {
    /// Refreshes the shard's gauges and executor counters and hands its metrics over.
    /// `inbox` is the number of messages waiting in the shard's inbox; `timer_lag` how late the
    /// timer that called this fired.
    pub(crate) fn flush_metrics(&self, inbox: usize, timer_lag: Duration) {
        let mut metrics = self.metrics.borrow_mut();
        if !metrics.enabled() {
            return;
        }
        // Every group seen keeps a series, at 0 once its connections are gone.
        let mut per_group: HashMap<Tag, u64> = self.groups_seen.borrow().iter().map(|g| (*g, 0)).collect();
        for entry in self.conns.borrow().values() {
            *per_group.entry(entry.group).or_insert(0) += 1;
        }
        for (group, n) in &per_group {
            metrics.set(MetricId::ConnCount, tags([*group]), *n as f64);
        }
        self.groups_seen.borrow_mut().extend(per_group.keys().copied());
        // glommio hands these out as the change since the previous call.
        let stats = glommio::executor().executor_stats();
        let shard = tags([self.tags.shard]);
        metrics.add(MetricId::ShardTasks, shard, stats.tasks_executed());
        metrics.add(MetricId::ShardSchedulerRuns, shard, stats.scheduler_runs());
        metrics.set(MetricId::ShardInbox, shard, inbox as f64);
        metrics.set(MetricId::ShardTimerLag, shard, timer_lag.as_secs_f64() * 1000.0);
        let now = Instant::now();
        let wall = now.duration_since(self.last_flush.replace(now)).as_secs_f64();
        if wall > 0.0 {
            metrics.set(MetricId::ShardBusy, shard, (stats.executor_runtime().as_secs_f64() / wall).min(1.0));
        }
        metrics.flush(now);
    }
}
