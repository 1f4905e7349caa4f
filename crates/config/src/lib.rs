//! Configuration: defaults < YAML file (`-c FILE`) < environment (Raccoon's names) < CLI flags,
//! merged once at startup into a validated, immutable [`Config`] of each component's settings
//! (those types live next to the code that reads them; this crate is the one that knows key names).
//!
//! Every source is flattened to Raccoon's environment-variable names first (YAML path
//! `server.websocket.port` and flag `--set server.websocket.port=1` both become
//! `SERVER_WEBSOCKET_PORT`), so precedence, unknown-key detection and error messages work the
//! same for all of them. The environment is passed in as a map, so tests stay hermetic.
//!
//! Departure from the style guide's serde `FileConfig`: Raccoon's contract is its flat key
//! space, and its YAML paths map onto it mechanically; one key table ([`keys::KEYS`]) is simpler
//! than keeping a nested struct, the env names and the docs in step by hand. Values are read only
//! through the table's typed constants ([`keys::Key`]), so a key named here exists.

pub mod keys;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use thiserror::Error;

use keys::{self as k, Key, Value, KAFKA_CLIENT_PREFIX, KEYS};
use raccoon_core::topic::TopicPattern;
use raccoon_metrics::MetricsConfig;
use raccoon_protocol::cors::CorsConfig;
use raccoon_protocol::identity::IdentityRules;
use raccoon_protocol::origin::OriginList;
use raccoon_protocol::routing::UpgradeOrigins;
use raccoon_publish::{PublisherConfig, PublisherKind, RecordKey, Records};
use raccoon_rt::listen::BindAddress;
use raccoon_rt::tls::{ClientAuth, TlsSource};
use raccoon_shard::{AckMode, ServerConfig, ShardConfig};

/// Where a configuration value came from (for messages and `--print-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The YAML file.
    File(String),
    /// An environment variable.
    Env,
    /// A command-line flag.
    Cli,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {path}"),
            Source::Env => f.write_str("environment"),
            Source::Cli => f.write_str("command line"),
        }
    }
}

/// A configuration problem. Each names the key, the value and where it came from.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The YAML file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The YAML file is not valid YAML, or not a mapping.
    #[error("cannot parse config file {path}: {error}")]
    Yaml {
        /// The file.
        path: String,
        /// What is wrong.
        error: String,
    },
    /// A key this server does not know.
    #[error("unknown configuration key {key} (from {from})")]
    UnknownKey {
        /// The key, as given (YAML path or flag).
        key: String,
        /// Where it was given.
        from: Source,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for {key} (from {from}): {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// Where it came from.
        from: Source,
        /// What is expected.
        reason: String,
    },
}

/// How log lines look (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The TLS files of each port; `None`: the port is cleartext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPorts {
    /// The HTTP port (`SERVER_TLS_*`).
    pub http: Option<TlsSource>,
    /// The gRPC port (`SERVER_GRPC_TLS_*`, else `SERVER_TLS_*`).
    pub grpc: Option<TlsSource>,
    /// The Prometheus port (`METRIC_PROMETHEUS_TLS_*`), when Prometheus is on.
    pub prometheus: Option<TlsSource>,
}

/// The validated configuration. Immutable after startup; `main` hands each component its own
/// settings from it ([`Config::shard_config`], [`Config::publisher`], [`Config::metrics`]), never the whole.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP port and shards.
    pub server: ServerConfig,
    /// Publisher threads and librdkafka.
    pub publisher: PublisherConfig,
    /// `EVENT_ACK`.
    pub ack_mode: AckMode,
    /// `EVENT_DISTRIBUTION_PUBLISHER_PATTERN`, parsed.
    pub topic_pattern: TopicPattern,
    /// `LOG_LEVEL`.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `METRIC_*`.
    pub metrics: MetricsConfig,
    /// `SERVER_TLS_*`, `SERVER_GRPC_TLS_*`, `METRIC_PROMETHEUS_TLS_*`: the files `main` loads.
    pub tls: TlsPorts,
    /// Every effective value and its source, for `--print-config`.
    pub effective: Vec<(String, String, Source)>,
}

