//! Shards: one glommio executor per configured CPU, pinned to it. Each has its own
//! `SO_REUSEPORT` listeners on the HTTP and gRPC ports (the kernel spreads connections across
//! them), owns every connection it accepts, decodes batches in place and hands them to the
//! publisher queues. Delivery outcomes come back through the shard's inbox and are routed to the
//! WebSocket session or the waiting REST or gRPC request that sent the batch.
//!
//! On a shard: [`conn`] (HTTP/1 on hyper: health, REST, upgrades), [`rest`], [`session`]
//! (WebSocket), [`grpc`] (HTTP/2 on hyper), [`submit`] (the common path to the publishers).
//!
//! A shard never blocks: no blocking locks, sleeps or blocking I/O; full queues turn into
//! "stop reading this connection" (see `session`). The one state shards share is the
//! `registry` of open connections and their identifiers, touched at connect and close only.

mod conn;
pub mod dedup;
mod grpc;
mod keepalive;
mod outbound;
mod registry;
mod rest;
mod session;
mod settings;
mod submit;
mod writer;
mod ws_socket;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::TcpListener as StdTcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{LocalExecutorBuilder, Placement};
use thiserror::Error;

use raccoon_core::handoff::{Ack, ConnId, Handoff, ShardId, ShardMsg};
use raccoon_core::health::Health;
use raccoon_metrics::local::FLUSH_PERIOD;
use raccoon_metrics::{tags, LocalMetrics, MetricId, MetricsFactory, Tag};
use raccoon_protocol::identity::Identity;
use raccoon_rt::{accept_loop, Deadlines, LocalExec};
use registry::{Admission, Registry, RegistryError};
use session::{Outbound, OutboundTx};

pub use settings::{AckMode, ServerConfig, ShardConfig};

/// At shutdown, how long HTTP and gRPC connections get to close by themselves once no
/// WebSocket and no waiting request is left.
const HTTP_CLOSE_GRACE: Duration = Duration::from_millis(500);

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

/// What a shard hands back when it stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardSummary {
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Batches decoded and queued for Kafka.
    pub batches: u64,
    /// Events in those batches.
    pub events: u64,
    /// Frames refused with `CODE_BAD_REQUEST`.
    pub bad_frames: u64,
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

/// Per-shard state shared by its tasks.
///
/// Lives on: owning shard (!Send).
pub(crate) struct Shard {
    pub(crate) id: ShardId,
    pub(crate) config: ShardConfig,
    pub(crate) handoff: Handoff,
    /// The one buffer every WebSocket of the shard reads its socket into
    /// (`SERVER_WEBSOCKET_READ_BUFFER_SIZE`); borrowed for one read at a time.
    pub(crate) ws_read_buffer: RefCell<Box<[u8]>>,
    conns: RefCell<HashMap<ConnId, ConnEntry>>,
    next_conn: Cell<u64>,
    pub(crate) stats: RefCell<ShardSummary>,
    /// This shard's metrics; borrowed only for the duration of one recording, never across an
    /// `.await`.
    pub(crate) metrics: RefCell<LocalMetrics>,
    /// Tag values the shard records with, interned once.
    pub(crate) tags: ShardTags,
    pub(crate) health: Arc<Health>,
    /// hyper's HTTP/1 server settings for the HTTP port.
    pub(crate) http1: hyper::server::conn::http1::Builder,
    /// hyper's HTTP/2 server settings for the gRPC port.
    pub(crate) http2: hyper::server::conn::http2::Builder<LocalExec>,
    /// `SERVER_CORS_*`, when enabled.
    pub(crate) cors: Option<raccoon_protocol::cors::CorsPolicy>,
    /// Set when shutdown begins: REST and gRPC refuse new batches, HTTP responses close.
    pub(crate) draining: Cell<bool>,
    /// Notified when shutdown begins: HTTP and gRPC connections finish and close.
    pub(crate) closing: event_listener::Event,
    /// Notified when shutdown stops waiting for HTTP and gRPC connections: they are dropped.
    pub(crate) aborting: event_listener::Event,
    /// Set with `aborting`, for connections that start to listen after it fired.
    pub(crate) aborted: Cell<bool>,
    /// HTTP and gRPC connections open on this shard; shutdown waits for them to close.
    http_open: Cell<usize>,
    /// REST and gRPC requests waiting for their batch's delivery outcome.
    requests: RefCell<HashMap<ConnId, LocalSender<Ack>>>,
    /// Open connections and identifiers of all shards.
    registry: Arc<Registry>,
    /// Groups that had a connection on this shard (their gauge stays, at 0 when empty).
    groups_seen: RefCell<HashSet<Tag>>,
    last_flush: Cell<Instant>,
}

