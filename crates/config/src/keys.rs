//! The single table of configuration keys.
//!
//! Raccoon's contract is its flat environment-variable names; a YAML file names the same keys
//! as a path (`server.websocket.port` is `SERVER_WEBSOCKET_PORT`). One table drives defaults,
//! the YAML and CLI mapping, validation messages, `--print-config` and the README reference
//! (a test checks the README lists every key).
//!
//! Each key is a constant here, [`Key<T>`](Key) carrying the Rust type its value is read as,
//! its default, the [`Range`] it must be in and its documentation; config reads values only
//! through these constants, so a misspelt key is a compile error, and a test asserts that
//! every key is read.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::time::Duration;

/// One configuration key, untyped: what the key table, `--print-config` and the README
/// reference need of it. The typed handle the assembler reads with is [`Key`].
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The environment-variable name, which is also the canonical key.
    pub env: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// The values it takes (checked when it is read; the README's Range column).
    pub range: Range,
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

/// The values a key takes. Numbers and choices are checked by [`Value::parse`]; the form of
/// text is checked where it is turned into its component's type (an origin list, a header
/// name), and described here for the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// A whole number from `min` to `max`, both included.
    Int {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// Milliseconds, a whole number from `min` to `max`.
    Millis {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`, in any case).
    Bool,
    /// One of these words, in any case, each with what it means (or `""`).
    OneOf(&'static [(&'static str, &'static str)]),
    /// Text of the form described.
    Text(&'static str),
}

impl Range {
    /// Every duration key: 1 ms to one day.
    pub const MILLIS: Range = Range::Millis { min: 1, max: 86_400_000 };

    /// How the README's Range column shows it.
    pub fn describe(&self) -> String {
        match self {
            Range::Int { min, max } => format!("{min} to {max}"),
            Range::Millis { min, max } => format!("{min} to {max} ms"),
            Range::Bool => "true, false".to_owned(),
            Range::OneOf(words) => words.iter().map(|(w, _)| format!("`{w}`")).collect::<Vec<_>>().join(", "),
            Range::Text(form) => (*form).to_owned(),
        }
    }
}

/// A key with the Rust type its value is read as: the constants below, one per key, are the only
/// way the assembler reads a value, so a misspelt key does not compile.
#[derive(Debug)]
pub struct Key<T> {
    spec: KeySpec,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> Key<T> {
    const fn new(spec: KeySpec) -> Key<T> {
        Key { spec, value: PhantomData }
    }

    /// The key's name, as environment variable (what messages and flags name it by).
    pub const fn env(&self) -> &'static str {
        self.spec.env
    }

    /// Everything the table knows of it.
    pub const fn spec(&self) -> &KeySpec {
        &self.spec
    }
}

/// A Rust type a key's text is read as, within the key's [`Range`].
pub trait Value: Sized {
    /// Parses the (trimmed) text; the error says what is expected.
    fn parse(text: &str, range: &Range) -> Result<Self, String>;
}

fn whole_number(text: &str, range: &Range) -> Result<u64, String> {
    let (Range::Int { min, max } | Range::Millis { min, max }) = *range else {
        unreachable!("invariant: the keys! table gives every number key a number range ({range:?})")
    };
    match text.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

macro_rules! whole_number_values {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn parse(text: &str, range: &Range) -> Result<Self, String> {
                let n = whole_number(text, range)?;
                Ok(<$t>::try_from(n).expect("invariant: the keys! table keeps ranges within their type"))
            }
        }
    )*};
}

whole_number_values!(u16, u32, u64, usize);

impl Value for NonZeroUsize {
    fn parse(text: &str, range: &Range) -> Result<Self, String> {
        let n = usize::parse(text, range)?;
        Ok(NonZeroUsize::new(n).expect("invariant: the keys! table gives a NonZeroUsize key a range from 1"))
    }
}

impl Value for Duration {
    fn parse(text: &str, range: &Range) -> Result<Self, String> {
        whole_number(text, range).map(Duration::from_millis)
    }
}

impl Value for bool {
    fn parse(text: &str, _: &Range) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
}

/// Text as given; for [`Range::OneOf`], the listed word it names, in lower case.
impl Value for String {
    fn parse(text: &str, range: &Range) -> Result<Self, String> {
        let Range::OneOf(words) = range else { return Ok(text.to_owned()) };
        if let Some((word, _)) = words.iter().find(|(w, _)| w.eq_ignore_ascii_case(text)) {
            return Ok((*word).to_owned());
        }
        let named: Vec<String> = words
            .iter()
            .map(|(w, meaning)| if meaning.is_empty() { (*w).to_owned() } else { format!("{w} ({meaning})") })
            .collect();
        Err(match named.split_last() {
            Some((last, [])) => format!("expected {last}"),
            Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
            None => unreachable!("invariant: a OneOf range lists at least one word"),
        })
    }
}

/// Comma-separated entries (a YAML list arrives joined with commas), trimmed, empty ones dropped.
impl Value for Vec<String> {
    fn parse(text: &str, _: &Range) -> Result<Self, String> {
        Ok(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}

#[cfg(test)]
fn check_range<T: Value>(key: Key<T>) -> Result<(), String> {
    let range = &key.spec().range;
    let ends: Vec<String> = match *range {
        Range::Int { min, max } | Range::Millis { min, max } => vec![min.to_string(), max.to_string()],
        Range::OneOf(words) => words.iter().map(|(w, _)| w.to_uppercase()).collect(),
        Range::Bool | Range::Text(_) => vec![],
    };
    for text in ends.iter().map(String::as_str).chain([key.spec().default]) {
        T::parse(text, range)
            .map_err(|e| format!("{}: {text:?} is in its range but does not parse: {e}", key.env()))?;
    }
    Ok(())
}

/// Prefix of the librdkafka passthrough keys.
pub const KAFKA_CLIENT_PREFIX: &str = "PUBLISHER_KAFKA_CLIENT_";

/// The passthrough key of librdkafka's `bootstrap.servers`, which `--bootstrap-servers` sets.
pub const KAFKA_BOOTSTRAP_SERVERS: &str = "PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS";

const PORT_MAX: u64 = u16::MAX as u64;
const U32_MAX: u64 = u32::MAX as u64;
const KIB_64: u64 = 64 << 10;
const MIB: u64 = 1 << 20;
const MIB_64: u64 = 64 << 20;
const GIB: u64 = 1 << 30;

macro_rules! keys {
    ($($name:ident: $t:ty = $default:literal, $range:expr, $origin:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub const $name: Key<$t> = Key::new(KeySpec {
                env: stringify!($name),
                default: $default,
                range: $range,
                doc: $doc,
                origin: Origin::$origin,
            });
        )*

        /// Every key this server reads, besides `PUBLISHER_KAFKA_CLIENT_*`, in the README's order.
        pub const KEYS: &[KeySpec] = &[$($name.spec),*];

        /// Parses both ends of every number key's range as the key's type, and every word of a
        /// choice, so a range that does not fit its type fails a test rather than a startup.
        #[cfg(test)]
        pub(crate) fn check_ranges() -> Result<(), String> {
            $(check_range($name)?;)*
            Ok(())
        }
    };
}

keys! {
    SERVER_WEBSOCKET_PORT: u16 = "8080", Range::Int { min: 0, max: PORT_MAX }, Raccoon,
        "HTTP port: WebSocket and REST (`/api/v1/events`), `/ping` and the health endpoints. 0 picks a free port (logged at startup).";
    SERVER_BIND_ADDRESS: String = "", Range::Text("an IP address, or empty"), New,
        "Address every port binds to (HTTP, gRPC, Prometheus). Empty: every address of both families, on one IPv6 socket that takes IPv4 too (IPV6_V6ONLY off), as Raccoon listened; on a host without IPv6, IPv4 alone, with a warning in the log. An address pins its family: `0.0.0.0` is IPv4 only, `::` IPv6 only (IPV6_V6ONLY on, as nginx's `listen [::]`), `127.0.0.1` or `::1` that address.";
    SERVER_WEBSOCKET_MAX_CONN: usize = "30000", Range::Int { min: 1, max: 10_000_000 }, Raccoon,
        "Most concurrent WebSocket connections, counted across all shards. Over it, the client gets code 4 and close 1008, as in Raccoon.";
    SERVER_WEBSOCKET_READ_BUFFER_SIZE: usize = "10240", Range::Int { min: 512, max: MIB_64 }, Raccoon,
        "Bytes read from a WebSocket at a time, into one buffer per shard: an idle connection holds no read buffer.";
    SERVER_WEBSOCKET_WRITE_BUFFER_SIZE: usize = "10240", Range::Int { min: 0, max: MIB_64 }, Raccoon,
        "Most bytes of queued frames (replies, acks, pings) gathered into one write to a WebSocket; 0 writes each frame alone.";
    SERVER_WEBSOCKET_CONN_ID_HEADER: String = "X-User-ID", Range::Text("an HTTP header name"), RaccoonChanged,
        "Header naming the connection's user id (logged per connection). Raccoon requires it; here it defaults to X-User-ID so the quick start needs no configuration.";
    SERVER_WEBSOCKET_CONN_GROUP_HEADER: String = "", Range::Text("an HTTP header name, or empty"), Raccoon,
        "Optional header naming the connection group.";
    SERVER_WEBSOCKET_CONN_GROUP_DEFAULT: String = "--default--", Range::Text("any text"), Raccoon,
        "Group used when the group header is unset or empty.";
    SERVER_WEBSOCKET_PING_INTERVAL_MS: Duration = "30000", Range::MILLIS, Raccoon,
        "Period of server Ping frames (payload `--ping--`) on every connection.";
    SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS: Duration = "60000", Range::MILLIS, RaccoonChanged,
        "How long a client has to answer a server ping: when nothing (pong, ping or data) arrives for this long after the first ping it left unanswered, the connection is dropped, so a silent client goes within this plus SERVER_WEBSOCKET_PING_INTERVAL_MS. Raccoon counted only pongs, from the upgrade or the last pong.";
    SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS: Duration = "5000", Range::MILLIS, RaccoonChanged,
        "Deadline for each write to a client: WebSocket control and data frames (Raccoon had none for data), HTTP and gRPC responses. A client that does not read is dropped.";
    SERVER_WEBSOCKET_PINGER_SIZE: usize = "1", Range::Int { min: 1, max: 1_000_000 }, RaccoonChanged,
        "Read for compatibility, no effect: every connection's writer task sends its own pings.";
    SERVER_WEBSOCKET_CHECK_ORIGIN: bool = "true", Range::Bool, Raccoon,
        "Check the Origin of WebSocket upgrades: allowed are upgrades with no Origin (clients other than browsers), from the same origin (Origin host equal to Host, Raccoon's rule) and from SERVER_WEBSOCKET_ALLOWED_ORIGINS; others get 403. false accepts any origin.";
    SERVER_WEBSOCKET_ALLOWED_ORIGINS: Vec<String> = "", Range::Text("a list of origins"), New,
        "Origins whose pages may open a WebSocket when SERVER_WEBSOCKET_CHECK_ORIGIN is true: comma-separated (or YAML list) `scheme://host[:port]`, `scheme://*.domain[:port]` (every subdomain, at any depth, not the domain itself) or `*`; the whole origin is compared, ignoring case, a default port being the same as none. Empty: SERVER_CORS_ALLOWED_ORIGIN when SERVER_CORS_ENABLED (where `*` or none means every origin), else only Raccoon's same-origin rule.";
    SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM: String = "", Range::Text("a query parameter name, or empty"), New,
        "For browsers, which cannot set headers on a WebSocket: the query parameter of the upgrade URL that names the connection's id when the id header does not (e.g. `user_id` for `/api/v1/events?user_id=u1`). Empty: not read.";
    SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM: String = "", Range::Text("a query parameter name, or empty"), New,
        "The query parameter of the upgrade URL that names the group when the group header does not. Empty: not read.";
    SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED: bool = "false", Range::Bool, New,
        "For browsers: read the id and group from the offered WebSocket subprotocols, `new WebSocket(url, ['raccoon', 'raccoon.id.' + id, 'raccoon.group.' + group])` (values percent-encoded where a character is not allowed in a protocol name), when the headers name none; the 101 answers `Sec-WebSocket-Protocol: raccoon`. Keeps ids out of URLs and access logs.";
    SERVER_WEBSOCKET_CONN_ID_ANONYMOUS: bool = "false", Range::Bool, New,
        "A WebSocket that names no id (no header, subprotocol or query parameter) gets an identity of its own, `anon-<process>-<n>`, instead of Raccoon's empty id, of which one connection per group may be open (the second gets code 5). Still counted by SERVER_WEBSOCKET_MAX_CONN.";
    SERVER_CORS_ENABLED: bool = "false", Range::Bool, Raccoon,
        "Apply the CORS policy below to the whole HTTP port, as Raccoon's gorilla/handlers middleware did: preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered, responses to allowed origins get Access-Control-Allow-Origin. Other OPTIONS requests are routed (gorilla answered them itself).";
    SERVER_CORS_ALLOWED_ORIGIN: Vec<String> = "", Range::Text("a list of origins"), Raccoon,
        "Comma-separated (or YAML list) origins allowed, each `*`, `scheme://host[:port]` or `scheme://*.domain[:port]` (every subdomain; an addition to Raccoon's exact origins); matched ignoring case, a default port being the same as none, and answered with the request's origin. `*`, or an empty list, allows every origin and answers `*`. With CORS on, other origins are still served, without CORS headers. Also the origins whose pages may open a WebSocket, unless SERVER_WEBSOCKET_ALLOWED_ORIGINS is set.";
    SERVER_CORS_ALLOWED_METHODS: Vec<String> = "GET,HEAD,POST,OPTIONS", Range::Text("a list of HTTP methods"), Raccoon,
        "Methods a preflight may ask for (HTTP tokens, upper-cased); any other gets 405.";
    SERVER_CORS_ALLOWED_HEADERS: Vec<String> = "", Range::Text("a list of header names"), RaccoonChanged,
        "Request headers a preflight may ask for (header names), besides Accept, Accept-Language, Content-Language and Origin; any other gets 403. Always augmented with Content-Type and the SERVER_WEBSOCKET_CONN_ID_HEADER and SERVER_WEBSOCKET_CONN_GROUP_HEADER names, whatever source set them (Raccoon added them only when set in the environment, not in YAML).";
    SERVER_CORS_ALLOW_CREDENTIALS: bool = "false", Range::Bool, Raccoon,
        "Send Access-Control-Allow-Credentials: true to allowed origins. Browsers ignore it when the allowed origins are `*`.";
    SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS: u64 = "0", Range::Int { min: 0, max: U32_MAX }, Raccoon,
        "Access-Control-Max-Age of preflight answers; 0 sends none. Values above 600 are sent as 600, as Raccoon's gorilla/handlers did.";
    SERVER_WEBSOCKET_MAX_FRAME_BYTES: usize = "4194304", Range::Int { min: 1024, max: GIB }, New,
        "Largest WebSocket message accepted (Raccoon: unbounded). A larger one gets close code 1009 naming both sizes; replies for batches already in flight are sent first.";
    SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES: usize = "128", Range::Int { min: 1, max: MIB }, New,
        "Batches one connection may have awaiting their reply; at the limit the shard stops reading that connection (TCP backpressure).";
    SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED: bool = "false", Range::Bool, RaccoonChanged,
        "Drop a batch whose req_guid was already sent on the same live connection, answering it as the original was (counted in events_duplicate_total). Unlike Raccoon: bounded by SERVER_BATCH_DEDUP_WINDOW, empty guids are never duplicates, and with EVENT_ACK=1 a copy of a batch still in flight gets the original's outcome instead of an early success.";
    SERVER_BATCH_DEDUP_WINDOW: usize = "256", Range::Int { min: 1, max: MIB }, New,
        "With dedup on, how many answered req_guids each connection remembers (plus those in flight; up to about 50 bytes each, 13 KiB per connection at 256, allocated as guids arrive). Raccoon kept every guid for the connection's life.";
    SERVER_GRPC_PORT: u16 = "8081", Range::Int { min: 0, max: PORT_MAX }, Raccoon,
        "gRPC port (`raystack.raccoon.v1beta1.EventService/SendEvent` and the legacy `odpf.raccoon` paths; HTTP/2 cleartext). 0 picks a free port (logged at startup).";
    SERVER_GRPC_MAX_MESSAGE_BYTES: usize = "4194304", Range::Int { min: 1024, max: GIB }, New,
        "Largest gRPC request message (as grpc-go's default receive limit, which Raccoon kept). A larger one ends the call with RESOURCE_EXHAUSTED before it is read.";
    SERVER_GRPC_MAX_CONCURRENT_STREAMS: u32 = "256", Range::Int { min: 1, max: MIB }, New,
        "Most gRPC calls one HTTP/2 connection may have open at once (announced in SETTINGS).";
    SERVER_HTTP_MAX_BODY_BYTES: usize = "4194304", Range::Int { min: 1024, max: GIB }, New,
        "Largest REST request body (Raccoon: unbounded). A larger one is answered 413 with CODE_BAD_REQUEST naming both sizes, and the connection is closed.";
    SERVER_HTTP_MAX_HEADER_BYTES: usize = "16384", Range::Int { min: 1024, max: MIB }, New,
        "Largest request head (request line and headers) on the HTTP port, and largest header list on the gRPC port. Over it: 431 (HTTP/1) or a stream error (HTTP/2).";
    SERVER_HTTP_MAX_HEADERS: usize = "64", Range::Int { min: 8, max: 1024 }, New,
        "Most headers in one HTTP/1 request head; more gets 431.";
    SERVER_HTTP_HEADER_TIMEOUT_MS: Duration = "10000", Range::MILLIS, New,
        "Time a client has, from the first byte of a request, to send its complete head; then the connection is closed. Half-sent requests cannot hold connections longer.";
    SERVER_HTTP_BODY_TIMEOUT_MS: Duration = "10000", Range::MILLIS, New,
        "Time a REST body or gRPC message has to arrive once its head did; then 408 (REST) or DEADLINE_EXCEEDED (gRPC).";
    SERVER_HTTP_IDLE_TIMEOUT_MS: Duration = "60000", Range::MILLIS, New,
        "An HTTP or gRPC connection with no request in progress and no byte of a new one for this long is closed (WebSockets have their own ping rule).";
    SERVER_TLS_CERT_FILE: String = "", Range::Text("a file path, or empty"), New,
        "PEM certificate chain, leaf first (ECDSA, RSA or Ed25519), for the HTTP port and the gRPC port (unless SERVER_GRPC_TLS_ENABLED is false, or SERVER_GRPC_TLS_CERT_FILE names its own). Set with SERVER_TLS_KEY_FILE, the port takes TLS 1.3 and 1.2 only: a plain HTTP request there gets 400 saying so. SIGHUP reads the files again; new connections get the new certificate, open ones keep theirs. Empty: cleartext, as Raccoon.";
    SERVER_TLS_KEY_FILE: String = "", Range::Text("a file path, or empty"), New,
        "PEM private key (PKCS#8, PKCS#1 or SEC1) of SERVER_TLS_CERT_FILE.";
    SERVER_TLS_CLIENT_CA_FILE: String = "", Range::Text("a file path, or empty"), New,
        "PEM CA certificates that sign client certificates (mTLS) on the TLS ports (HTTP and gRPC). Empty: clients present none. Reloaded on SIGHUP with the certificate.";
    SERVER_TLS_CLIENT_AUTH: String = "required", Range::OneOf(&[("required", "a client without a certificate the CA signed fails the handshake"), ("optional", "a client may present one (it is then verified)")]), New,
        "With SERVER_TLS_CLIENT_CA_FILE: whether every client must present a certificate.";
    SERVER_GRPC_TLS_ENABLED: bool = "true", Range::Bool, New,
        "With a certificate for it (SERVER_GRPC_TLS_CERT_FILE, else SERVER_TLS_CERT_FILE), the gRPC port takes TLS, offering h2 by ALPN; false keeps it cleartext (HTTP/2 with prior knowledge) whatever the HTTP port does.";
    SERVER_GRPC_TLS_CERT_FILE: String = "", Range::Text("a file path, or empty"), New,
        "A certificate chain of the gRPC port's own (with SERVER_GRPC_TLS_KEY_FILE). Empty: SERVER_TLS_CERT_FILE's.";
    SERVER_GRPC_TLS_KEY_FILE: String = "", Range::Text("a file path, or empty"), New,
        "The private key of SERVER_GRPC_TLS_CERT_FILE.";
    SERVER_SHARDS: usize = "0", Range::Int { min: 0, max: 4096 }, New,
        "Number of shards (glommio executors), each pinned to one CPU of SERVER_CPU_LIST in order. 0 means one per CPU in the list.";
    SERVER_CPU_LIST: String = "", Range::Text("a CPU list such as 0-3,6, or empty"), New,
        "CPUs for the shards, e.g. `0-3,6`. Empty means every CPU this process may run on (its affinity mask).";
    SERVER_IO_MEMORY_BYTES: usize = "524288", Range::Int { min: KIB_64, max: GIB }, New,
        "glommio io_memory per shard (locked memory). glommio needs RLIMIT_MEMLOCK of at least 512 KiB per shard plus this when not root.";
    SERVER_SPIN_BEFORE_PARK_US: u64 = "0", Range::Int { min: 0, max: 1_000_000 }, New,
        "How long an idle shard polls for work before it sleeps, in microseconds. 0 sleeps at once. Spinning saves the wake-up and the barrier each sleep costs, and burns its CPU while idle: for hosts where the shards have their cores to themselves.";
    WORKER_BUFFER_CHANNEL_SIZE: usize = "100", Range::Int { min: 1, max: MIB }, RaccoonChanged,
        "Capacity, in batches, of each publisher thread's queue (Raccoon: of its one shared channel). When full, shards stop reading from the connections that feed it.";
    WORKER_BUFFER_FLUSH_TIMEOUT_MS: Duration = "5000", Range::MILLIS, Raccoon,
        "On shutdown, how long shards wait for in-flight batches to be acknowledged before closing connections.";
    WORKER_POOL_SIZE: usize = "5", Range::Int { min: 1, max: 1_000_000 }, RaccoonChanged,
        "Read for compatibility, no effect: publishing never blocks a worker here; see PUBLISHER_KAFKA_PRODUCER_THREADS.";
    EVENT_ACK: String = "0", Range::OneOf(&[("0", "ack on receipt"), ("1", "ack on Kafka delivery")]), Raccoon,
        "0: reply as soon as the batch is queued for Kafka. 1: reply only after Kafka confirmed every event, or with a refusal naming what failed: \"retry\" (code 3) when Kafka is unavailable, CODE_BAD_REQUEST when Kafka rejects an event for good, code 3 for a missing topic (README, \"What a client sees when Kafka is down\"). Other values are refused (Raccoon treated them as 0).";
    EVENT_DISTRIBUTION_PUBLISHER_PATTERN: String = "clickstream-%s-log", Range::Text("a topic name, %s standing for the event type"), Raccoon,
        "Topic for an event: the first %s replaced by its type. Without %s, every event goes to this one topic.";
    PUBLISHER_TYPE: String = "kafka", Range::OneOf(&[("kafka", ""), ("log", "")]), RaccoonChanged,
        "`kafka`, or `log` for development and quick starts: nothing is published and no broker is needed (readiness does not check Kafka); each event is logged at INFO as `[LogPublisher] kind = json|protobuf, event_type = <type>, event = <payload>`, JSON payloads as text, others decoded as schemaless protobuf (`1:\"x\" 2:420`), and a payload that is neither fails its batch. Raccoon's `pubsub` and `kinesis` are refused at startup.";
    PUBLISHER_KAFKA_FLUSH_INTERVAL_MS: Duration = "1000", Range::MILLIS, Raccoon,
        "On shutdown, how long each producer may spend flushing to Kafka.";
    PUBLISHER_KAFKA_BATCH_DEADLINE_MS: Duration = "15000", Range::MILLIS, New,
        "With EVENT_ACK=1: a batch Kafka has not acknowledged within this time of its receipt is answered \"retry\" (WebSocket code 3, REST 503, gRPC UNAVAILABLE) instead of waiting for librdkafka's message.timeout.ms (300 s). The default waits out a broker lost from a cluster (Kafka's broker.session.timeout.ms, 9 s, then the in-sync replicas shrink) and answers before clients' own 30 s timeouts. Its events stay queued in librdkafka and may still be published: see README, \"What a client sees when Kafka is down\". A value at or above message.timeout.ms leaves the answer to librdkafka.";
    PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS: Duration = "500", Range::MILLIS, New,
        "With EVENT_ACK=1: how long a batch waits for room in librdkafka's full queue (queue.buffering.max.messages/kbytes) before its remaining events are refused, not published, and the batch is answered \"retry\". With EVENT_ACK=0 a full queue is waited out, which stops reading from the connections that feed it.";
    PUBLISHER_KAFKA_RECORD_KEY: String = "none", Range::OneOf(&[("none", "no key (Raccoon)"), ("conn_id", "the connection's id"), ("conn_group", "the connection's group"), ("req_guid", "the batch's req_guid")]), New,
        "What each Kafka record is keyed by. With librdkafka's default partitioner (`consistent_random`) records of one key land on one partition, in order: `conn_id` keeps each client's events in order, at the cost of smaller Kafka batches (a batch's events spread over the partitions of their keys; figures in perf-results/2026-12-03-records.md). An empty value (a connection with no id) gives no key. `none` is Raccoon's: no key, records spread by librdkafka's sticky partitioner.";
    PUBLISHER_KAFKA_RECORD_HEADERS: bool = "false", Range::Bool, New,
        "Give each Kafka record the headers `raccoon-conn-id`, `raccoon-conn-group`, `raccoon-req-guid`, `raccoon-sent-time` (the batch's sent_time, RFC 3339 UTC; absent if the client sent none) and `raccoon-event-index` (the event's position in its batch, from 0), all text: (conn-id, req-guid, event-index) names an event across a client's retries, so a consumer can drop copies. Costs a produce call per record instead of one per batch and topic (perf-results/2026-12-03-records.md). Off: Raccoon's records, no headers.";
    PUBLISHER_DEAD_LETTER_TOPIC: String = "", Range::Text("a Kafka topic name, or empty"), New,
        "Where events Kafka rejects for good (too large for the broker, an invalid or unauthorized topic, an invalid record: the `retriable=\"false\"` codes of kafka_delivery_errors_total other than a missing topic) go instead of failing their batch: the original bytes and key, with the headers `raccoon-topic` (the topic it was meant for) and `raccoon-error` (librdkafka's error name) before the record headers of PUBLISHER_KAFKA_RECORD_HEADERS (always given here; `raccoon-event-index` only when that key is on or librdkafka refused the event before sending it). The batch then succeeds. If the dead-letter record fails too, its event fails with that error (\"retry\" while the topic is unavailable). Give the topic a max.message.bytes at least that of the topics it stands in for. Empty: Raccoon's behaviour, the batch is refused as rejected.";
    PUBLISHER_KAFKA_PRODUCER_THREADS: NonZeroUsize = "1", Range::Int { min: 1, max: 256 }, New,
        "Publisher threads, each with its own librdkafka producer and bounded queue. A connection always uses the same one. With PUBLISHER_TYPE=log, the number of log publisher threads.";
    PUBLISHER_KAFKA_DELIVERY_CHANNEL_SIZE: usize = "10", Range::Int { min: 1, max: 1_000_000 }, RaccoonChanged,
        "Read for compatibility, no effect: delivery reports go straight to the owning shard's inbox.";
    METRIC_PROMETHEUS_ENABLED: bool = "false", Range::Bool, RaccoonChanged,
        "Serve Prometheus metrics (OpenMetrics text). May be enabled together with StatsD (Raccoon silently disabled all metrics when both were).";
    METRIC_PROMETHEUS_PORT: u16 = "9090", Range::Int { min: 0, max: PORT_MAX }, Raccoon,
        "Port of the Prometheus endpoint, on SERVER_BIND_ADDRESS. 0 picks a free port (logged at startup).";
    METRIC_PROMETHEUS_TLS_CERT_FILE: String = "", Range::Text("a file path, or empty"), New,
        "PEM certificate chain for the Prometheus port (with METRIC_PROMETHEUS_TLS_KEY_FILE): scrapes then take TLS. Reloaded on SIGHUP. Empty: cleartext. Independent of SERVER_TLS_*.";
    METRIC_PROMETHEUS_TLS_KEY_FILE: String = "", Range::Text("a file path, or empty"), New,
        "The private key of METRIC_PROMETHEUS_TLS_CERT_FILE.";
    METRIC_PROMETHEUS_PATH: String = "/metrics", Range::Text("a URL path such as /metrics"), Raccoon,
        "Path of the Prometheus endpoint.";
    METRIC_STATSD_ENABLED: bool = "false", Range::Bool, Raccoon,
        "Send metrics to StatsD (Telegraf-style tags in the bucket name).";
    METRIC_STATSD_ADDRESS: String = ":8125", Range::Text("host:port, or :port"), Raccoon,
        "StatsD UDP address, `host:port`; a bare `:port` means 127.0.0.1.";
    METRIC_STATSD_FLUSH_PERIOD_MS: Duration = "10000", Range::MILLIS, Raccoon,
        "How often changes are sent to StatsD.";
    METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS: Duration = "10000", Range::MILLIS, RaccoonChanged,
        "Window of the latency percentile gauges. (Raccoon: period of its runtime gauges; here process gauges are read at each scrape or StatsD flush.)";
    METRIC_TAG_VALUES_MAX: usize = "1000", Range::Int { min: 1, max: 1_000_000 }, New,
        "Most distinct client-chosen tag values (conn_group, event_type, topic) each thread records; beyond, they are counted under `other`, so clients cannot grow the series without bound.";
    LOG_FORMAT: String = "text", Range::OneOf(&[("text", ""), ("json", "")]), New,
        "`text` (one line per event, colours only on a terminal) or `json` (one object per line, with the connection's span fields).";
    LOG_LEVEL: String = "info", Range::Text("a level or a tracing filter"), Raccoon,
        "error, warn, info, debug or trace; or a tracing filter such as `raccoon=debug,rdkafka=info`.";
}

/// Looks a key up by its environment name.
pub fn spec(env: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.env == env)
}

/// The configuration reference as a Markdown table, one row per key, as README.md carries it
/// between the `config-reference` markers (a test keeps the two identical).
pub fn markdown_reference() -> String {
    let mut out = String::from("| Key | Default | Range | Origin | Meaning |\n|---|---|---|---|---|\n");
    for key in KEYS {
        let default = if key.default.is_empty() { "(empty)".to_owned() } else { format!("`{}`", key.default) };
        let origin = match key.origin {
            Origin::Raccoon => "Raccoon",
            Origin::RaccoonChanged => "Raccoon, changed",
            Origin::New => "new",
        };
        let range = key.range.describe().replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {default} | {range} | {origin} | {} |\n",
            key.env,
            key.doc.replace('|', "\\|")
        ));
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