impl Config {
    /// What the shards need of it.
    pub fn shard_config(&self) -> ShardConfig {
        ShardConfig { server: self.server.clone(), ack_mode: self.ack_mode, topic_pattern: self.topic_pattern.clone() }
    }
}

/// The raw inputs to [`Config::build`].
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `(path, contents)` of the YAML file, if one was given.
    pub file: Option<(String, String)>,
    /// The process environment (or a test's stand-in).
    pub env: BTreeMap<String, String>,
    /// `KEY=VALUE` pairs from the command line, in order (later wins).
    pub cli: Vec<(String, String)>,
    /// CPUs this process may run on (its affinity mask), for the default shard placement.
    pub available_cpus: Vec<usize>,
}

/// Turns `server.websocket.port`, `server-websocket-port` or `SERVER_WEBSOCKET_PORT` into the
/// canonical `SERVER_WEBSOCKET_PORT`.
pub fn canonical_key(key: &str) -> String {
    key.trim()
        .chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn is_known(key: &str) -> bool {
    keys::spec(key).is_some() || (key.starts_with(KAFKA_CLIENT_PREFIX) && key.len() > KAFKA_CLIENT_PREFIX.len())
}

/// Flattens a YAML document into `(CANONICAL_KEY, text)` pairs. Lists become comma-separated.
fn flatten_yaml(path: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let yaml_err = |error: String| ConfigError::Yaml { path: path.to_owned(), error };
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| yaml_err(e.to_string()))?;
    let mut out = Vec::new();
    match doc {
        serde_yaml::Value::Null => {}
        serde_yaml::Value::Mapping(_) => flatten_value("", &doc, &mut out).map_err(yaml_err)?,
        _ => return Err(yaml_err("the top level must be a mapping of keys".to_owned())),
    }
    Ok(out)
}

fn flatten_value(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<(String, String)>) -> Result<(), String> {
    use serde_yaml::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let k = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported key {other:?} under {prefix:?}")),
                };
                let key = if prefix.is_empty() { canonical_key(&k) } else { format!("{prefix}_{}", canonical_key(&k)) };
                flatten_value(&key, v, out)?;
            }
        }
        Value::Sequence(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(scalar_text(item).ok_or_else(|| format!("{prefix}: lists may hold only plain values"))?);
            }
            out.push((prefix.to_owned(), parts.join(",")));
        }
        scalar => {
            out.push((prefix.to_owned(), scalar_text(scalar).ok_or_else(|| format!("{prefix}: unsupported value"))?))
        }
    }
    Ok(())
}

fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value;
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => scalar_text(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Parses a CPU list such as `0-3,6`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("expected a CPU list such as 0-3,6; {part:?} is not one");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = cpus.iter().find(|c| !seen.insert(**c)) {
        return Err(format!("CPU {dup} is listed twice"));
    }
    Ok(cpus)
}

/// The merged raw values, read through the typed [`Key`] constants; errors are
/// [`ConfigError::Invalid`] naming the key, value and source.
struct Raw {
    values: BTreeMap<String, (String, Source)>,
    /// The keys read so far (a test asserts that building reads every key).
    read: RefCell<BTreeSet<&'static str>>,
}

impl Raw {
    /// Defaults < file < environment < flags, each key canonical and known.
    fn merge(sources: &Sources) -> Result<Raw, ConfigError> {
        let mut values: BTreeMap<String, (String, Source)> =
            KEYS.iter().map(|k| (k.env.to_owned(), (k.default.to_owned(), Source::Default))).collect();

        if let Some((path, text)) = &sources.file {
            for (key, value) in flatten_yaml(path, text)? {
                let source = Source::File(path.clone());
                if !is_known(&key) {
                    return Err(ConfigError::UnknownKey { key, from: source });
                }
                values.insert(key, (value, source));
            }
        }
        for (key, value) in &sources.env {
            if is_known(key) {
                values.insert(key.clone(), (value.clone(), Source::Env));
            }
        }
        for (key, value) in &sources.cli {
            let key = canonical_key(key);
            if !is_known(&key) {
                return Err(ConfigError::UnknownKey { key, from: Source::Cli });
            }
            values.insert(key, (value.clone(), Source::Cli));
        }
        Ok(Raw { values, read: RefCell::default() })
    }

