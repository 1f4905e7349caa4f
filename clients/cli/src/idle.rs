//! `raccoon-cli idle`: opens N WebSocket connections, holds them (the client library pings and
//! answers the server's pings), reports how many stayed alive over the hold time and, given
//! `--server-pid`, the server's RSS per connection: (RSS with N held - RSS before) / N. With
//! `--burst K` each connection first sends K batches at once and waits for their answers, so the
//! connections are idle after use rather than never used. (Their RSS figure then also holds what
//! the traffic left in the server's allocator; a heap profile tells the two apart.)

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use raccoon_client::{Batch, Event, RetryPolicy, WsClient};
use tokio::sync::Semaphore;

use crate::load::CONNECT_AT_ONCE;
use crate::procfs::{self, Pid};
use crate::send::{server_url, Transport};
use crate::tls::{with_tls, TlsArgs};

/// Connections per loopback source address by default.
const PER_SOURCE_IP: usize = 20_000;
/// Most batches `--burst` may ask each connection to have in flight at once.
const MAX_BURST: usize = 1024;
/// Most batches a burst may have in flight over all connections (one task each, here).
const MAX_BURST_BATCHES: usize = 1_000_000;
/// Bytes of each event a burst sends.
const BURST_EVENT_BYTES: usize = 100;

/// `idle`'s options.
#[derive(Args, Debug)]
pub struct IdleArgs {
    /// The server, `host:port` or a URL (default 127.0.0.1:8080).
    #[arg(long, short = 'a')]
    addr: Option<String>,
    /// WebSocket connections to open and hold.
    #[arg(long, short = 'c', default_value_t = 100)]
    connections: usize,
    /// Seconds to hold them once open.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Seconds between the client's pings (it also answers the server's).
    #[arg(long, default_value_t = 10.0)]
    ping_interval: f64,
    /// Seconds a handshake may take.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Loopback source addresses 127.0.0.1..127.0.0.N (default: one per 20,000 connections).
    #[arg(long)]
    source_ips: Option<u8>,
    /// Batches each connection sends at once (one event of 100 B each) and waits for the
    /// answers to before the hold starts: connections idle after a burst. 0: they never send.
    #[arg(long, default_value_t = 0)]
    burst: usize,
    /// The server's process id, for its RSS per connection.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

impl IdleArgs {
    fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.connections > 1_000_000 {
            return Err(format!("--connections {} is not 1..=1000000", self.connections));
        }
        for (name, v, max) in [
            ("--hold", self.hold, 86_400.0),
            ("--ping-interval", self.ping_interval, 3_600.0),
            ("--timeout", self.timeout, 600.0),
        ] {
            if !(v > 0.0 && v <= max) {
                return Err(format!("{name} {v} is not in (0, {max}] seconds"));
            }
        }
        if self.burst > MAX_BURST {
            return Err(format!("--burst {} is more than {MAX_BURST}", self.burst));
        }
        if self.burst * self.connections > MAX_BURST_BATCHES {
            return Err(format!(
                "--burst {} on {} connections is {} batches at once, more than {MAX_BURST_BATCHES}",
                self.burst,
                self.connections,
                self.burst * self.connections
            ));
        }
        if self.source_ips == Some(0) || self.source_ips == Some(255) {
            return Err("--source-ips is 1..=254".into());
        }
        Ok(())
    }
}

/// Runs `idle` on a current-thread runtime (idle connections need little CPU).
pub fn run(args: IdleArgs) -> ExitCode {
    if let Err(why) = args.check() {
        eprintln!("error: {why}");
        return ExitCode::from(2);
    }
    let limit = crate::limits::check_connections(args.connections);
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(hold(args, limit)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(3)
        }
    }
}

