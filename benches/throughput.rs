//! End-to-end throughput and ack latency: WebSocket clients → the real server binary → the local
//! Kafka broker → delivery-confirmed acks (`EVENT_ACK=1`), with metrics off and on (Prometheus
//! and StatsD both enabled, `/metrics` scraped every second). The in-run baseline is a bare
//! rdkafka producer, configured with the server's librdkafka defaults, writing the same events
//! into the same broker as fast as it can: the ceiling one producer gets on this machine.
//!
//! Run: `cargo bench --bench throughput`. It starts the broker with `scripts/kafka.sh start` if
//! nothing listens on 127.0.0.1:9092, targets only 127.0.0.1, and stops by itself (rounds ×
//! (3 runs × (warm-up + window)), about 2.5 minutes with the defaults). Knobs, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RACCOON_BENCH_SECS` | 10 | measured window per run, seconds |
//! | `RACCOON_BENCH_WARMUP_SECS` | 3 | traffic before the window opens (topics, connections) |
//! | `RACCOON_BENCH_CONNS` | 16 | WebSocket connections, one client thread each |
//! | `RACCOON_BENCH_WINDOW` | 32 | batches each connection keeps in flight |
//! | `RACCOON_BENCH_EVENTS` | 20 | events per batch |
//! | `RACCOON_BENCH_EVENT_BYTES` | 256 | bytes per event |
//! | `RACCOON_BENCH_ROUNDS` | 3 | repetitions; "off" and "on" alternate order between rounds |
//!
//! The server's CPU time is read from `/proc` over the window, so the cost of metrics shows as
//! CPU per event even when the machine (clients, broker and server share it) caps throughput.
//! Record results in `perf-results/` as its README describes.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use prost::Message as _;
use raccoon_protocol::pb;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;
use tungstenite::Message;

const KAFKA: &str = "127.0.0.1:9092";
/// Event types of every batch, in runs: two topics per run.
const TYPES: [&str; 2] = ["click", "page"];
/// Longest wait for any one reply or for the server to start or stop.
const LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Settings {
    secs: u64,
    warmup_secs: u64,
    conns: usize,
    window: usize,
    events: usize,
    event_bytes: usize,
    rounds: usize,
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
        };
        assert!(s.secs >= 1 && s.secs <= 600, "RACCOON_BENCH_SECS must be 1..=600");
        assert!(s.conns >= 1 && s.conns <= 1000, "RACCOON_BENCH_CONNS must be 1..=1000");
        assert!(
            s.window >= 1 && s.window <= 128,
            "RACCOON_BENCH_WINDOW must be 1..=128 (the server's in-flight limit)"
        );
        assert!(s.events >= 1 && s.event_bytes >= 1, "batches need events and events need bytes");
        assert!(s.rounds >= 1 && s.rounds <= 20, "RACCOON_BENCH_ROUNDS must be 1..=20");
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
    ensure_kafka();
    eprintln!("throughput: {settings:?}");
    let mut runs = Vec::new();
    for round in 0..settings.rounds {
        let prefix = format!("bench-{}-{round}", unix_nanos());
        runs.push(baseline(&settings, &format!("{prefix}-base")));
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for metrics in order {
            let label = if metrics { "server, metrics on" } else { "server, metrics off" };
            runs.push(server_run(
                &settings,
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

/// Starts the local broker unless something already listens on its port.
fn ensure_kafka() {
    if TcpStream::connect_timeout(&KAFKA.parse().unwrap(), Duration::from_secs(1)).is_ok() {
        return;
    }
    eprintln!("throughput: no broker on {KAFKA}; running scripts/kafka.sh start");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let status = Command::new("bash").arg(script).arg("start").status().expect("run scripts/kafka.sh");
    assert!(status.success(), "scripts/kafka.sh start failed");
}

fn unix_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Event payloads, one per position in a batch, shared by every batch.
fn payloads(settings: &Settings) -> Vec<Bytes> {
    (0..settings.events).map(|i| Bytes::from(vec![(i % 251) as u8; settings.event_bytes])).collect()
}

/// The type of the event at `index`: runs of one type, as clients batch them.
fn type_of(settings: &Settings, index: usize) -> &'static str {
    TYPES[index * TYPES.len() / settings.events]
}

// ---------------------------------------------------------------------------------------------
// Baseline: a bare rdkafka producer.

struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() { &self.delivered } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn baseline(settings: &Settings, prefix: &str) -> Run {
    let mut client = ClientConfig::new();
    for (key, value) in raccoon_publish::kafka::client_properties([("BOOTSTRAP_SERVERS", KAFKA)]) {
        client.set(key, value);
    }
    let context = Counting { delivered: AtomicU64::new(0), failed: AtomicU64::new(0) };
    let producer: Arc<BaseProducer<Counting>> = Arc::new(client.create_with_context(context).expect("producer"));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                producer.poll(Duration::from_millis(100));
            }
        })
    };
    let sender = {
        let (producer, stop, settings) = (Arc::clone(&producer), Arc::clone(&stop), *settings);
        let topics: Vec<String> = TYPES.iter().map(|t| format!("{prefix}-{t}")).collect();
        let payloads = payloads(&settings);
        std::thread::spawn(move || {
            let mut index = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let position = index % settings.events;
                let topic = &topics[TYPES.iter().position(|t| *t == type_of(&settings, position)).unwrap()];
                let record = BaseRecord::<(), [u8], ()>::to(topic).payload(&payloads[position][..]);
                match producer.send(record) {
                    Ok(()) => index += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((error, _)) => panic!("baseline producer: {error}"),
                }
            }
        })
    };
    let delivered = || producer.context().delivered.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(settings.warmup_secs));
    let (start, start_count) = (Instant::now(), delivered());
    std::thread::sleep(Duration::from_secs(settings.secs));
    let (elapsed, count) = (start.elapsed(), delivered() - start_count);
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("baseline sender");
    let _ = producer.flush(LIMIT);
    poller.join().expect("baseline poller");
    Run {
        label: "bare rdkafka producer",
        events_per_sec: count as f64 / elapsed.as_secs_f64(),
        latency_ms: None,
        cpu_per_million: None,
        failures: producer.context().failed.load(Ordering::Relaxed),
    }
}