    /// The key's text, trimmed, and where it came from.
    fn text<T>(&self, key: Key<T>) -> (&str, &Source) {
        let (value, source) = self.values.get(key.env()).expect("invariant: every key in KEYS has a default");
        (value.trim(), source)
    }

    /// The key's value as its type, checked against its range.
    fn read<T: Value>(&self, key: Key<T>) -> Result<T, ConfigError> {
        self.read.borrow_mut().insert(key.env());
        T::parse(self.text(key).0, &key.spec().range).map_err(|reason| self.invalid(key, reason))
    }

    fn invalid<T>(&self, key: Key<T>, reason: impl Into<String>) -> ConfigError {
        let (value, source) = self.text(key);
        ConfigError::Invalid {
            key: key.env().to_owned(),
            value: value.to_owned(),
            from: source.clone(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Merges and validates all sources.
    pub fn build(sources: &Sources) -> Result<Config, ConfigError> {
        Self::from_raw(&Raw::merge(sources)?, &sources.available_cpus)
    }

    fn from_raw(raw: &Raw, available_cpus: &[usize]) -> Result<Config, ConfigError> {
        let bind = BindAddress::parse(&raw.read(k::SERVER_BIND_ADDRESS)?).map_err(|_| {
            raw.invalid(k::SERVER_BIND_ADDRESS,
                "expected nothing (IPv6 and IPv4), or an IP address such as 0.0.0.0 (IPv4 only), :: (IPv6 only) or 127.0.0.1",
            )
        })?;
        let port = raw.read(k::SERVER_WEBSOCKET_PORT)?;

        let shard_cpus = resolve_shard_cpus(raw, available_cpus)?;
        let max_conn = raw.read(k::SERVER_WEBSOCKET_MAX_CONN)?;

        let conn_id_header = raw.read(k::SERVER_WEBSOCKET_CONN_ID_HEADER)?;
        if conn_id_header.is_empty() || http_token(&conn_id_header).is_err() {
            return Err(
                raw.invalid(k::SERVER_WEBSOCKET_CONN_ID_HEADER, "expected an HTTP header name such as X-User-ID")
            );
        }
        let group_header = raw.read(k::SERVER_WEBSOCKET_CONN_GROUP_HEADER)?;
        if !group_header.is_empty() && http_token(&group_header).is_err() {
            return Err(raw.invalid(k::SERVER_WEBSOCKET_CONN_GROUP_HEADER, "expected an HTTP header name or nothing"));
        }

        let ping_interval = raw.read(k::SERVER_WEBSOCKET_PING_INTERVAL_MS)?;
        let pong_wait = raw.read(k::SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS)?;
        // Any pair works: the pong wait counts from the first ping a client leaves unanswered,
        // so a client that answers is never dropped, whatever the ping interval.
        let read_buffer_bytes = raw.read(k::SERVER_WEBSOCKET_READ_BUFFER_SIZE)?;
        let write_buffer_bytes = raw.read(k::SERVER_WEBSOCKET_WRITE_BUFFER_SIZE)?;
        // Validated for compatibility even though it has no effect.
        raw.read(k::SERVER_WEBSOCKET_PINGER_SIZE)?;
        let dedup_window = raw.read(k::SERVER_BATCH_DEDUP_WINDOW)?;
        let dedup_window = raw.read(k::SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED)?.then_some(dedup_window);
        let cors = cors_config(raw, &conn_id_header, &group_header)?;
        let upgrade_origins = upgrade_origins(raw, cors.as_ref())?;
        let query_param = |key: Key<String>| -> Result<Option<String>, ConfigError> {
            let name = raw.read(key)?;
            if name.contains(['&', '=', '#', ' ']) {
                return Err(raw.invalid(key, "expected a query parameter name such as user_id, or nothing"));
            }
            Ok((!name.is_empty()).then_some(name))
        };
        let identity = IdentityRules {
            id_header: conn_id_header,
            group_header: (!group_header.is_empty()).then_some(group_header),
            group_default: raw.read(k::SERVER_WEBSOCKET_CONN_GROUP_DEFAULT)?,
            id_query_param: query_param(k::SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM)?,
            group_query_param: query_param(k::SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM)?,
            subprotocol: raw.read(k::SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED)?,
            anonymous: raw.read(k::SERVER_WEBSOCKET_CONN_ID_ANONYMOUS)?,
        };

        let server = ServerConfig {
            bind,
            port,
            max_conn,
            read_buffer_bytes,
            write_buffer_bytes,
            identity,
            ping_interval,
            pong_wait,
            write_wait: raw.read(k::SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS)?,
            upgrade_origins,
            cors,
            max_frame_bytes: raw.read(k::SERVER_WEBSOCKET_MAX_FRAME_BYTES)?,
            max_inflight_batches: raw.read(k::SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES)?,
            dedup_window,
            shard_cpus,
            io_memory_bytes: raw.read(k::SERVER_IO_MEMORY_BYTES)?,
            spin_before_park: match raw.read(k::SERVER_SPIN_BEFORE_PARK_US)? {
                0 => None,
                micros => Some(Duration::from_micros(micros)),
            },
            drain_timeout: raw.read(k::WORKER_BUFFER_FLUSH_TIMEOUT_MS)?,
            grpc_port: raw.read(k::SERVER_GRPC_PORT)?,
            grpc_max_message_bytes: raw.read(k::SERVER_GRPC_MAX_MESSAGE_BYTES)?,
            grpc_max_concurrent_streams: raw.read(k::SERVER_GRPC_MAX_CONCURRENT_STREAMS)?,
            max_body_bytes: raw.read(k::SERVER_HTTP_MAX_BODY_BYTES)?,
            // hyper's smallest read buffer is 8 KiB, and the head must fit in it.
            http_max_header_bytes: raw.read(k::SERVER_HTTP_MAX_HEADER_BYTES)?,
            http_max_headers: raw.read(k::SERVER_HTTP_MAX_HEADERS)?,
            http_header_timeout: raw.read(k::SERVER_HTTP_HEADER_TIMEOUT_MS)?,
            body_timeout: raw.read(k::SERVER_HTTP_BODY_TIMEOUT_MS)?,
            http_idle_timeout: raw.read(k::SERVER_HTTP_IDLE_TIMEOUT_MS)?,
        };

        // Choices arrive checked against their key's words, in lower case
        // (`every_choice_of_every_key_is_accepted` reaches each arm).
        let ack_mode = match raw.read(k::EVENT_ACK)?.as_str() {
            "0" => AckMode::OnReceipt,
            "1" => AckMode::OnDelivery,
            other => unreachable!("invariant: EVENT_ACK's range has no {other:?}"),
        };
        let topic_pattern = TopicPattern::parse(&raw.read(k::EVENT_DISTRIBUTION_PUBLISHER_PATTERN)?)
            .map_err(|e| raw.invalid(k::EVENT_DISTRIBUTION_PUBLISHER_PATTERN, e.to_string()))?;

        let kind = match raw.read(k::PUBLISHER_TYPE) {
            Err(_) if ["pubsub", "kinesis"].iter().any(|t| t.eq_ignore_ascii_case(raw.text(k::PUBLISHER_TYPE).0)) => {
                return Err(raw.invalid(
                    k::PUBLISHER_TYPE,
                    "expected kafka or log (pubsub and kinesis are Raccoon publishers this server does not have)",
                ))
            }
            kind => match kind?.as_str() {
                "kafka" => PublisherKind::Kafka,
                "log" => PublisherKind::Log,
                other => unreachable!("invariant: PUBLISHER_TYPE's range has no {other:?}"),
            },
        };
        raw.read(k::WORKER_POOL_SIZE)?;
        raw.read(k::PUBLISHER_KAFKA_DELIVERY_CHANNEL_SIZE)?;

        let kafka_pairs = raw
            .values
            .iter()
            .filter_map(|(key, (value, _))| key.strip_prefix(KAFKA_CLIENT_PREFIX).map(|p| (p, value.as_str())));
        let kafka = raccoon_publish::kafka::client_properties(kafka_pairs);

        let publisher = PublisherConfig {
            kind,
            threads: raw.read(k::PUBLISHER_KAFKA_PRODUCER_THREADS)?,
            queue_capacity: raw.read(k::WORKER_BUFFER_CHANNEL_SIZE)?,
            flush_timeout: raw.read(k::PUBLISHER_KAFKA_FLUSH_INTERVAL_MS)?,
            batch_deadline: raw.read(k::PUBLISHER_KAFKA_BATCH_DEADLINE_MS)?,
            queue_full_wait: raw.read(k::PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS)?,
            records: records_config(raw)?,
            kafka,
        };

        let metrics = metrics_config(raw)?;
        let tls = tls_config(raw, metrics.prometheus.is_some())?;
        let log_format = match raw.read(k::LOG_FORMAT)?.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => unreachable!("invariant: LOG_FORMAT's range has no {other:?}"),
        };

        let effective =
            raw.values.iter().map(|(key, (value, from))| (key.clone(), value.clone(), from.clone())).collect();

        Ok(Config {
            server,
            publisher,
            ack_mode,
            topic_pattern,
            log_level: raw.read(k::LOG_LEVEL)?,
            log_format,
            metrics,
            tls,
            effective,
        })
    }
}

/// `PUBLISHER_KAFKA_RECORD_*` and `PUBLISHER_DEAD_LETTER_TOPIC`.
fn records_config(raw: &Raw) -> Result<Records, ConfigError> {
    let key = match raw.read(k::PUBLISHER_KAFKA_RECORD_KEY)?.as_str() {
        "none" => RecordKey::None,
        "conn_id" => RecordKey::ConnId,
        "conn_group" => RecordKey::ConnGroup,
        "req_guid" => RecordKey::ReqGuid,
        other => unreachable!("invariant: PUBLISHER_KAFKA_RECORD_KEY's range has no {other:?}"),
    };
    let dead_letter_topic = match raw.read(k::PUBLISHER_DEAD_LETTER_TOPIC)? {
        topic if topic.is_empty() => None,
        topic => {
            let invalid = |why: String| raw.invalid(k::PUBLISHER_DEAD_LETTER_TOPIC, why);
            let pattern = TopicPattern::parse(&topic).map_err(|e| invalid(e.to_string()))?;
            if !pattern.is_static() {
                return Err(invalid("expected one topic name (%s has no meaning here)".to_owned()));
            }
            Some(topic)
        }
    };
    Ok(Records { key, headers: raw.read(k::PUBLISHER_KAFKA_RECORD_HEADERS)?, dead_letter_topic })
}

/// A certificate and key named by `cert` and `key`: both, or neither (`None`).
fn cert_pair(raw: &Raw, cert: Key<String>, key: Key<String>) -> Result<Option<(String, String)>, ConfigError> {
    let (cert_file, key_file) = (raw.read(cert)?, raw.read(key)?);
    match (cert_file.trim(), key_file.trim()) {
        ("", "") => Ok(None),
        (_, "") => Err(raw.invalid(key, format!("expected the private key of {} too", cert.env()))),
        ("", _) => Err(raw.invalid(cert, format!("expected the certificate of {} too", key.env()))),
        (c, k) => Ok(Some((c.to_owned(), k.to_owned()))),
    }
}

/// The TLS files of every port (every key is read, whether its port takes TLS or not).
fn tls_config(raw: &Raw, prometheus: bool) -> Result<TlsPorts, ConfigError> {
    let server = cert_pair(raw, k::SERVER_TLS_CERT_FILE, k::SERVER_TLS_KEY_FILE)?;
    let grpc_own = cert_pair(raw, k::SERVER_GRPC_TLS_CERT_FILE, k::SERVER_GRPC_TLS_KEY_FILE)?;
    let grpc_enabled = raw.read(k::SERVER_GRPC_TLS_ENABLED)?;
    let client_ca = raw.read(k::SERVER_TLS_CLIENT_CA_FILE)?.trim().to_owned();
    let client_auth = match raw.read(k::SERVER_TLS_CLIENT_AUTH)?.as_str() {
        "required" => ClientAuth::Required,
        "optional" => ClientAuth::Optional,
        other => unreachable!("invariant: SERVER_TLS_CLIENT_AUTH's range has no {other:?}"),
    };
    let prometheus_pair = cert_pair(raw, k::METRIC_PROMETHEUS_TLS_CERT_FILE, k::METRIC_PROMETHEUS_TLS_KEY_FILE)?;
    let client_ca = (!client_ca.is_empty()).then(|| std::path::PathBuf::from(client_ca));
    let source =
        |(cert, key): (String, String), keys: [&'static str; 2], client_ca: Option<std::path::PathBuf>| TlsSource {
            cert_file: cert.into(),
            key_file: key.into(),
            client_ca_file: client_ca,
            client_auth,
            keys: [keys[0], keys[1], k::SERVER_TLS_CLIENT_CA_FILE.env()],
        };
    let server_keys = [k::SERVER_TLS_CERT_FILE.env(), k::SERVER_TLS_KEY_FILE.env()];
    let grpc_keys = [k::SERVER_GRPC_TLS_CERT_FILE.env(), k::SERVER_GRPC_TLS_KEY_FILE.env()];
    let grpc = match (grpc_enabled, grpc_own, &server) {
        (false, _, _) => None,
        (true, Some(own), _) => Some(source(own, grpc_keys, client_ca.clone())),
        (true, None, Some(shared)) => Some(source(shared.clone(), server_keys, client_ca.clone())),
        (true, None, None) => None,
    };
    let http = server.map(|pair| source(pair, server_keys, client_ca.clone()));
    if client_ca.is_some() && http.is_none() && grpc.is_none() {
        return Err(raw.invalid(
            k::SERVER_TLS_CLIENT_CA_FILE,
            "client certificates need TLS: set SERVER_TLS_CERT_FILE and SERVER_TLS_KEY_FILE (or the SERVER_GRPC_TLS_ ones)",
        ));
    }
    let prometheus_keys = [k::METRIC_PROMETHEUS_TLS_CERT_FILE.env(), k::METRIC_PROMETHEUS_TLS_KEY_FILE.env()];
    let prometheus = prometheus_pair.filter(|_| prometheus).map(|pair| source(pair, prometheus_keys, None));
    Ok(TlsPorts { http, grpc, prometheus })
}

fn metrics_config(raw: &Raw) -> Result<MetricsConfig, ConfigError> {
    let prometheus = if raw.read(k::METRIC_PROMETHEUS_ENABLED)? {
        let port = raw.read(k::METRIC_PROMETHEUS_PORT)?;
        let path = raw.read(k::METRIC_PROMETHEUS_PATH)?;
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(raw.invalid(k::METRIC_PROMETHEUS_PATH, "expected a path such as /metrics"));
        }
        Some((port, path))
    } else {
        None
    };
    let statsd = if raw.read(k::METRIC_STATSD_ENABLED)? {
        let address = raw.read(k::METRIC_STATSD_ADDRESS)?;
        let address = if address.starts_with(':') { format!("127.0.0.1{address}") } else { address };
        let valid = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid {
            return Err(raw.invalid(k::METRIC_STATSD_ADDRESS, "expected host:port or :port, such as 127.0.0.1:8125"));
        }
        Some((address, raw.read(k::METRIC_STATSD_FLUSH_PERIOD_MS)?))
    } else {
        None
    };
    Ok(MetricsConfig {
        prometheus,
        statsd,
        window: raw.read(k::METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS)?,
        tag_values_max: raw.read(k::METRIC_TAG_VALUES_MAX)?,
    })
}

/// `SERVER_CORS_*`, validated when `SERVER_CORS_ENABLED` is true.
fn cors_config(raw: &Raw, id_header: &str, group_header: &str) -> Result<Option<CorsConfig>, ConfigError> {
    if !raw.read(k::SERVER_CORS_ENABLED)? {
        return Ok(None);
    }
    let allowed_origins = raw.read(k::SERVER_CORS_ALLOWED_ORIGIN)?;
    OriginList::parse(allowed_origins.iter().map(String::as_str))
        .map_err(|e| raw.invalid(k::SERVER_CORS_ALLOWED_ORIGIN, e.to_string()))?;
    let allowed_methods = raw.read(k::SERVER_CORS_ALLOWED_METHODS)?;
    if allowed_methods.is_empty() {
        return Err(raw.invalid(k::SERVER_CORS_ALLOWED_METHODS, "expected at least one method, such as GET,POST"));
    }
    if let Some(bad) = allowed_methods.iter().find(|m| http_token(m).is_err()) {
        return Err(raw.invalid(k::SERVER_CORS_ALLOWED_METHODS, format!("{bad:?} is not an HTTP method")));
    }
    let mut allowed_headers = raw.read(k::SERVER_CORS_ALLOWED_HEADERS)?;
    if let Some(bad) = allowed_headers.iter().find(|h| http_token(h).is_err()) {
        return Err(raw.invalid(k::SERVER_CORS_ALLOWED_HEADERS, format!("{bad:?} is not an HTTP header name")));
    }
    // As Raccoon does, and whatever source set them: the headers its own clients send.
    for name in ["Content-Type", id_header, group_header] {
        if !name.is_empty() && !allowed_headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            allowed_headers.push(name.to_owned());
        }
    }
    Ok(Some(CorsConfig {
        allowed_origins,
        allowed_methods,
        allowed_headers,
        allow_credentials: raw.read(k::SERVER_CORS_ALLOW_CREDENTIALS)?,
        max_age_secs: raw.read(k::SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS)?,
    }))
}

