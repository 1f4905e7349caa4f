//! One shard's state ([`Shard`]), shared by its tasks, and what the shard does with it, one job
//! a file: the connection table and the ack router ([`table`]), shutdown ([`drain`]), the metrics
//! flush ([`flush`]) and hyper's server settings ([`builders`]). Starting shards is
//! [`crate::start()`]; a shard's main task is [`crate::run`].

mod builders;
mod drain;
mod flush;
mod table;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use glommio::channels::local_channel::LocalSender;

use raccoon_core::handoff::{Ack, Handoff, ShardId, SinkId};
use raccoon_core::health::Health;
use raccoon_metrics::{LocalMetrics, Tag};
use raccoon_protocol::cors::CorsPolicy;
use raccoon_rt::tls::{ServerTls, TlsScratch};
use raccoon_rt::LocalExec;

use crate::registry::Registry;
use crate::secure::Port;
use crate::{ListenerTls, ShardConfig};
use table::ConnEntry;

pub(crate) use table::AckSink;

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

/// Per-shard state shared by its tasks. Its fields are private to this module and its
/// children; the transports use the methods.
///
/// Lives on: owning shard (!Send).
pub(crate) struct Shard {
    id: ShardId,
    config: ShardConfig,
    handoff: Handoff,
    /// The one buffer every WebSocket of the shard reads its socket into
    /// (`SERVER_WEBSOCKET_READ_BUFFER_SIZE`); borrowed for one read at a time.
    ws_read_buffer: RefCell<Box<[u8]>>,
    /// The ports' TLS, and the buffers this shard's TLS connections encrypt and decrypt in
    /// (allocated only when a port has TLS).
    tls: ListenerTls,
    tls_scratch: Option<Rc<TlsScratch>>,
    conns: RefCell<HashMap<SinkId, ConnEntry>>,
    next_sink: Cell<u64>,
    stats: RefCell<ShardSummary>,
    /// This shard's metrics; borrowed only for the duration of one recording, never across an
    /// `.await`.
    metrics: RefCell<LocalMetrics>,
    /// Tag values the shard records with, interned once.
    tags: ShardTags,
    health: Arc<Health>,
    /// hyper's HTTP/1 server settings for the HTTP port.
    http1: hyper::server::conn::http1::Builder,
    /// hyper's HTTP/2 server settings for the gRPC port.
    http2: hyper::server::conn::http2::Builder<LocalExec>,
    /// `SERVER_CORS_*`, when enabled.
    cors: Option<CorsPolicy>,
    /// Set when shutdown begins: REST and gRPC refuse new batches, HTTP responses close.
    draining: Cell<bool>,
    /// Notified when shutdown begins: HTTP and gRPC connections finish and close.
    closing: event_listener::Event,
    /// Notified when shutdown stops waiting for HTTP and gRPC connections: they are dropped.
    aborting: event_listener::Event,
    /// Set with `aborting`, for connections that start to listen after it fired.
    aborted: Cell<bool>,
    /// HTTP and gRPC connections open on this shard; shutdown waits for them to close.
    http_open: Cell<usize>,
    /// REST and gRPC requests waiting for their batch's delivery outcome.
    requests: RefCell<HashMap<SinkId, LocalSender<Ack>>>,
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

impl Shard {
    pub(crate) fn new(
        id: ShardId,
        config: ShardConfig,
        handoff: Handoff,
        mut metrics: LocalMetrics,
        health: Arc<Health>,
        registry: Arc<Registry>,
        tls: ListenerTls,
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
        let (http1, http2) = (builders::http1(server), builders::http2(server));
        let cors = server.cors.as_ref().map(CorsPolicy::new);
        let tls_scratch = (tls.http.is_some() || tls.grpc.is_some()).then(TlsScratch::new);
        Shard {
            tls,
            tls_scratch,
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
            next_sink: Cell::new(0),
            stats: RefCell::new(ShardSummary::default()),
            metrics: RefCell::new(metrics),
            tags,
            health,
            registry,
            groups_seen: RefCell::new(HashSet::new()),
            last_flush: Cell::new(Instant::now()),
        }
    }

    /// This shard's id.
    pub(crate) fn id(&self) -> ShardId {
        self.id
    }

    /// The settings it runs with.
    pub(crate) fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The way to the publishers.
    pub(crate) fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// The one buffer every WebSocket of the shard reads its socket into
    /// (`SERVER_WEBSOCKET_READ_BUFFER_SIZE`); borrowed for one read at a time.
    pub(crate) fn ws_read_buffer(&self) -> &RefCell<Box<[u8]>> {
        &self.ws_read_buffer
    }

    /// The TLS of `port`, and the buffers to run it in; `None` when the port is cleartext.
    pub(crate) fn tls(&self, port: Port) -> Option<(&ServerTls, Rc<TlsScratch>)> {
        let tls = match port {
            Port::Http => self.tls.http.as_deref(),
            Port::Grpc => self.tls.grpc.as_deref(),
        }?;
        Some((tls, Rc::clone(self.tls_scratch.as_ref()?)))
    }

    /// What the shard counts for its summary.
    pub(crate) fn stats(&self) -> &RefCell<ShardSummary> {
        &self.stats
    }

    /// This shard's metrics; borrowed only for the duration of one recording, never across an
    /// `.await`.
    pub(crate) fn metrics(&self) -> &RefCell<LocalMetrics> {
        &self.metrics
    }

    /// Tag values the shard records with, interned once.
    pub(crate) fn tags(&self) -> ShardTags {
        self.tags
    }

    /// Readiness, as the health checker last saw it.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// The HTTP port's CORS policy (`SERVER_CORS_*`), when enabled.
    pub(crate) fn cors(&self) -> Option<&CorsPolicy> {
        self.cors.as_ref()
    }

    /// Whether shutdown began: REST and gRPC refuse new batches, HTTP responses close.
    pub(crate) fn draining(&self) -> bool {
        self.draining.get()
    }
}