// ---------------------------------------------------------------------------------------------
// The server under load.

struct Server {
    child: Child,
    addr: SocketAddr,
    prometheus: Option<SocketAddr>,
}

impl Server {
    fn start(prefix: &str, metrics: Option<&str>) -> Server {
        let pattern = format!("{prefix}-%s");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raccoon"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_BIND_ADDRESS", "127.0.0.1")
            .env("SERVER_WEBSOCKET_PORT", "0")
            .env("SERVER_GRPC_PORT", "0")
            .env("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", KAFKA)
            .env("EVENT_ACK", "1")
            .env("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern)
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(statsd) = metrics {
            cmd.env("METRIC_PROMETHEUS_ENABLED", "true")
                .env("METRIC_PROMETHEUS_PORT", "0")
                .env("METRIC_STATSD_ENABLED", "true")
                .env("METRIC_STATSD_ADDRESS", statsd)
                .env("METRIC_STATSD_FLUSH_PERIOD_MS", "1000");
        }
        let mut child = cmd.spawn().expect("spawn raccoon");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" WARN ") || line.contains(" ERROR ") {
                    eprintln!("raccoon: {line}");
                }
                let _ = tx.send(line);
            }
        });
        let (mut addr, mut prometheus) = (None, None);
        let deadline = Instant::now() + LIMIT;
        while addr.is_none() || (metrics.is_some() && prometheus.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("the server did not start within {LIMIT:?}");
            };
            if let Some(rest) = line.split("raccoon listening on ").nth(1) {
                addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.split("Prometheus metrics on http://").nth(1) {
                prometheus = rest.split('/').next().and_then(|a| a.parse().ok());
            }
        }
        Server { child, addr: addr.unwrap(), prometheus }
    }

    /// User plus system CPU time so far, from `/proc/<pid>/stat`.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("read /proc stat");
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        // The kernel's USER_HZ is 100 on every Linux this runs on.
        ticks / 100.0
    }

    /// SIGTERM, then a bounded wait; killed if it does not stop.
    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("throughput: the server did not stop within {LIMIT:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counters the client threads share.
#[derive(Default)]
struct Shared {
    /// Events in batches acknowledged with success.
    acked: AtomicU64,
    /// Replies other than success.
    failures: AtomicU64,
    /// Latencies are recorded while set.
    measuring: AtomicBool,
    /// No new batches once set.
    stop: AtomicBool,
}

fn server_run(settings: &Settings, label: &'static str, metrics: bool, prefix: &str) -> Run {
    // A StatsD sink nobody reads: the server's sends cost what they cost; the kernel drops
    // packets once the socket buffer is full.
    let statsd = UdpSocket::bind("127.0.0.1:0").expect("bind StatsD sink");
    let statsd_addr = statsd.local_addr().unwrap().to_string();
    let server = Server::start(prefix, metrics.then_some(statsd_addr.as_str()));
    let shared = Arc::new(Shared::default());
    let scraper = server.prometheus.map(|addr| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                scrape(addr);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    });
    let payloads = Arc::new(payloads(settings));
    let clients: Vec<_> = (0..settings.conns)
        .map(|index| {
            let (shared, payloads, settings, addr) =
                (Arc::clone(&shared), Arc::clone(&payloads), *settings, server.addr);
            std::thread::spawn(move || client(index, addr, &settings, &payloads, &shared))
        })
        .collect();

    std::thread::sleep(Duration::from_secs(settings.warmup_secs));
    shared.measuring.store(true, Ordering::Relaxed);
    let (start, start_acked, start_cpu) = (Instant::now(), shared.acked.load(Ordering::Relaxed), server.cpu_seconds());
    std::thread::sleep(Duration::from_secs(settings.secs));
    let (elapsed, acked, cpu) =
        (start.elapsed(), shared.acked.load(Ordering::Relaxed) - start_acked, server.cpu_seconds() - start_cpu);
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);

    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for client in clients {
        latency.add(client.join().expect("client thread")).unwrap();
    }
    if let Some(scraper) = scraper {
        scraper.join().expect("scraper");
    }
    server.stop();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Run {
        label,
        events_per_sec: acked as f64 / elapsed.as_secs_f64(),
        latency_ms: Some([ms(0.5), ms(0.99), ms(0.999)]),
        cpu_per_million: (acked > 0).then(|| cpu / acked as f64 * 1e6),
        failures: shared.failures.load(Ordering::Relaxed),
    }
}

