//! The single table of configuration keys.
//!
//! Raccoon's contract is its flat environment-variable names; a YAML file names the same keys
//! as a path (`server.websocket.port` is `SERVER_WEBSOCKET_PORT`). One table drives defaults,
//! the YAML and CLI mapping, validation messages, `--print-config` and the README reference
//! (a test checks the README lists every key).

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The environment-variable name, which is also the canonical key.
    pub env: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// Meaning, default's rationale and trade-off.
    pub doc: &'static str,
    /// Where this key comes from: Raccoon's own key, or one this server adds.
    pub origin: Origin,
}

/// Whether a key is Raccoon's (existing deployments set it) or new here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Same name and meaning as Raccoon v0.3.
    Raccoon,
    /// Raccoon's name, read for compatibility, with a different or no effect (the doc says).
    RaccoonChanged,
    /// Added by this server.
    New,
}

/// Prefix of the librdkafka passthrough keys.
pub const KAFKA_CLIENT_PREFIX: &str = "PUBLISHER_KAFKA_CLIENT_";

macro_rules! keys {
    ($($env:literal = $default:literal, $origin:ident, $doc:literal;)*) => {
        /// Every key this server reads, besides `PUBLISHER_KAFKA_CLIENT_*`.
        pub const KEYS: &[KeySpec] = &[$(KeySpec { env: $env, default: $default, doc: $doc, origin: Origin::$origin }),*];
    };
}