/// `SERVER_WEBSOCKET_CHECK_ORIGIN` and the origins upgrades may come from: their own list, else
/// the CORS origins when CORS is on (`*` or none there: every origin, as for REST), else none
/// besides Raccoon's same-origin rule.
fn upgrade_origins(raw: &Raw, cors: Option<&CorsConfig>) -> Result<UpgradeOrigins, ConfigError> {
    if !raw.read(k::SERVER_WEBSOCKET_CHECK_ORIGIN)? {
        return Ok(UpgradeOrigins::Any);
    }
    let own = raw.read(k::SERVER_WEBSOCKET_ALLOWED_ORIGINS)?;
    let list = if !own.is_empty() {
        OriginList::parse(own.iter().map(String::as_str))
            .map_err(|e| raw.invalid(k::SERVER_WEBSOCKET_ALLOWED_ORIGINS, e.to_string()))?
    } else if let Some(cors) = cors {
        // Validated with the rest of the CORS settings.
        match OriginList::parse(cors.allowed_origins.iter().map(String::as_str)) {
            Ok(list) if list.is_empty() => OriginList::any(),
            Ok(list) => list,
            Err(e) => return Err(raw.invalid(k::SERVER_CORS_ALLOWED_ORIGIN, e.to_string())),
        }
    } else {
        OriginList::default()
    };
    Ok(UpgradeOrigins::Checked(list))
}