fn scrape(addr: SocketAddr) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let _ = stream.read_to_end(&mut Vec::new());
}

/// One connection: keeps `window` batches in flight until told to stop, then collects the
/// replies still owed and closes. Returns the ack latencies (µs) seen while measuring.
fn client(index: usize, addr: SocketAddr, settings: &Settings, payloads: &[Bytes], shared: &Shared) -> Histogram<u64> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/api/v1/events"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key())
        .header("X-User-ID", format!("bench-{index}"))
        .body(())
        .unwrap();
    let (mut ws, _) = tungstenite::client(request, stream).expect("websocket handshake");
    let mut batch = pb::SendEventRequest {
        req_guid: String::new(),
        sent_time: None,
        events: payloads
            .iter()
            .enumerate()
            .map(|(i, p)| pb::Event { event_bytes: p.clone(), r#type: type_of(settings, i).to_owned() })
            .collect(),
    };
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut sent: HashMap<String, Instant> = HashMap::with_capacity(settings.window);
    let mut next = 0u64;
    loop {
        while sent.len() < settings.window && !shared.stop.load(Ordering::Relaxed) {
            batch.req_guid = format!("{index}-{next}");
            next += 1;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            batch.sent_time =
                Some(prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: now.subsec_nanos() as i32 });
            sent.insert(batch.req_guid.clone(), Instant::now());
            ws.send(Message::Binary(Bytes::from(batch.encode_to_vec()))).expect("send batch");
        }
        if sent.is_empty() {
            break;
        }
        let reply = match ws.read().expect("read reply") {
            Message::Binary(frame) => pb::SendEventResponse::decode(frame).expect("decode reply"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message from the server: {other:?}"),
        };
        let guid = reply.data.get("req_guid").cloned().unwrap_or_default();
        let Some(at) = sent.remove(&guid) else { panic!("reply for unknown batch {guid:?}: {reply:?}") };
        if reply.status() == pb::Status::Success {
            shared.acked.fetch_add(settings.events as u64, Ordering::Relaxed);
            if shared.measuring.load(Ordering::Relaxed) {
                latency.saturating_record(at.elapsed().as_micros() as u64);
            }
        } else {
            shared.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = ws.close(None);
    while ws.read().is_ok() {}
    latency
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
