//! The `raccoon` binary: command line, configuration, wiring the crates together, signals, the
//! logger and the Prometheus exporter's thread. Nothing else.

mod announce;
mod logging;
mod prometheus;
mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;

use raccoon_config::keys::{self, KAFKA_BOOTSTRAP_SERVERS, KEYS};
use raccoon_config::{Config, Sources};
use raccoon_core::handoff::ShardMsg;
use raccoon_core::health::Health;
use raccoon_metrics::Metrics;
use raccoon_publish::{PublisherKind, Publishers};
use raccoon_shard::ServerConfig;

/// Capacity of each shard's inbox (delivery acks). A full inbox makes the publisher's poll
/// thread wait, never the shard.
const INBOX_CAPACITY: usize = 64 * 1024;

/// Raccoon: WebSocket clickstream ingestion into Kafka.
///
/// Configuration comes from built-in defaults, then the YAML file (-c), then environment
/// variables with Raccoon's names (SERVER_WEBSOCKET_PORT, EVENT_ACK, PUBLISHER_KAFKA_CLIENT_*,
/// ...), then these flags; later sources win. `--print-config` shows the result.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = "Once serving, it prints one line on stdout, a JSON object with its pid and bound addresses:\n  {\"raccoon\":\"listening\",\"pid\":123,\"http\":\"127.0.0.1:8080\",\"grpc\":\"127.0.0.1:8081\",\"prometheus\":null}\n(prometheus: null when disabled); --addresses-file writes the same line to a file.\n\nEvery key: README.md, section Configuration."
)]
struct Cli {
    /// Accepted for compatibility with `raccoon server`; there is nothing else to run.
    #[arg(value_parser = ["server"], hide = true)]
    command: Option<String>,

    /// YAML configuration file (keys as in raccoon.example.yaml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set any key, e.g. `--set EVENT_ACK=1` or `--set publisher.kafka.client.linger_ms=10`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    set: Vec<(String, String)>,

    /// HTTP port (SERVER_WEBSOCKET_PORT); 0 picks a free one.
    #[arg(long)]
    port: Option<u16>,

    /// Number of shards (SERVER_SHARDS); 0 means one per CPU.
    #[arg(long)]
    shards: Option<usize>,

    /// CPUs for the shards (SERVER_CPU_LIST), e.g. 0-3,6.
    #[arg(long, value_name = "LIST")]
    cpu_list: Option<String>,

    /// Kafka bootstrap servers (PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS).
    #[arg(long, value_name = "HOST:PORT,...")]
    bootstrap_servers: Option<String>,

    /// 0: ack batches on receipt; 1: ack after Kafka delivery (EVENT_ACK).
    #[arg(long, value_name = "0|1")]
    event_ack: Option<String>,

    /// Log level or tracing filter (LOG_LEVEL).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Print the effective configuration, with where each value came from, and exit.
    #[arg(long)]
    print_config: bool,

