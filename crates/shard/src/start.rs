//! Starting the shards: one pinned glommio executor per CPU of `SERVER_CPU_LIST`, started one
//! after the other, each reporting when it accepts; and the handles `main` waits on.
//!
//! Runs on: the main thread.

use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::sync::{mpsc, Arc};

use glommio::{LocalExecutorBuilder, Placement};
use thiserror::Error;

use raccoon_core::handoff::{Handoff, ShardId, ShardMsg};
use raccoon_core::health::Health;
use raccoon_metrics::MetricsFactory;

use crate::registry::Registry;
use crate::run::ReadyGuard;
use crate::shard::{Shard, ShardSummary};
use crate::{ListenerTls, ShardConfig};

/// Why a shard could not start.
#[derive(Debug, Error)]
pub enum ShardError {
    /// glommio refused to create the executor (for example too little locked memory).
    #[error("shard {shard} on CPU {cpu} failed to start: {error}")]
    Start {
        /// The shard.
        shard: ShardId,
        /// Its CPU.
        cpu: usize,
        /// glommio's explanation.
        error: String,
    },
}

/// A running shard thread.
pub struct ShardHandle {
    id: ShardId,
    join: glommio::ExecutorJoinHandle<ShardSummary>,
}

impl ShardHandle {
    /// Waits for the shard to stop. Called on the main thread, never on a shard.
    #[allow(clippy::disallowed_methods)]
    pub fn join(self) -> Result<ShardSummary, ShardError> {
        self.join.join().map_err(|e| ShardError::Start { shard: self.id, cpu: usize::MAX, error: e.to_string() })
    }
}

/// Starts one shard per CPU of `config.server.shard_cpus`, each with its own listener and inbox;
/// `tls` is each port's TLS, if any.
/// Returns once every shard is accepting, or with the first shard's startup error.
///
/// Shards start one after the other: each takes a few milliseconds, and it lets the io_uring
/// descriptors that appear while a shard starts be attributed to it (see
/// [`raccoon_metrics::io_uring`]).
// Runs on the main thread: it waits for each shard to report that it started.
#[allow(clippy::disallowed_methods)]
pub fn start(
    config: &ShardConfig,
    tls: &ListenerTls,
    listeners: Vec<(StdTcpListener, StdTcpListener)>,
    inboxes: Vec<async_channel::Receiver<ShardMsg>>,
    handoff: &Handoff,
    metrics: &MetricsFactory,
    health: &Arc<Health>,
) -> Result<Vec<ShardHandle>, ShardError> {
    let mut handles = Vec::with_capacity(listeners.len());
    let registry = Arc::new(Registry::new(config.server.max_conn));
    // The io_uring descriptors seen so far; those new after a shard started are its rings.
    let mut known_rings = if metrics.enabled() { raccoon_metrics::io_uring::ring_fds() } else { Vec::new() };
    let cpus = config.server.shard_cpus.iter().copied();
    for (index, ((listener, inbox), cpu)) in listeners.into_iter().zip(inboxes).zip(cpus).enumerate() {
        let id = ShardId(u16::try_from(index).expect("invariant: config limits shards to 4096"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let config = config.clone();
        let handoff = handoff.clone();
        let (factory, health, registry) = (metrics.clone(), Arc::clone(health), Arc::clone(&registry));
        let tls = tls.clone();
        let ready = ReadyGuard::new(id, ready_tx);
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("raccoon-shard-{index}"))
            .io_memory(config.server.io_memory_bytes);
        if let Some(spin) = config.server.spin_before_park {
            builder = builder.spin_before_park(spin);
        }
        let join = builder
            .spawn(move || async move {
                let shard = Rc::new(Shard::new(id, config, handoff, factory.local(), health, registry, tls));
                crate::run::run(shard, listener, inbox, ready).await
            })
            .map_err(|e| ShardError::Start { shard: id, cpu, error: e.to_string() })?;
        // `false`, or no answer at all: the executor gave up before running the shard, so its
        // thread is finishing.
        if ready_rx.recv() != Ok((id, true)) {
            let error = match join.join() {
                Err(e) => e.to_string(),
                Ok(_) => "stopped during startup".to_owned(),
            };
            return Err(ShardError::Start { shard: id, cpu, error });
        }
        if metrics.enabled() {
            let now = raccoon_metrics::io_uring::ring_fds();
            let rings: Vec<_> = now.iter().copied().filter(|fd| !known_rings.contains(fd)).collect();
            tracing::debug!(shard = %id, ?rings, "io_uring rings");
            metrics.watch_io_rings(&id.to_string(), &rings);
            known_rings = now;
        }
        handles.push(ShardHandle { id, join });
    }
    Ok(handles)
}
