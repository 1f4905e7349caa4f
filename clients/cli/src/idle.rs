//! `raccoon-cli idle`: opens N WebSocket connections, holds them (the client library pings and
//! answers the server's pings), reports how many stayed alive over the hold time and, given
//! `--server-pid`, the server's RSS per connection: (RSS with N held - RSS before) / N.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use raccoon_client::{RetryPolicy, WsClient};
use tokio::sync::Semaphore;

use crate::load::CONNECT_AT_ONCE;
use crate::procfs::{self, Pid};
use crate::send::{server_url, Transport};

/// Connections per loopback source address by default.
const PER_SOURCE_IP: usize = 20_000;

/// `idle`'s options.
#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
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
    /// The server's process id, for its RSS per connection.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
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
        if self.source_ips == Some(0) || self.source_ips == Some(255) {
            return Err("--source-ips is 1..=254".into());
        }
        Ok(())
    }
}

/// Runs `idle` on a current-thread runtime (idle connections need little CPU).
pub(crate) fn run(args: IdleArgs) -> ExitCode {
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
    let url = server_url(Transport::Ws, args.addr.as_deref());
    let server = args.server_pid.map(Pid::Other);
    let before = server.and_then(|p| procfs::sample(p).inspect_err(|w| eprintln!("warning: {w}")).ok());
    let ips = args.source_ips.unwrap_or_else(|| args.connections.div_ceil(PER_SOURCE_IP).clamp(1, 254) as u8);
    let gate = Arc::new(Semaphore::new(CONNECT_AT_ONCE));
    let opening = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.connections {
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % ips as usize) as u8));
        let builder = WsClient::builder(&url)
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
    let mut failures: std::collections::BTreeMap<String, u64> = Default::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(c)) => clients.push(c),
            Ok(Err(e)) => *failures.entry(short(&e.to_string())).or_default() += 1,
            Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let opened = clients.len();
    let open_secs = opening.elapsed().as_secs_f64();
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
    // Close them all at once, bounded: close() waits for nothing in flight here.
    let mut closing = tokio::task::JoinSet::new();
    for c in clients {
        closing.spawn(async move { c.close().await });
    }
    if tokio::time::timeout(Duration::from_secs(30), closing.join_all()).await.is_err() {
        eprintln!("warning: some connections did not close within 30 s");
    }

    let report = serde_json::json!({
        "command": "idle",
        "url": url,
        "connections": args.connections,
        "opened": opened,
        "failed_to_open": args.connections - opened,
        "open_failures": failures,
        "open_seconds": open_secs,
        "hold_s": args.hold,
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
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&report).unwrap_or_default() + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    if opened == args.connections && alive_at_end == opened {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Groups failures by message without the per-connection details (addresses, ports).
fn short(message: &str) -> String {
    message.split_once(": ").map_or(message, |(_, why)| why).chars().take(120).collect()
}