keys! {
    "SERVER_WEBSOCKET_PORT" = "8080", Raccoon,
        "HTTP port: WebSocket and REST (`/api/v1/events`), `/ping` and the health endpoints. 0 picks a free port (logged at startup).";
    "SERVER_BIND_ADDRESS" = "", New,
        "Address every port binds to (HTTP, gRPC, Prometheus). Empty: every address of both families, on one IPv6 socket that takes IPv4 too (IPV6_V6ONLY off), as Raccoon listened; on a host without IPv6, IPv4 alone, with a warning in the log. An address pins its family: `0.0.0.0` is IPv4 only, `::` IPv6 only (IPV6_V6ONLY on, as nginx's `listen [::]`), `127.0.0.1` or `::1` that address.";
    "SERVER_WEBSOCKET_MAX_CONN" = "30000", Raccoon,
        "Most concurrent WebSocket connections, counted across all shards. Over it, the client gets code 4 and close 1008, as in Raccoon.";
    "SERVER_WEBSOCKET_READ_BUFFER_SIZE" = "10240", Raccoon,
        "Bytes read from a WebSocket at a time, into one buffer per shard: an idle connection holds no read buffer.";
    "SERVER_WEBSOCKET_WRITE_BUFFER_SIZE" = "10240", Raccoon,
        "Most bytes of queued frames (replies, acks, pings) gathered into one write to a WebSocket; 0 writes each frame alone.";
    "SERVER_WEBSOCKET_CONN_ID_HEADER" = "X-User-ID", RaccoonChanged,
        "Header naming the connection's user id (logged per connection). Raccoon requires it; here it defaults to X-User-ID so the quick start needs no configuration.";
    "SERVER_WEBSOCKET_CONN_GROUP_HEADER" = "", Raccoon,
        "Optional header naming the connection group.";
    "SERVER_WEBSOCKET_CONN_GROUP_DEFAULT" = "--default--", Raccoon,
        "Group used when the group header is unset or empty.";
    "SERVER_WEBSOCKET_PING_INTERVAL_MS" = "30000", Raccoon,
        "Period of server Ping frames (payload `--ping--`) on every connection.";
    "SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS" = "60000", RaccoonChanged,
        "How long a client has to answer a server ping: when nothing (pong, ping or data) arrives for this long after the first ping it left unanswered, the connection is dropped, so a silent client goes within this plus SERVER_WEBSOCKET_PING_INTERVAL_MS. Raccoon counted only pongs, from the upgrade or the last pong.";
    "SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS" = "5000", RaccoonChanged,
        "Deadline for each write to a client: WebSocket control and data frames (Raccoon had none for data), HTTP and gRPC responses. A client that does not read is dropped.";
    "SERVER_WEBSOCKET_PINGER_SIZE" = "1", RaccoonChanged,
        "Read for compatibility, no effect: every connection's writer task sends its own pings.";
    "SERVER_WEBSOCKET_CHECK_ORIGIN" = "true", Raccoon,
        "Check the Origin of WebSocket upgrades: allowed are upgrades with no Origin (clients other than browsers), from the same origin (Origin host equal to Host, Raccoon's rule) and from SERVER_WEBSOCKET_ALLOWED_ORIGINS; others get 403. false accepts any origin.";
    "SERVER_WEBSOCKET_ALLOWED_ORIGINS" = "", New,
        "Origins whose pages may open a WebSocket when SERVER_WEBSOCKET_CHECK_ORIGIN is true: comma-separated (or YAML list) `scheme://host[:port]`, `scheme://*.domain[:port]` (every subdomain, at any depth, not the domain itself) or `*`; the whole origin is compared, ignoring case, a default port being the same as none. Empty: SERVER_CORS_ALLOWED_ORIGIN when SERVER_CORS_ENABLED (where `*` or none means every origin), else only Raccoon's same-origin rule.";
    "SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM" = "", New,
        "For browsers, which cannot set headers on a WebSocket: the query parameter of the upgrade URL that names the connection's id when the id header does not (e.g. `user_id` for `/api/v1/events?user_id=u1`). Empty: not read.";
    "SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM" = "", New,
        "The query parameter of the upgrade URL that names the group when the group header does not. Empty: not read.";
    "SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED" = "false", New,
        "For browsers: read the id and group from the offered WebSocket subprotocols, `new WebSocket(url, ['raccoon', 'raccoon.id.' + id, 'raccoon.group.' + group])` (values percent-encoded where a character is not allowed in a protocol name), when the headers name none; the 101 answers `Sec-WebSocket-Protocol: raccoon`. Keeps ids out of URLs and access logs.";
    "SERVER_WEBSOCKET_CONN_ID_ANONYMOUS" = "false", New,
        "A WebSocket that names no id (no header, subprotocol or query parameter) gets an identity of its own, `anon-<process>-<n>`, instead of Raccoon's empty id, of which one connection per group may be open (the second gets code 5). Still counted by SERVER_WEBSOCKET_MAX_CONN.";
    "SERVER_CORS_ENABLED" = "false", Raccoon,
        "Apply the CORS policy below to the whole HTTP port, as Raccoon's gorilla/handlers middleware did: preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered, responses to allowed origins get Access-Control-Allow-Origin. Other OPTIONS requests are routed (gorilla answered them itself).";
    "SERVER_CORS_ALLOWED_ORIGIN" = "", Raccoon,
        "Comma-separated (or YAML list) origins allowed, each `*`, `scheme://host[:port]` or `scheme://*.domain[:port]` (every subdomain; an addition to Raccoon's exact origins); matched ignoring case, a default port being the same as none, and answered with the request's origin. `*`, or an empty list, allows every origin and answers `*`. With CORS on, other origins are still served, without CORS headers. Also the origins whose pages may open a WebSocket, unless SERVER_WEBSOCKET_ALLOWED_ORIGINS is set.";
    "SERVER_CORS_ALLOWED_METHODS" = "GET,HEAD,POST,OPTIONS", Raccoon,
        "Methods a preflight may ask for (HTTP tokens, upper-cased); any other gets 405.";
    "SERVER_CORS_ALLOWED_HEADERS" = "", RaccoonChanged,
        "Request headers a preflight may ask for (header names), besides Accept, Accept-Language, Content-Language and Origin; any other gets 403. Always augmented with Content-Type and the SERVER_WEBSOCKET_CONN_ID_HEADER and SERVER_WEBSOCKET_CONN_GROUP_HEADER names, whatever source set them (Raccoon added them only when set in the environment, not in YAML).";
    "SERVER_CORS_ALLOW_CREDENTIALS" = "false", Raccoon,
        "Send Access-Control-Allow-Credentials: true to allowed origins. Browsers ignore it when the allowed origins are `*`.";
    "SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS" = "0", Raccoon,
        "Access-Control-Max-Age of preflight answers; 0 sends none. Values above 600 are sent as 600, as Raccoon's gorilla/handlers did.";
    "SERVER_WEBSOCKET_MAX_FRAME_BYTES" = "4194304", New,
        "Largest WebSocket message accepted (Raccoon: unbounded). A larger one gets close code 1009 naming both sizes; replies for batches already in flight are sent first.";
    "SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES" = "128", New,
        "Batches one connection may have awaiting their reply; at the limit the shard stops reading that connection (TCP backpressure).";
    "SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED" = "false", RaccoonChanged,
        "Drop a batch whose req_guid was already sent on the same live connection, answering it as the original was (counted in events_duplicate_total). Unlike Raccoon: bounded by SERVER_BATCH_DEDUP_WINDOW, empty guids are never duplicates, and with EVENT_ACK=1 a copy of a batch still in flight gets the original's outcome instead of an early success.";
    "SERVER_BATCH_DEDUP_WINDOW" = "256", New,
        "With dedup on, how many answered req_guids each connection remembers (plus those in flight; up to about 50 bytes each, 13 KiB per connection at 256, allocated as guids arrive). Raccoon kept every guid for the connection's life.";
    "SERVER_GRPC_PORT" = "8081", Raccoon,
        "gRPC port (`raystack.raccoon.v1beta1.EventService/SendEvent` and the legacy `odpf.raccoon` paths; HTTP/2 cleartext). 0 picks a free port (logged at startup).";
    "SERVER_GRPC_MAX_MESSAGE_BYTES" = "4194304", New,
        "Largest gRPC request message (as grpc-go's default receive limit, which Raccoon kept). A larger one ends the call with RESOURCE_EXHAUSTED before it is read.";
    "SERVER_GRPC_MAX_CONCURRENT_STREAMS" = "256", New,
        "Most gRPC calls one HTTP/2 connection may have open at once (announced in SETTINGS).";
    "SERVER_HTTP_MAX_BODY_BYTES" = "4194304", New,
        "Largest REST request body (Raccoon: unbounded). A larger one is answered 413 with CODE_BAD_REQUEST naming both sizes, and the connection is closed.";
    "SERVER_HTTP_MAX_HEADER_BYTES" = "16384", New,
        "Largest request head (request line and headers) on the HTTP port, and largest header list on the gRPC port. Over it: 431 (HTTP/1) or a stream error (HTTP/2).";
    "SERVER_HTTP_MAX_HEADERS" = "64", New,
        "Most headers in one HTTP/1 request head; more gets 431.";
    "SERVER_HTTP_HEADER_TIMEOUT_MS" = "10000", New,
        "Time a client has, from the first byte of a request, to send its complete head; then the connection is closed. Half-sent requests cannot hold connections longer.";
    "SERVER_HTTP_BODY_TIMEOUT_MS" = "10000", New,
        "Time a REST body or gRPC message has to arrive once its head did; then 408 (REST) or DEADLINE_EXCEEDED (gRPC).";
    "SERVER_HTTP_IDLE_TIMEOUT_MS" = "60000", New,
        "An HTTP or gRPC connection with no request in progress and no byte of a new one for this long is closed (WebSockets have their own ping rule).";
    "SERVER_SHARDS" = "0", New,
        "Number of shards (glommio executors), each pinned to one CPU of SERVER_CPU_LIST in order. 0 means one per CPU in the list.";
    "SERVER_CPU_LIST" = "", New,
        "CPUs for the shards, e.g. `0-3,6`. Empty means every CPU this process may run on (its affinity mask).";
    "SERVER_IO_MEMORY_BYTES" = "524288", New,
        "glommio io_memory per shard (locked memory). glommio needs RLIMIT_MEMLOCK of at least 512 KiB per shard plus this when not root.";
    "SERVER_SPIN_BEFORE_PARK_US" = "0", New,
        "How long an idle shard polls for work before it sleeps, in microseconds. 0 sleeps at once. Spinning saves the wake-up and the barrier each sleep costs, and burns its CPU while idle: for hosts where the shards have their cores to themselves.";
    "WORKER_BUFFER_CHANNEL_SIZE" = "100", RaccoonChanged,
        "Capacity, in batches, of each publisher thread's queue (Raccoon: of its one shared channel). When full, shards stop reading from the connections that feed it.";
    "WORKER_BUFFER_FLUSH_TIMEOUT_MS" = "5000", Raccoon,
        "On shutdown, how long shards wait for in-flight batches to be acknowledged before closing connections.";
    "WORKER_POOL_SIZE" = "5", RaccoonChanged,
        "Read for compatibility, no effect: publishing never blocks a worker here; see PUBLISHER_KAFKA_PRODUCER_THREADS.";
    "EVENT_ACK" = "0", Raccoon,
        "0: reply as soon as the batch is queued for Kafka. 1: reply only after Kafka confirmed every event, or with CODE_INTERNAL_ERROR naming what failed. Other values are refused (Raccoon treated them as 0).";
    "EVENT_DISTRIBUTION_PUBLISHER_PATTERN" = "clickstream-%s-log", Raccoon,
        "Topic for an event: the first %s replaced by its type. Without %s, every event goes to this one topic.";
    "PUBLISHER_TYPE" = "kafka", RaccoonChanged,
        "`kafka`, or `log` for development and quick starts: nothing is published and no broker is needed (readiness does not check Kafka); each event is logged at INFO as `[LogPublisher] kind = json|protobuf, event_type = <type>, event = <payload>`, JSON payloads as text, others decoded as schemaless protobuf (`1:\"x\" 2:420`), and a payload that is neither fails its batch. Raccoon's `pubsub` and `kinesis` are refused at startup.";
    "PUBLISHER_KAFKA_FLUSH_INTERVAL_MS" = "1000", Raccoon,
        "On shutdown, how long each producer may spend flushing to Kafka.";
    "PUBLISHER_KAFKA_PRODUCER_THREADS" = "1", New,
        "Publisher threads, each with its own librdkafka producer and bounded queue. A connection always uses the same one. With PUBLISHER_TYPE=log, the number of log publisher threads.";
    "PUBLISHER_KAFKA_DELIVERY_CHANNEL_SIZE" = "10", RaccoonChanged,
        "Read for compatibility, no effect: delivery reports go straight to the owning shard's inbox.";
    "METRIC_PROMETHEUS_ENABLED" = "false", RaccoonChanged,
        "Serve Prometheus metrics (OpenMetrics text). May be enabled together with StatsD (Raccoon silently disabled all metrics when both were).";
    "METRIC_PROMETHEUS_PORT" = "9090", Raccoon,
        "Port of the Prometheus endpoint, on SERVER_BIND_ADDRESS. 0 picks a free port (logged at startup).";
    "METRIC_PROMETHEUS_PATH" = "/metrics", Raccoon,
        "Path of the Prometheus endpoint.";
    "METRIC_STATSD_ENABLED" = "false", Raccoon,
        "Send metrics to StatsD (Telegraf-style tags in the bucket name).";
    "METRIC_STATSD_ADDRESS" = ":8125", Raccoon,
        "StatsD UDP address, `host:port`; a bare `:port` means 127.0.0.1.";
    "METRIC_STATSD_FLUSH_PERIOD_MS" = "10000", Raccoon,
        "How often changes are sent to StatsD.";
    "METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS" = "10000", RaccoonChanged,
        "Window of the latency percentile gauges. (Raccoon: period of its runtime gauges; here process gauges are read at each scrape or StatsD flush.)";
    "METRIC_TAG_VALUES_MAX" = "1000", New,
        "Most distinct client-chosen tag values (conn_group, event_type, topic) each thread records; beyond, they are counted under `other`, so clients cannot grow the series without bound.";
    "LOG_FORMAT" = "text", New,
        "`text` (one line per event, colours only on a terminal) or `json` (one object per line, with the connection's span fields).";
    "LOG_LEVEL" = "info", Raccoon,
        "error, warn, info, debug or trace; or a tracing filter such as `raccoon=debug,rdkafka=info`.";
}