/// Interned tag values a shard uses on its hot path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardTags {
    pub(crate) success: Tag,
    pub(crate) failed: Tag,
    pub(crate) na: Tag,
    pub(crate) serde: Tag,
    pub(crate) unknown_content_type: Tag,
    pub(crate) close_error: Tag,
    pub(crate) read_error: Tag,
    pub(crate) duplicate: Tag,
    pub(crate) shard: Tag,
}

/// What the shard's router needs to reach a connection.
struct ConnEntry {
    outbound: OutboundTx,
    reader: Option<glommio::task::JoinHandle<()>>,
    group: Tag,
    opened: Instant,
    /// The connection's slot and identifier in the registry.
    admission: Rc<Admission>,
}

impl Shard {
    fn new(
        id: ShardId,
        config: ShardConfig,
        handoff: Handoff,
        mut metrics: LocalMetrics,
        health: Arc<Health>,
        registry: Arc<Registry>,
    ) -> Self {
        let tags = ShardTags {
            success: metrics.tag("success"),
            failed: metrics.tag("failed"),
            na: metrics.tag("NA"),
            serde: metrics.tag("serde"),
            unknown_content_type: metrics.tag("unknowncontentype"),
            close_error: metrics.tag("closeerror"),
            read_error: metrics.tag("readerr"),
            duplicate: metrics.tag("duplicate"),
            shard: metrics.tag(&id.to_string()),
        };
        let server = &config.server;
        let ws_read_buffer = RefCell::new(vec![0; server.read_buffer_bytes].into_boxed_slice());
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .keep_alive(true)
            .max_headers(server.http_max_headers)
            .max_header_size(server.http_max_header_bytes)
            .max_buf_size(server.http_max_header_bytes.max(8192))
            // Kept by the IO adapter instead: hyper's needs a Send timer (see raccoon_rt).
            .header_read_timeout(None);
        let cors = server.cors.as_ref().map(raccoon_protocol::cors::CorsPolicy::new);
        let mut http2 = hyper::server::conn::http2::Builder::new(LocalExec);
        http2
            .max_header_list_size(u32::try_from(server.http_max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(server.grpc_max_concurrent_streams);
        Shard {
            id,
            config,
            handoff,
            ws_read_buffer,
            http1,
            http2,
            cors,
            draining: Cell::new(false),
            closing: event_listener::Event::new(),
            aborting: event_listener::Event::new(),
            aborted: Cell::new(false),
            http_open: Cell::new(0),
            requests: RefCell::new(HashMap::new()),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            stats: RefCell::new(ShardSummary::default()),
            metrics: RefCell::new(metrics),
            tags,
            health,
            registry,
            groups_seen: RefCell::new(HashSet::new()),
            last_flush: Cell::new(Instant::now()),
        }
    }

    /// Admits a WebSocket connection of `identity` across all shards (`SERVER_WEBSOCKET_MAX_CONN`
    /// first, then one live connection per identifier) and registers it here. Returns its id,
    /// its group's metric tag and its admission, which the session releases the moment the
    /// connection ends.
    pub(crate) fn register(
        &self,
        outbound: OutboundTx,
        identity: &Identity,
    ) -> Result<(ConnId, Tag, Rc<Admission>), RegistryError> {
        let mut metrics = self.metrics.borrow_mut();
        let group = metrics.client_tag(&identity.group);
        let admitted = if identity.anonymous {
            self.registry.admit_anonymous(&identity.user, &identity.group)
        } else {
            self.registry.admit(&identity.user, &identity.group)
        };
        let admission = match admitted {
            Ok(admission) => Rc::new(admission),
            Err(refused) => {
                // Interned once per reason (two values), then a lookup.
                let reason = metrics.tag(refused.as_label());
                metrics.add(MetricId::ConnFailure, tags([group, reason]), 1);
                return Err(refused);
            }
        };
        metrics.add(MetricId::ConnSuccess, tags([group]), 1);
        let id = self.next_conn_id();
        let entry =
            ConnEntry { outbound, reader: None, group, opened: Instant::now(), admission: Rc::clone(&admission) };
        self.conns.borrow_mut().insert(id, entry);
        self.stats.borrow_mut().connections += 1;
        Ok((id, group, admission))
    }

    pub(crate) fn set_reader(&self, conn: ConnId, reader: glommio::task::JoinHandle<()>) {
        if let Some(entry) = self.conns.borrow_mut().get_mut(&conn) {
            entry.reader = Some(reader);
        }
    }

    /// Forgets a connection, releases its identifier (if the session did not already) and
    /// stops its reader if it is still running.
    pub(crate) fn unregister(&self, conn: ConnId) {
        let Some(entry) = self.conns.borrow_mut().remove(&conn) else { return };
        entry.admission.release();
        self.metrics.borrow_mut().record(MetricId::SessionDuration, tags([entry.group]), entry.opened.elapsed());
        if let Some(reader) = entry.reader {
            reader.cancel();
        }
    }

    /// Refreshes the shard's gauges and executor counters and hands its metrics over.
    /// `inbox` is the number of messages waiting in the shard's inbox; `timer_lag` how late the
    /// timer that called this fired.
    fn flush_metrics(&self, inbox: usize, timer_lag: Duration) {
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

    fn route(&self, msg: ShardMsg) -> bool {
        match msg {
            ShardMsg::Ack(ack) => {
                if let Some(entry) = self.conns.borrow().get(&ack.token.conn) {
                    // Unbounded, but bounded by construction: at most
                    // SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES replies per connection.
                    entry.outbound.push(Outbound::Delivery(ack));
                } else if let Some(request) = self.requests.borrow_mut().remove(&ack.token.conn) {
                    // Capacity 1, and one ack per request: never full.
                    let _ = request.try_send(ack);
                } else {
                    tracing::debug!(shard = %self.id, conn = %ack.token.conn, "ack for a closed connection");
                }
                true
            }
            ShardMsg::Shutdown => false,
        }
    }

    /// A name for a WebSocket that names no id, unique among the connections of this process
    /// (`SERVER_WEBSOCKET_CONN_ID_ANONYMOUS`).
    pub(crate) fn anonymous_name(&self) -> String {
        self.registry.anonymous_name()
    }

    /// A fresh connection id (also given to each REST and gRPC request).
    pub(crate) fn next_conn_id(&self) -> ConnId {
        let id = ConnId(self.next_conn.get());
        self.next_conn.set(id.0 + 1);
        id
    }

    /// Registers a request that waits for its batch's outcome under a fresh connection id.
    pub(crate) fn await_ack(self: &Rc<Self>) -> PendingAck {
        let conn = self.next_conn_id();
        let (tx, rx) = local_channel::new_bounded(1);
        self.requests.borrow_mut().insert(conn, tx);
        PendingAck { shard: Rc::clone(self), conn, rx }
    }

    /// Drops every HTTP and gRPC connection still open (shutdown, once nothing else is waited for).
    fn abort_http(&self) {
        if !self.aborted.replace(true) {
            self.aborting.notify(usize::MAX);
        }
    }

    /// Counts an HTTP or gRPC connection as open until the returned guard is dropped.
    pub(crate) fn http_opened(self: &Rc<Self>) -> HttpOpen {
        self.http_open.set(self.http_open.get() + 1);
        HttpOpen(Rc::clone(self))
    }

    /// Drives one hyper connection (`poll`) until it ends. Once shutdown begins it is asked to
    /// finish (`graceful`: no more keep-alive, or a GOAWAY); `None` when shutdown stopped waiting
    /// for it and it is dropped (see [`run`]). Shared by the HTTP/1 and HTTP/2 connections.
    pub(crate) async fn drive_connection<C: Unpin, T>(
        &self,
        connection: &mut C,
        graceful: impl Fn(Pin<&mut C>),
        mut poll: impl FnMut(&mut C, &mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        let mut closing = Some(self.closing.listen());
        let mut aborting = Some(self.aborting.listen());
        futures_lite::future::poll_fn(|cx| {
            if aborting.as_mut().is_some_and(|a| Pin::new(a).poll(cx).is_ready() || self.aborted.get()) {
                return Poll::Ready(None);
            }
            if closing.as_mut().is_some_and(|c| Pin::new(c).poll(cx).is_ready() || self.draining.get()) {
                closing = None;
                graceful(Pin::new(connection));
            }
            poll(connection, cx).map(Some)
        })
        .await
    }

    /// Read deadlines of HTTP/1 connections on the HTTP port.
    pub(crate) fn http_deadlines(&self) -> Deadlines {
        let server = &self.config.server;
        Deadlines { idle: server.http_idle_timeout, head: Some(server.http_header_timeout) }
    }

    /// Read deadlines of HTTP/2 connections on the gRPC port.
    pub(crate) fn grpc_deadlines(&self) -> Deadlines {
        Deadlines { idle: self.config.server.http_idle_timeout, head: None }
    }

    /// Tells every connection to finish its in-flight batches and close with 1001.
    fn go_away(&self) {
        self.draining.set(true);
        self.closing.notify(usize::MAX);
        for entry in self.conns.borrow_mut().values_mut() {
            entry.outbound.push(Outbound::GoingAway);
            if let Some(reader) = entry.reader.take() {
                reader.cancel();
            }
        }
    }
}

/// An open HTTP or gRPC connection (see [`Shard::http_opened`]).
///
/// Lives on: owning shard (!Send).
pub(crate) struct HttpOpen(Rc<Shard>);

impl Drop for HttpOpen {
    fn drop(&mut self) {
        self.0.http_open.set(self.0.http_open.get().saturating_sub(1));
    }
}

/// A REST or gRPC request waiting for its batch's outcome. Dropping it (the client left)
/// forgets the request; its outcome is then dropped when it arrives.
///
/// Lives on: owning shard (!Send).
pub(crate) struct PendingAck {
    shard: Rc<Shard>,
    conn: ConnId,
    rx: LocalReceiver<Ack>,
}

impl PendingAck {
    /// The connection id the batch carries in its token.
    pub(crate) fn conn(&self) -> ConnId {
        self.conn
    }

    /// The outcome; `None` only if the shard stopped routing.
    pub(crate) async fn outcome(&self) -> Option<Ack> {
        self.rx.recv().await
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.shard.requests.borrow_mut().remove(&self.conn);
    }
}

/// Reports a shard's startup to `start`: `true` once it accepts, `false` if its executor never
/// ran the shard (the guard is then dropped unsent, for example when glommio cannot lock memory).
struct ReadyGuard {
    id: ShardId,
    tx: Option<mpsc::Sender<(ShardId, bool)>>,
}

impl ReadyGuard {
    fn ready(mut self) {
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

/// Starts one shard per CPU of `config.server.shard_cpus`, each with its own listener and inbox.
/// Returns once every shard is accepting, or with the first shard's startup error.
///
/// Shards start one after the other: each takes a few milliseconds, and it lets the io_uring
/// descriptors that appear while a shard starts be attributed to it (see
/// [`raccoon_metrics::io_uring`]).
// Runs on the main thread: it waits for each shard to report that it started.
#[allow(clippy::disallowed_methods)]
pub fn start(
    config: &ShardConfig,
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
        let ready = ReadyGuard { id, tx: Some(ready_tx) };
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("raccoon-shard-{index}"))
            .io_memory(config.server.io_memory_bytes);
        if let Some(spin) = config.server.spin_before_park {
            builder = builder.spin_before_park(spin);
        }
        let join = builder
            .spawn(move || async move {
                let shard = Rc::new(Shard::new(id, config, handoff, factory.local(), health, registry));
                run(shard, listener, inbox, ready).await
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

async fn run(
    shard: Rc<Shard>,
    (http_listener, grpc_listener): (StdTcpListener, StdTcpListener),
    inbox: async_channel::Receiver<ShardMsg>,
    ready: ReadyGuard,
) -> ShardSummary {
    let accepting = {
        let shard = Rc::clone(&shard);
        glommio::spawn_local(accept_loop(raccoon_rt::adopt(http_listener), move |stream| {
            glommio::spawn_local(conn::serve(Rc::clone(&shard), stream)).detach();
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
    tracing::debug!(shard = %shard.id, "shard accepting");

    while let Ok(msg) = inbox.recv().await {
        if !shard.route(msg) {
            break;
        }
    }

    // Shutdown: stop accepting, let connections finish their in-flight batches, then stop.
    accepting.cancel();
    accepting_grpc.cancel();
    shard.go_away();
    let server = &shard.config.server;
    let deadline = Instant::now() + server.drain_timeout + server.write_wait + Duration::from_secs(1);
    // An open socket also keeps the executor from ending (its pending read), so HTTP and gRPC
    // connections, told to close by `go_away`, are waited for too; once only they are left, for
    // at most HTTP_CLOSE_GRACE (an idle HTTP/2 client may never answer the GOAWAY's ping).
    let busy = || !shard.conns.borrow().is_empty() || !shard.requests.borrow().is_empty() || shard.http_open.get() > 0;
    let mut only_http_since: Option<Instant> = None;
    while busy() && Instant::now() < deadline {
        // Keep routing acks while connections drain; wake up regularly to notice they are gone.
        let next = glommio::timer::timeout(Duration::from_millis(20), async { Ok(inbox.recv().await.ok()) });
        if let Ok(Some(msg)) = next.await {
            shard.route(msg);
        }
        if shard.conns.borrow().is_empty() && shard.requests.borrow().is_empty() {
            if only_http_since.get_or_insert_with(Instant::now).elapsed() >= HTTP_CLOSE_GRACE {
                shard.abort_http();
            }
        } else {
            only_http_since = None;
        }
    }
    shard.abort_http();
    // Dropped connections end at their next poll; give them that.
    for _ in 0..10 {
        if shard.http_open.get() == 0 {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let (left, waiting, http) = (shard.conns.borrow().len(), shard.requests.borrow().len(), shard.http_open.get());
    if left > 0 || waiting > 0 || http > 0 {
        tracing::warn!(
            shard = %shard.id,
            connections = left,
            requests = waiting,
            http_connections = http,
            "still open at the drain deadline"
        );
    }
    flusher.cancel();
    shard.flush_metrics(inbox.len(), Duration::ZERO);
    let summary = *shard.stats.borrow();
    tracing::info!(
        shard = %shard.id,
        connections = summary.connections,
        batches = summary.batches,
        events = summary.events,
        bad_frames = summary.bad_frames,
        "shard stopped"
    );
    summary
}
