//! End-to-end throughput and ack latency: WebSocket clients → the real server binary → the local
//! Kafka broker → delivery-confirmed acks (`EVENT_ACK=1`), with metrics off and on (Prometheus
//! and StatsD both enabled, `/metrics` scraped every second). The in-run baseline is a bare
//! rdkafka producer, configured with the server's librdkafka defaults, writing the same events
//! into the same broker as fast as it can: the ceiling one producer gets on this machine.
//!
//! The parts are the ones the tools use: `raccoon-cli ceiling` is the baseline and
//! `raccoon-cli load` the clients (their library code, `raccoon_cli::ceiling::measure` and
//! `raccoon_cli::load::measure`, with the options a user would pass), and the test kit
//! (`raccoon_testkit`) starts the server and the broker.
//!
//! Run: `cargo bench --bench throughput`. It starts the broker with `scripts/kafka.sh start` if
//! nothing listens on 127.0.0.1:9092, targets only 127.0.0.1, and stops by itself (rounds ×
//! (3 runs × (warm-up + window)), about 2.5 minutes with the defaults). Knobs, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RACCOON_BENCH_SECS` | 10 | measured window per run, seconds |
//! | `RACCOON_BENCH_WARMUP_SECS` | 3 | traffic before the window opens (topics, connections) |
//! | `RACCOON_BENCH_CONNS` | 16 | WebSocket connections (`load -c`) |
//! | `RACCOON_BENCH_WINDOW` | 32 | batches each connection keeps in flight |
//! | `RACCOON_BENCH_EVENTS` | 20 | events per batch |
//! | `RACCOON_BENCH_EVENT_BYTES` | 256 | bytes per event |
//! | `RACCOON_BENCH_ROUNDS` | 3 | repetitions; "off" and "on" alternate order between rounds |
//! | `RACCOON_BENCH_THREADS` | 2 | the load generator's runtime threads (`load --threads`) |
//!
//! The server's CPU time is read from `/proc` over the window (`load --server-pid`), so the cost
//! of metrics shows as CPU per event even when the machine (clients, broker and server share it)
//! caps throughput.
//! Record results in `perf-results/` as its README describes.

#![allow(missing_docs)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raccoon_cli::{ceiling, load, parse_args};
use raccoon_testkit::{get_from, shared_kafka, TestServer};

/// Event types of every batch, in runs: two topics per run.
const TYPES: &str = "click,page";

#[derive(Debug, Clone, Copy)]
struct Settings {
    secs: u64,
    warmup_secs: u64,
    conns: usize,
    window: usize,
    events: usize,
    event_bytes: usize,
    rounds: usize,
    threads: usize,
}

impl Settings {
    fn from_env() -> Settings {
        fn get(name: &str, default: u64) -> u64 {
            match std::env::var(name) {
                Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
                Err(_) => default,
            }
        }
        let s = Settings {
            secs: get("RACCOON_BENCH_SECS", 10),
            warmup_secs: get("RACCOON_BENCH_WARMUP_SECS", 3),
            conns: get("RACCOON_BENCH_CONNS", 16) as usize,
            window: get("RACCOON_BENCH_WINDOW", 32) as usize,
            events: get("RACCOON_BENCH_EVENTS", 20) as usize,
            event_bytes: get("RACCOON_BENCH_EVENT_BYTES", 256) as usize,
            rounds: get("RACCOON_BENCH_ROUNDS", 3) as usize,
            threads: get("RACCOON_BENCH_THREADS", 2) as usize,
        };
        assert!(s.secs >= 1 && s.secs <= 600, "RACCOON_BENCH_SECS must be 1..=600");
        assert!(s.conns >= 1 && s.conns <= 1000, "RACCOON_BENCH_CONNS must be 1..=1000");
        assert!(
            s.window >= 1 && s.window <= 128,
            "RACCOON_BENCH_WINDOW must be 1..=128 (the server's in-flight limit)"
        );
        assert!(s.events >= 1 && s.event_bytes >= 1, "batches need events and events need bytes");
        assert!(s.rounds >= 1 && s.rounds <= 20, "RACCOON_BENCH_ROUNDS must be 1..=20");
        assert!(s.threads >= 1 && s.threads <= 256, "RACCOON_BENCH_THREADS must be 1..=256");
        s
    }
}