    /// Once serving, also write the addresses line printed on stdout to FILE (written under a
    /// temporary name next to it, then renamed): one JSON object, e.g.
    /// {"raccoon":"listening","pid":123,"http":"127.0.0.1:8080","grpc":"127.0.0.1:8081","prometheus":null}.
    #[arg(long, value_name = "FILE")]
    addresses_file: Option<PathBuf>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

impl Cli {
    fn settings(&self) -> Vec<(String, String)> {
        let mut out = self.set.clone();
        let flags = [
            (keys::SERVER_WEBSOCKET_PORT.env(), self.port.map(|v| v.to_string())),
            (keys::SERVER_SHARDS.env(), self.shards.map(|v| v.to_string())),
            (keys::SERVER_CPU_LIST.env(), self.cpu_list.clone()),
            (KAFKA_BOOTSTRAP_SERVERS, self.bootstrap_servers.clone()),
            (keys::EVENT_ACK.env(), self.event_ack.clone()),
            (keys::LOG_LEVEL.env(), self.log_level.clone()),
        ];
        out.extend(flags.into_iter().filter_map(|(key, v)| v.map(|v| (key.to_owned(), v))));
        out
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("raccoon: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let file = match &cli.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            Some((path.display().to_string(), text))
        }
        None => None,
    };
    let available_cpus =
        core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|id| id.id).collect()).unwrap_or_default();
    let sources =
        Sources { file, env: std::env::vars().collect::<BTreeMap<_, _>>(), cli: cli.settings(), available_cpus };
    let config = Config::build(&sources)?;
    if cli.print_config {
        print_config(&config);
        return Ok(ExitCode::SUCCESS);
    }
    logging::init(&config.log_level, config.log_format)?;
    check_locked_memory(&config.server)?;
    let tls = tls::PortsTls::load(&config.tls)?;

    // Signals are blocked from here on for every thread spawned later, and handled below.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2]).context("cannot install signal handlers")?;

    let server = &config.server;
    let listen = server.bind.resolve();
    let shard_count = server.shard_cpus.len();
    let http = listen.reuse_port(server.port, shard_count, keys::SERVER_WEBSOCKET_PORT.env())?;
    let grpc = listen.reuse_port(server.grpc_port, shard_count, keys::SERVER_GRPC_PORT.env())?;
    let prometheus = match &config.metrics.prometheus {
        Some((port, _)) => Some(listen.single(*port, keys::METRIC_PROMETHEUS_PORT.env())?),
        None => None,
    };
    let addr = http[0].local_addr().context("cannot read the bound address")?;
    let grpc_addr = grpc[0].local_addr().context("cannot read the bound gRPC address")?;
    let listeners: Vec<_> = http.into_iter().zip(grpc).collect();
    let (inbox_txs, inbox_rxs): (Vec<_>, Vec<_>) =
        (0..listeners.len()).map(|_| async_channel::bounded(INBOX_CAPACITY)).unzip();
    let metrics = Metrics::start(&config.metrics)?;
    let mut prometheus_addr = None;
    if let (Some(listener), Some((_, path)), Some(registry)) =
        (prometheus, &config.metrics.prometheus, metrics.registry())
    {
        let addr = listener.local_addr().context("cannot read the Prometheus address")?;
        prometheus_addr = Some(addr);
        let (path, registry, prometheus_tls) = (path.clone(), Arc::clone(registry), tls.prometheus.clone());
        let scheme = if prometheus_tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, "Prometheus metrics on {scheme}://{addr}{path}");
        std::thread::Builder::new()
            .name("raccoon-prometheus".into())
            .spawn(move || prometheus::serve(listener, path, registry, prometheus_tls))
            .context("cannot start the Prometheus thread")?;
    }
    // The log publisher needs no broker: nothing to check, and readiness does not wait for one.
    let health = match config.publisher.kind {
        PublisherKind::Kafka => {
            let health = Arc::new(Health::default());
            raccoon_publish::health::start_checker(&health, &config.publisher.kafka)?;
            health
        }
        PublisherKind::Log => Arc::new(Health::without_broker()),
    };
    let (publishers, handoff) =
        Publishers::start(&config.publisher, &config.topic_pattern, inbox_txs.clone(), &metrics.factory(), &health)?;
    let shards = raccoon_shard::start(
        &config.shard_config(),
        &tls.listeners,
        listeners,
        inbox_rxs,
        &handoff,
        &metrics.factory(),
        &health,
    )?;
    drop(handoff);
    tracing::info!(%grpc_addr, "gRPC on {grpc_addr}");
    tracing::info!(
        %addr,
        shards = shards.len(),
        cpus = ?config.server.shard_cpus,
        publisher = %config.publisher.kind,
        publishers = config.publisher.threads,
        ack = ?config.ack_mode,
        kafka = %match config.publisher.kind {
            PublisherKind::Kafka => config.publisher.kafka.get("bootstrap.servers").map_or("", String::as_str),
            PublisherKind::Log => "none",
        },
        "raccoon listening on {addr}"
    );
    announce::announce(addr, grpc_addr, prometheus_addr, cli.addresses_file.as_deref())?;

    // SIGUSR2 is a fault drill (a fatal producer error: README, "What a client sees when Kafka is
    // down"); SIGHUP reloads the TLS files when a port has TLS (without, it stops, as Raccoon's
    // did); any other signal stops.
    let signal = signals.forever().find(|&signal| match signal {
        SIGUSR2 => {
            tracing::warn!("SIGUSR2: fault drill, raising a fatal error on every Kafka producer");
            publishers.raise_fatal_error();
            false
        }
        SIGHUP if tls.any() => {
            tls.reload();
            false
        }
        _ => true,
    });
    tracing::info!(?signal, "shutting down: closing connections, then draining the publishers");
    // A second signal during shutdown means "now".
    let handle = signals.handle();
    std::thread::spawn(move || {
        if signals.forever().any(|signal| signal != SIGUSR2) {
            eprintln!("raccoon: second signal, exiting immediately");
            std::process::exit(130);
        }
    });

    health.start_draining();
    for inbox in &inbox_txs {
        let _ = inbox.send_blocking(ShardMsg::Shutdown);
    }
    let mut failed = false;
    for shard in shards {
        if let Err(error) = shard.join() {
            tracing::error!(%error, "shard failed");
            failed = true;
        }
    }
    drop(inbox_txs);
    publishers.shutdown();
    metrics.shutdown();
    handle.close();
    tracing::info!("stopped");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn print_config(config: &Config) {
    for (key, value, source) in &config.effective {
        println!("{key}={value}    # {source}");
    }
    println!("# librdkafka properties in effect:");
    for (key, value) in &config.publisher.kafka {
        println!("#   {key}={value}");
    }
    let known = KEYS.len();
    println!("# {known} keys; see README.md for their meaning");
}

/// glommio refuses to start an executor when RLIMIT_MEMLOCK is under 512 KiB; say so plainly
/// instead of failing inside a shard.
fn check_locked_memory(server: &ServerConfig) -> anyhow::Result<()> {
    const GLOMMIO_FLOOR: u64 = 512 << 10;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct into the valid, writable `limit`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < GLOMMIO_FLOOR {
        anyhow::bail!(
            "locked memory limit (ulimit -l) is {} KiB; glommio needs at least 512 KiB per process (plus SERVER_IO_MEMORY_BYTES={} per shard without CAP_IPC_LOCK). Raise it, e.g. `ulimit -l 8192` or LimitMEMLOCK= in systemd",
            limit.rlim_cur / 1024,
            server.io_memory_bytes
        );
    }
    Ok(())
}