/// Looks a key up by its environment name.
pub fn spec(env: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.env == env)
}

/// The configuration reference as a Markdown table, one row per key, as README.md carries it
/// between the `config-reference` markers (a test keeps the two identical).
pub fn markdown_reference() -> String {
    let mut out = String::from("| Key | Default | Origin | Meaning |\n|---|---|---|---|\n");
    for key in KEYS {
        let default = if key.default.is_empty() { "(empty)".to_owned() } else { format!("`{}`", key.default) };
        let origin = match key.origin {
            Origin::Raccoon => "Raccoon",
            Origin::RaccoonChanged => "Raccoon, changed",
            Origin::New => "new",
        };
        out.push_str(&format!("| `{}` | {default} | {origin} | {} |\n", key.env, key.doc.replace('|', "\\|")));
    }
    out
}

/// [`raccoon_publish::kafka::DEFAULTS`] as a Markdown table for README.md (kept identical by a test).
pub fn markdown_defaults() -> String {
    let mut out = String::from("| librdkafka property | Environment variable | Default |\n|---|---|---|\n");
    for (property, value) in raccoon_publish::kafka::DEFAULTS {
        let env = format!("{}{}", KAFKA_CLIENT_PREFIX, property.replace('.', "_").to_ascii_uppercase());
        out.push_str(&format!("| `{property}` | `{env}` | `{value}` |\n"));
    }
    out
}