/// What one run measured over its window.
#[derive(Debug)]
struct Run {
    label: &'static str,
    events_per_sec: f64,
    /// Ack latency as the clients saw it (send to reply), milliseconds; none for the baseline.
    latency_ms: Option<[f64; 3]>,
    /// Server CPU seconds per million events acked; none for the baseline.
    cpu_per_million: Option<f64>,
    failures: u64,
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not supported, so say so instead of ignoring them.
    if let Some(arg) = std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        eprintln!("throughput: ignoring argument {arg:?} (configure with RACCOON_BENCH_* variables)");
    }
    let settings = Settings::from_env();
    let kafka = shared_kafka();
    eprintln!("throughput: {settings:?}");
    let mut runs = Vec::new();
    for round in 0..settings.rounds {
        let prefix = raccoon_testkit::unique(&format!("bench-{round}"));
        runs.push(baseline(&settings, kafka, &format!("{prefix}-base")));
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for metrics in order {
            let label = if metrics { "server, metrics on" } else { "server, metrics off" };
            runs.push(server_run(
                &settings,
                kafka,
                label,
                metrics,
                &format!("{prefix}-{}", if metrics { "on" } else { "off" }),
            ));
        }
        for run in &runs[runs.len() - 3..] {
            eprintln!("throughput: round {round}: {run:?}");
        }
    }
    print_table(&settings, &runs);
}

