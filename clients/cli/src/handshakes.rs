//! `raccoon-cli handshakes`: full TLS handshakes (no session resumption) against a server's TLS
//! port, from `--concurrency` connections at a time for `--duration` seconds; each connection
//! is closed once its handshake is done. Reports handshakes per second and their latency, and,
//! with `--server-pid`, the server's CPU per handshake and so the handshakes one core of it can
//! take per second.
//!
//! `--bare` measures the ceiling instead: the same TLS 1.3 handshakes (ECDSA P-256, X25519) with
//! rustls alone, in memory, on one thread of this process, timing the server side only.
//! Comparing the two in the same run says what the server adds to rustls.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use raccoon_client::tls::TlsOptions;
use rustls::pki_types::ServerName;

use crate::latency::Latencies;
use crate::procfs::{self, Pid, Usage};
use crate::tls::TlsArgs;

/// `handshakes`' options.
#[derive(Args, Debug)]
pub struct HandshakesArgs {
    /// The server's TLS port, `host:port` (default 127.0.0.1:8080). The certificate is checked
    /// for the host named here: `localhost:PORT` for a certificate of localhost.
    #[arg(long, short = 'a', default_value = "127.0.0.1:8080")]
    addr: String,
    /// Handshakes in progress at once.
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of handshakes before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Runtime worker threads (the client's handshakes cost about as much CPU as the server's).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, for its CPU per handshake.
    #[arg(long)]
    server_pid: Option<u32>,
    /// rustls alone, in memory, one thread: the ceiling (no server, no sockets).
    #[arg(long)]
    bare: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Runs `handshakes`.
pub fn run(args: HandshakesArgs) -> ExitCode {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        eprintln!("error: --concurrency {} is not 1..=10000", args.concurrency);
        return ExitCode::from(2);
    }
    let (duration, warmup) = (0.0 < args.duration && args.duration <= 3600.0, (0.0..=600.0).contains(&args.warmup));
    if !(duration && warmup) {
        eprintln!("error: --duration must be in (0, 3600] and --warmup in [0, 600] seconds");
        return ExitCode::from(2);
    }
    let report = if args.bare { bare(&args) } else { against_server(&args) };
    let report = match report {
        Ok(report) => report,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(1);
        }
    };
    println!("{}", report["summary"].as_str().unwrap_or_default());
    if let Some(path) = &args.json {
        if let Err(code) = crate::write_json_report(path, &report) {
            return code;
        }
    }
    ExitCode::SUCCESS
}