async fn hold(args: IdleArgs, file_limit: Option<u64>) -> ExitCode {
    let url = server_url(Transport::Ws, args.addr.as_deref(), args.tls.secure(args.addr.as_deref()));
    let server = args.server_pid.map(Pid::Other);
    let ips = args.source_ips.unwrap_or_else(|| args.connections.div_ceil(PER_SOURCE_IP).clamp(1, 254) as u8);
    let timeout = Duration::from_secs_f64(args.timeout);
    let before = server.and_then(|p| procfs::sample(p).inspect_err(|w| eprintln!("warning: {w}")).ok());
    let opening = Instant::now();
    eprintln!("idle: opening {} connection(s)", args.connections);
    let (clients, failures) = open_all(&args, &url, ips).await;
    let opened = clients.len();
    let open_secs = opening.elapsed().as_secs_f64();
    let burst_failed = burst(&clients, args.burst, timeout).await;
    eprintln!("idle: {opened} of {} connection(s) open in {open_secs:.1} s; holding {} s", args.connections, args.hold);
    let alive = |clients: &[WsClient]| clients.iter().filter(|c| c.ended().is_none()).count();
    let held_from = Instant::now();
    let hold = Duration::from_secs_f64(args.hold);
    let mut min_alive = alive(&clients);
    while held_from.elapsed() < hold {
        tokio::time::sleep(Duration::from_secs(1).min(hold.saturating_sub(held_from.elapsed()))).await;
        let now = alive(&clients);
        min_alive = min_alive.min(now);
        eprintln!("[{:>4.0}s hold] alive {now} of {opened}", held_from.elapsed().as_secs_f64());
    }
    let alive_at_end = alive(&clients);
    let held = server.and_then(|p| procfs::sample(p).inspect_err(|w| eprintln!("warning: {w}")).ok());
    let per_conn = match (before, held) {
        (Some(b), Some(h)) if opened > 0 => Some((h.rss_bytes as f64 - b.rss_bytes as f64) / opened as f64),
        _ => None,
    };
    close_all(clients).await;

    let report = serde_json::json!({
        "command": "idle",
        "url": url,
        "connections": args.connections,
        "opened": opened,
        "failed_to_open": args.connections - opened,
        "open_failures": failures,
        "open_seconds": open_secs,
        "hold_s": args.hold,
        "burst": args.burst,
        "burst_batches_failed": burst_failed,
        "alive_at_end": alive_at_end,
        "min_alive": min_alive,
        "source_ips": ips,
        "open_file_limit": file_limit,
        "server_rss_before_bytes": before.map(|s| s.rss_bytes),
        "server_rss_held_bytes": held.map(|s| s.rss_bytes),
        "server_rss_per_connection_bytes": per_conn,
    });
    println!(
        "idle: {opened}/{} open, {alive_at_end} alive after {} s (fewest alive {min_alive}){}",
        args.connections,
        args.hold,
        match (per_conn, before, held) {
            (Some(p), Some(b), Some(h)) => format!(
                "; server RSS {:.1} -> {:.1} MiB, {:.0} B ({:.2} KiB) per connection",
                b.rss_bytes as f64 / 1048576.0,
                h.rss_bytes as f64 / 1048576.0,
                p,
                p / 1024.0
            ),
            _ => String::new(),
        }
    );
    if !failures.is_empty() {
        println!("open failures: {failures:?}");
    }
    if let Some(path) = &args.json {
        if let Err(code) = crate::write_json_report(path, &report) {
            return code;
        }
    }
    if burst_failed > 0 {
        println!("burst: {burst_failed} batch(es) not answered with success within {} s", args.timeout);
    }
    if opened == args.connections && alive_at_end == opened && burst_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Opens `args.connections` clients, at most [`CONNECT_AT_ONCE`] handshakes at a time, each with
/// a user id of its own; returns those that opened and why the others did not.
async fn open_all(args: &IdleArgs, url: &str, ips: u8) -> (Vec<WsClient>, std::collections::BTreeMap<String, u64>) {
    let gate = Arc::new(Semaphore::new(CONNECT_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.connections {
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % ips as usize) as u8));
        let builder = with_tls!(WsClient::builder(url), &args.tls)
            .user_id(&format!("idle-{}-{index}", std::process::id()))
            .ping_interval(Duration::from_secs_f64(args.ping_interval))
            .connect_timeout(Duration::from_secs_f64(args.timeout))
            .timeout(Duration::from_secs_f64(args.timeout))
            .retry(RetryPolicy::none())
            .reconnect_attempts(0)
            .local_address(local);
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            builder.connect().await
        });
    }
    let mut clients = Vec::with_capacity(args.connections);
    let mut failures = std::collections::BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(c)) => clients.push(c),
            Ok(Err(e)) => *failures.entry(short(&e.to_string())).or_default() += 1,
            Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    (clients, failures)
}

/// Closes every client at once, bounded: close() waits for nothing in flight here.
async fn close_all(clients: Vec<WsClient>) {
    let mut closing = tokio::task::JoinSet::new();
    for c in clients {
        closing.spawn(async move { c.close().await });
    }
    if tokio::time::timeout(Duration::from_secs(30), closing.join_all()).await.is_err() {
        eprintln!("warning: some connections did not close within 30 s");
    }
}

/// Has every client send `k` batches at once and wait for their answers, at most `timeout`
/// each; returns how many were not answered with success.
async fn burst(clients: &[WsClient], k: usize, timeout: Duration) -> u64 {
    if k == 0 {
        return 0;
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        for _ in 0..k {
            let client = client.clone();
            tasks.spawn(async move {
                let batch = Batch::new([Event::new("idle", vec![0u8; BURST_EVENT_BYTES])]);
                match tokio::time::timeout(timeout, client.send_and_wait(batch)).await {
                    Ok(Ok((_, response))) => response.is_success(),
                    _ => false,
                }
            });
        }
    }
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        if !matches!(joined, Ok(true)) {
            failed += 1;
        }
    }
    eprintln!(
        "burst: {} batch(es) of {k} per connection answered in {:.1} s, {failed} not with success",
        clients.len() * k,
        started.elapsed().as_secs_f64()
    );
    failed
}

/// Groups failures by message without the per-connection details (addresses, ports).
fn short(message: &str) -> String {
    message.split_once(": ").map_or(message, |(_, why)| why).chars().take(120).collect()
}
