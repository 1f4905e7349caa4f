//! The shards' settings, assembled by `raccoon-config` from the `SERVER_*` keys and `EVENT_ACK`.

use std::sync::Arc;
use std::time::Duration;

use raccoon_core::topic::TopicPattern;
use raccoon_protocol::cors::CorsConfig;
use raccoon_protocol::identity::IdentityRules;
use raccoon_protocol::routing::UpgradeOrigins;
use raccoon_rt::listen::BindAddress;
use raccoon_rt::tls::ServerTls;

/// When a batch is acknowledged (`EVENT_ACK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `EVENT_ACK=0`: once the batch is queued for a publisher.
    OnReceipt,
    /// `EVENT_ACK=1`: once Kafka confirmed every event (or something failed).
    OnDelivery,
}

/// Settings of the HTTP port and the shards.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where every port binds (`SERVER_BIND_ADDRESS`; see [`raccoon_rt::listen`]).
    pub bind: BindAddress,
    /// HTTP port (0: any free port).
    pub port: u16,
    /// Most WebSocket connections open at once, counted across all shards
    /// (`SERVER_WEBSOCKET_MAX_CONN`).
    pub max_conn: usize,
    /// Bytes per WebSocket read, into the shard's one read buffer.
    pub read_buffer_bytes: usize,
    /// Most bytes of queued frames written to a WebSocket in one send.
    pub write_buffer_bytes: usize,
    /// Where ids and groups come from (`SERVER_WEBSOCKET_CONN_*`).
    pub identity: IdentityRules,
    /// Server ping period.
    pub ping_interval: Duration,
    /// Longest silence tolerated from a client.
    pub pong_wait: Duration,
    /// Deadline per write.
    pub write_wait: Duration,
    /// Which pages may open a WebSocket (`SERVER_WEBSOCKET_CHECK_ORIGIN`,
    /// `SERVER_WEBSOCKET_ALLOWED_ORIGINS`, else the CORS origins).
    pub upgrade_origins: UpgradeOrigins,
    /// CORS policy of the HTTP port (`SERVER_CORS_*`), or `None` when `SERVER_CORS_ENABLED` is
    /// false. Its allowed headers already include Content-Type and the id and group headers.
    pub cors: Option<CorsConfig>,
    /// Largest WebSocket message.
    pub max_frame_bytes: usize,
    /// Unanswered batches per connection before reading pauses.
    pub max_inflight_batches: usize,
    /// Per-connection dedup: how many answered `req_guid`s to remember, or `None` when off.
    pub dedup_window: Option<usize>,
    /// CPU of each shard; its length is the shard count.
    pub shard_cpus: Vec<usize>,
    /// glommio io_memory per shard.
    pub io_memory_bytes: usize,
    /// How long an idle shard polls before it sleeps (`None`: sleeps at once).
    pub spin_before_park: Option<Duration>,
    /// Shutdown: wait for in-flight acks this long.
    pub drain_timeout: Duration,
    /// gRPC port (0: any free port).
    pub grpc_port: u16,
    /// Largest gRPC request message.
    pub grpc_max_message_bytes: usize,
    /// Most concurrent gRPC calls per HTTP/2 connection.
    pub grpc_max_concurrent_streams: u32,
    /// Largest REST body.
    pub max_body_bytes: usize,
    /// Largest HTTP/1 request head, and HTTP/2 header list.
    pub http_max_header_bytes: usize,
    /// Most headers in an HTTP/1 request head.
    pub http_max_headers: usize,
    /// From a request's first byte to its complete head.
    pub http_header_timeout: Duration,
    /// From a request's head to its complete body (REST) or message (gRPC).
    pub body_timeout: Duration,
    /// Idle HTTP and gRPC connections are closed after this.
    pub http_idle_timeout: Duration,
}

/// Everything a shard reads: its own settings and the two it shares with the rest of the server.
///
/// Lives on: every shard holds its own clone (immutable after start).
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// `SERVER_*`.
    pub server: ServerConfig,
    /// `EVENT_ACK`.
    pub ack_mode: AckMode,
    /// `EVENT_DISTRIBUTION_PUBLISHER_PATTERN`, parsed: each event's type is checked against it at
    /// decode.
    pub topic_pattern: TopicPattern,
}

/// TLS of the shards' two ports, loaded by `main` from `SERVER_TLS_*` and `SERVER_GRPC_TLS_*`
/// (and reloaded by it on SIGHUP); `None`: the port is cleartext.
#[derive(Debug, Clone, Default)]
pub struct ListenerTls {
    /// The HTTP port (WebSocket, REST, health).
    pub http: Option<Arc<ServerTls>>,
    /// The gRPC port.
    pub grpc: Option<Arc<ServerTls>>,
}