fn against_server(args: &HandshakesArgs) -> Result<serde_json::Value, String> {
    let (host, _) = args.addr.rsplit_once(':').ok_or_else(|| format!("--addr {:?} is not host:port", args.addr))?;
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| format!("--addr {:?}: {e}", args.addr))?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(args.addr.as_str())
        .map_err(|e| format!("--addr {:?}: {e}", args.addr))?
        .next()
        .ok_or_else(|| format!("--addr {:?} resolves to nothing", args.addr))?;
    let options = TlsOptions {
        ca_file: args.tls.ca_file.clone(),
        client_cert: args.tls.client_cert.clone().zip(args.tls.client_key.clone()),
        insecure: args.tls.insecure,
    };
    let mut config = Arc::unwrap_or_clone(options.client_config(&[b"http/1.1"]).map_err(|e| e.to_string())?);
    // Every handshake a full one: what a new client, or one whose ticket expired, costs.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let server = args.server_pid.map(Pid::Other);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let latency = Arc::new(std::sync::Mutex::new(Latencies::default()));
    let start = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup);
    let end = start + warmup + Duration::from_secs_f64(args.duration);
    let (before, after, measured) = runtime.block_on(async {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency {
            let (connector, name) = (connector.clone(), name.clone());
            let (done, failed, measuring, latency) =
                (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&measuring), Arc::clone(&latency));
            workers.spawn(async move {
                let mut local = Latencies::default();
                while Instant::now() < end {
                    let began = Instant::now();
                    let ok = match tokio::net::TcpStream::connect(addr).await {
                        Ok(tcp) => {
                            let _ = tcp.set_nodelay(true);
                            connector.connect(name.clone(), tcp).await.is_ok()
                        }
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            done.fetch_add(1, Ordering::Relaxed);
                            local.record(began.elapsed());
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                latency.lock().unwrap_or_else(|e| e.into_inner()).merge(&local);
            });
        }
        tokio::time::sleep(warmup).await;
        let before = server.and_then(|p| procfs::sample(p).ok());
        measuring.store(true, Ordering::Relaxed);
        let from = Instant::now();
        let mut last = 0;
        while Instant::now() + Duration::from_secs(1) < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = done.load(Ordering::Relaxed);
            eprint!("\r[{:>4.0}s] {} handshakes/s   ", from.elapsed().as_secs_f64(), now - last);
            let _ = std::io::stderr().flush();
            last = now;
        }
        tokio::time::sleep(end.saturating_duration_since(Instant::now())).await;
        measuring.store(false, Ordering::Relaxed);
        let measured = from.elapsed();
        let after = server.and_then(|p| procfs::sample(p).ok());
        while workers.join_next().await.is_some() {}
        eprintln!();
        (before, after, measured)
    });
    let handshakes = done.load(Ordering::Relaxed);
    let failures = failed.load(Ordering::Relaxed);
    let rate = handshakes as f64 / measured.as_secs_f64();
    let usage = before.zip(after).map(|(b, a)| Usage::between(&b, &a));
    let cpu_us = usage.filter(|_| handshakes > 0).map(|u| u.cpu_seconds * 1e6 / handshakes as f64);
    let per_core = cpu_us.filter(|us| *us > 0.0).map(|us| 1e6 / us);
    let latency = latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let summary = format!(
        "handshakes: {handshakes} in {:.1} s = {rate:.0}/s from {} connections at a time, {failures} failed; latency p50 {:.2} ms, p99 {:.2} ms{}",
        measured.as_secs_f64(),
        args.concurrency,
        latency.ms(0.5),
        latency.ms(0.99),
        match (cpu_us, per_core) {
            (Some(us), Some(core)) => format!("; server {us:.0} µs CPU each = {core:.0} per core-second"),
            _ => String::new(),
        }
    );
    Ok(serde_json::json!({
        "command": "handshakes",
        "summary": summary,
        "addr": args.addr,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "seconds": measured.as_secs_f64(),
        "handshakes": handshakes,
        "failed": failures,
        "per_second": rate,
        "latency_ms": latency.json(),
        "server": usage.map(|u| u.json(handshakes)),
        "server_cpu_us_per_handshake": cpu_us,
        "server_handshakes_per_core_second": per_core,
    }))
}

/// rustls alone: TLS 1.3 full handshakes in memory, the server side timed.
fn bare(args: &HandshakesArgs) -> Result<serde_json::Value, String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .and_then(|p| p.self_signed(&key))
        .map_err(|e| e.to_string())?;
    let der = cert.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], private)
        .map_err(|e| e.to_string())?;
    // As the server's: stateless tickets, one per handshake.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    server.send_tls13_tickets = 1;
    let server = Arc::new(server);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).map_err(|e| e.to_string())?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let handshake = |server_time: &mut Duration| -> Result<(), String> {
        let mut c = rustls::ClientConnection::new(Arc::clone(&client), name.clone()).map_err(|e| e.to_string())?;
        let timed = Instant::now();
        let mut s = rustls::ServerConnection::new(Arc::clone(&server)).map_err(|e| e.to_string())?;
        *server_time += timed.elapsed();
        let mut buf = Vec::with_capacity(8192);
        while c.is_handshaking() || s.is_handshaking() || s.wants_write() {
            buf.clear();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            let timed = Instant::now();
            s.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| e.to_string())?;
            buf.clear();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            *server_time += timed.elapsed();
            c.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let mut warm = Duration::ZERO;
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    while Instant::now() < warm_until {
        handshake(&mut warm)?;
    }
    let mut server_time = Duration::ZERO;
    let mut handshakes = 0u64;
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    while Instant::now() < until {
        handshake(&mut server_time)?;
        handshakes += 1;
    }
    let us = server_time.as_secs_f64() * 1e6 / handshakes.max(1) as f64;
    let per_core = 1e6 / us;
    Ok(serde_json::json!({
        "command": "handshakes",
        "bare": true,
        "summary": format!("bare rustls: {handshakes} TLS 1.3 ECDSA P-256 handshakes, server side {us:.0} µs each = {per_core:.0} per core-second"),
        "handshakes": handshakes,
        "server_us_per_handshake": us,
        "server_handshakes_per_core_second": per_core,
    }))
}
