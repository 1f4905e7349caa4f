//! A shard's main task: its accept loops and metrics flush, then the inbox loop that routes
//! acks until shutdown, then the drain.
//!
//! Lives on: owning shard (!Send).

use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raccoon_core::handoff::{ShardId, ShardMsg};
use raccoon_metrics::local::FLUSH_PERIOD;
use raccoon_rt::accept_loop;

use crate::shard::{Shard, ShardSummary};
use crate::{grpc, http1};

/// Reports a shard's startup to `start`: `true` once it accepts, `false` if its executor never
/// ran the shard (the guard is then dropped unsent, for example when glommio cannot lock memory).
pub(crate) struct ReadyGuard {
    id: ShardId,
    tx: Option<mpsc::Sender<(ShardId, bool)>>,
}

impl ReadyGuard {
    /// A guard that reports shard `id`'s startup on `tx`.
    pub(crate) fn new(id: ShardId, tx: mpsc::Sender<(ShardId, bool)>) -> Self {
        ReadyGuard { id, tx: Some(tx) }
    }

    pub(crate) fn ready(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.id, true));
        }
    }
}

impl Drop for ReadyGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.id, false));
        }
    }
}

/// Runs shard `shard` on its two listeners until shutdown; returns what it did.
pub(crate) async fn run(
    shard: Rc<Shard>,
    (http_listener, grpc_listener): (StdTcpListener, StdTcpListener),
    inbox: async_channel::Receiver<ShardMsg>,
    ready: ReadyGuard,
) -> ShardSummary {
    let accepting = {
        let shard = Rc::clone(&shard);
        glommio::spawn_local(accept_loop(raccoon_rt::adopt(http_listener), move |stream| {
            glommio::spawn_local(http1::serve(Rc::clone(&shard), stream)).detach();
        }))
        .detach()
    };
    let accepting_grpc = {
        let shard = Rc::clone(&shard);
        glommio::spawn_local(accept_loop(raccoon_rt::adopt(grpc_listener), move |stream| {
            glommio::spawn_local(grpc::serve(Rc::clone(&shard), stream)).detach();
        }))
        .detach()
    };
    let flusher = {
        let (shard, inbox) = (Rc::clone(&shard), inbox.clone());
        glommio::spawn_local(async move {
            loop {
                let due = Instant::now() + FLUSH_PERIOD;
                glommio::timer::sleep(FLUSH_PERIOD).await;
                shard.flush_metrics(inbox.len(), Instant::now().saturating_duration_since(due));
            }
        })
        .detach()
    };
    ready.ready();
    tracing::debug!(shard = %shard.id(), "shard accepting");

    while let Ok(msg) = inbox.recv().await {
        if !shard.route(msg) {
            break;
        }
    }

    // Shutdown: stop accepting, let connections finish their in-flight batches, then stop.
    accepting.cancel();
    accepting_grpc.cancel();
    shard.drain(&inbox).await;
    flusher.cancel();
    shard.flush_metrics(inbox.len(), Duration::ZERO);
    let summary = *shard.stats().borrow();
    tracing::info!(
        shard = %shard.id(),
        connections = summary.connections,
        batches = summary.batches,
        events = summary.events,
        bad_frames = summary.bad_frames,
        "shard stopped"
    );
    summary
}