/// The options `load` and `ceiling` share: the batch shape and the measured window.
fn workload(settings: &Settings) -> Vec<String> {
    [
        ("--batch", settings.events.to_string()),
        ("--event-bytes", settings.event_bytes.to_string()),
        ("--types", TYPES.to_owned()),
        ("--duration", settings.secs.to_string()),
        ("--warmup", settings.warmup_secs.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

/// The figure at `path` (`a.b`) of a report, as a number; panics naming it if it is not one.
fn num(report: &serde_json::Value, path: &str) -> f64 {
    path.split('.').fold(report, |v, k| &v[k]).as_f64().unwrap_or_else(|| panic!("no number at {path} in {report:#}"))
}

// ---------------------------------------------------------------------------------------------
// Baseline: `raccoon-cli ceiling`, a bare rdkafka producer with the server's settings.

fn baseline(settings: &Settings, kafka: &str, prefix: &str) -> Run {
    let pattern = format!("{prefix}-%s");
    let mut args = vec!["-b".to_owned(), kafka.to_owned(), "--topic-pattern".to_owned(), pattern];
    args.extend(workload(settings));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let options =
        parse_args::<ceiling::CeilingArgs>("ceiling", &args).unwrap_or_else(|e| panic!("ceiling {args:?}: {e}"));
    let report = ceiling::measure(options).unwrap_or_else(|code| panic!("ceiling {args:?} failed: {code:?}"));
    Run {
        label: "bare rdkafka producer",
        events_per_sec: num(&report, "events_per_sec"),
        latency_ms: None,
        cpu_per_million: None,
        failures: num(&report, "errors") as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// The server under load: `raccoon-cli load`.

fn start_server(kafka: &str, prefix: &str, statsd: Option<&str>) -> TestServer {
    let pattern = format!("{prefix}-%s");
    let mut env = vec![("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", pattern.as_str())];
    if let Some(statsd) = statsd {
        env.extend([
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
            ("METRIC_STATSD_ENABLED", "true"),
            ("METRIC_STATSD_ADDRESS", statsd),
            ("METRIC_STATSD_FLUSH_PERIOD_MS", "1000"),
        ]);
    }
    TestServer::start(env!("CARGO_BIN_EXE_raccoon"), kafka, &env)
}

fn server_run(settings: &Settings, kafka: &str, label: &'static str, metrics: bool, prefix: &str) -> Run {
    // A StatsD sink nobody reads: the server's sends cost what they cost; the kernel drops
    // packets once the socket buffer is full.
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind StatsD sink");
    let statsd_addr = statsd.local_addr().unwrap().to_string();
    let mut server = start_server(kafka, prefix, metrics.then_some(statsd_addr.as_str()));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = server.addresses.prometheus.map(|addr| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                scrape(addr);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    });
    let (addr, pid) = (server.addr.to_string(), server.pid().to_string());
    let mut args: Vec<String> = [
        ("-a", addr.as_str()),
        ("-c", &settings.conns.to_string()),
        ("-k", &settings.window.to_string()),
        ("--threads", &settings.threads.to_string()),
        ("--timeout", "30"),
        ("--server-pid", pid.as_str()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()])
    .collect();
    args.extend(workload(settings));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let options = parse_args::<load::LoadArgs>("load", &args).unwrap_or_else(|e| panic!("load {args:?}: {e}"));
    let report = load::measure(options).unwrap_or_else(|code| panic!("load {args:?} failed: {code:?}"));
    stop.store(true, Ordering::Relaxed);
    if let Some(scraper) = scraper {
        scraper.join().expect("scraper");
    }
    server.terminate();
    let acked = num(&report, "acked_events");
    let cpu = num(&report, "server.cpu_seconds");
    Run {
        label,
        events_per_sec: num(&report, "acked_events_per_sec"),
        latency_ms: Some(["p50_ms", "p99_ms", "p999_ms"].map(|q| num(&report, &format!("ack_latency.{q}")))),
        cpu_per_million: (acked > 0.0).then(|| cpu / acked * 1e6),
        failures: num(&report, "errors") as u64,
    }
}

fn scrape(addr: SocketAddr) {
    let _ = get_from(addr, "/metrics");
}

// ---------------------------------------------------------------------------------------------

fn print_table(settings: &Settings, runs: &[Run]) {
    println!();
    println!(
        "{} connections × {} batches in flight, {} events × {} B per batch, EVENT_ACK=1, {} s window after {} s warm-up",
        settings.conns, settings.window, settings.events, settings.event_bytes, settings.secs, settings.warmup_secs
    );
    println!();
    println!("| Run | Events/s | vs bare producer | Ack p50 ms | Ack p99 ms | Ack p99.9 ms | Server CPU s per 1M events | Failed replies |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, run) in runs.iter().enumerate() {
        // Each round starts with its baseline.
        let base = &runs[i - i % 3];
        let [p50, p99, p999] =
            run.latency_ms.map_or(["-".to_owned(), "-".to_owned(), "-".to_owned()], |l| l.map(|v| format!("{v:.2}")));
        let cpu = run.cpu_per_million.map_or("-".to_owned(), |c| format!("{c:.2}"));
        println!(
            "| {} (round {}) | {:.0} | {:.0}% | {p50} | {p99} | {p999} | {cpu} | {} |",
            run.label,
            i / 3,
            run.events_per_sec,
            100.0 * run.events_per_sec / base.events_per_sec,
            run.failures
        );
    }
    println!();
    println!("Medians over {} round(s):", settings.rounds);
    println!();
    println!("| Run | Events/s | vs bare producer | Server CPU s per 1M events |");
    println!("|---|---|---|---|");
    for label in ["bare rdkafka producer", "server, metrics off", "server, metrics on"] {
        let mut rate = Vec::new();
        let mut share = Vec::new();
        let mut cpu = Vec::new();
        for (i, run) in runs.iter().enumerate().filter(|(_, r)| r.label == label) {
            rate.push(run.events_per_sec);
            share.push(100.0 * run.events_per_sec / runs[i - i % 3].events_per_sec);
            cpu.extend(run.cpu_per_million);
        }
        let cpu = if cpu.is_empty() { "-".to_owned() } else { format!("{:.2}", median(&mut cpu)) };
        println!("| {label} | {:.0} | {:.0}% | {cpu} |", median(&mut rate), median(&mut share));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}