fn http_token(name: &str) -> Result<(), ()> {
    // RFC 9110 token characters.
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        Ok(())
    } else {
        Err(())
    }
}

fn resolve_shard_cpus(raw: &Raw, available: &[usize]) -> Result<Vec<usize>, ConfigError> {
    let listed = raw.read(k::SERVER_CPU_LIST)?;
    let cpus = if listed.is_empty() {
        if available.is_empty() {
            return Err(
                raw.invalid(k::SERVER_CPU_LIST, "the CPUs this process may use could not be determined; list them")
            );
        }
        available.to_vec()
    } else {
        let cpus = parse_cpu_list(&listed).map_err(|e| raw.invalid(k::SERVER_CPU_LIST, e))?;
        if cpus.is_empty() {
            return Err(raw.invalid(k::SERVER_CPU_LIST, "lists no CPU"));
        }
        if let Some(cpu) = cpus.iter().find(|c| !available.is_empty() && !available.contains(c)) {
            return Err(raw.invalid(
                k::SERVER_CPU_LIST,
                format!("CPU {cpu} is not available to this process (available: {available:?})"),
            ));
        }
        cpus
    };
    let shards = raw.read(k::SERVER_SHARDS)?;
    match shards {
        0 => Ok(cpus),
        n if n <= cpus.len() => Ok(cpus[..n].to_vec()),
        n => Err(raw.invalid(
            k::SERVER_SHARDS,
            format!("{n} shards need {n} CPUs but SERVER_CPU_LIST has {} ({cpus:?})", cpus.len()),
        )),
    }
}

#[cfg(test)]
mod tests;
