//! `raccoon-cli load`: many connections sending batches for a bounded time, with live progress
//! on stderr, a final report on stdout and, with `--json FILE`, the same figures as JSON.
//!
//! - `conn.rs`: one connection's loop (closed or open), for every transport.
//! - `recorder.rs`: the counters and histograms the connections share; the progress line.
//! - `report.rs`: the final figures, as text and JSON.
//!
//! The run: open every connection (at most [`CONNECT_AT_ONCE`] handshakes at a time, spread over
//! `--source-ips` loopback addresses), start them together, `--warmup` seconds unmeasured,
//! `--duration` seconds measured, then stop sending and collect the replies still owed (at most
//! `--timeout` plus a second). Everything ends by itself.

mod conn;
mod recorder;
mod report;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::procfs::{self, Pid};
use crate::send::{server_url, EncodingArg, Transport};
use crate::tls::TlsArgs;
use crate::workload::WorkloadArgs;
use conn::{Pace, Plan};
use recorder::Recorder;
use report::Report;

/// Connection handshakes in progress at once.
pub(crate) const CONNECT_AT_ONCE: usize = 256;
/// Connections per loopback source address by default (one address has about 28k ephemeral ports).
const PER_SOURCE_IP: usize = 20_000;
/// The server's default `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES`.
const SERVER_MAX_IN_FLIGHT: usize = 128;

/// `load`'s options.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The server, `host:port` or a URL (default 127.0.0.1:8080, or 127.0.0.1:8081 for gRPC).
    #[arg(long, short = 'a')]
    addr: Option<String>,
    /// The transport. REST and gRPC connect from 127.0.0.1 only; a REST "connection" opens as
    /// many HTTP/1.1 connections as it has batches in flight.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,
    /// The requests' encoding (gRPC: proto only).
    #[arg(long, short = 'e', value_enum, default_value_t = EncodingArg::Proto)]
    encoding: EncodingArg,
    /// Connections (clients).
    #[arg(long, short = 'c', default_value_t = 10)]
    connections: usize,
    /// Closed loop: batches each connection keeps in flight.
    #[arg(long, short = 'k', default_value_t = 1)]
    in_flight: usize,
    /// Open loop instead: events per second over all connections, at fixed intervals; latency
    /// counts from each batch's intended send time. At most --max-in-flight unanswered per connection.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: unanswered batches per connection before sending waits.
    #[arg(long, default_value_t = SERVER_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of traffic before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Loopback source addresses 127.0.0.1..127.0.0.N the WebSocket connections are spread over
    /// (default: one per 20,000 connections).
    #[arg(long)]
    source_ips: Option<u8>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds a batch may wait for its reply, and a connection for its handshake.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The server's process id: its CPU and RSS over the measured window go into the report.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl LoadArgs {
    fn check(&self) -> Result<Pace, String> {
        self.workload.check()?;
        if self.connections == 0 || self.connections > 1_000_000 {
            return Err(format!("--connections {} is not 1..=1000000", self.connections));
        }
        if !(self.duration > 0.0 && self.duration <= 86_400.0) {
            return Err(format!("--duration {} is not in (0, 86400] seconds", self.duration));
        }
        if !(self.warmup >= 0.0 && self.warmup <= 3_600.0) {
            return Err(format!("--warmup {} is not in [0, 3600] seconds", self.warmup));
        }
        if !(self.timeout > 0.0 && self.timeout <= 600.0) {
            return Err(format!("--timeout {} is not in (0, 600] seconds", self.timeout));
        }
        if self.threads == 0 || self.threads > 256 {
            return Err(format!("--threads {} is not 1..=256", self.threads));
        }
        if self.transport == Transport::Grpc && self.encoding == EncodingArg::Json {
            return Err("gRPC carries protobuf only: drop --encoding json".into());
        }
        if self.source_ips == Some(0) || self.source_ips == Some(255) {
            return Err("--source-ips is 1..=254".into());
        }
        match self.rate {
            None => {
                if self.in_flight == 0 || self.in_flight > 100_000 {
                    return Err(format!("--in-flight {} is not 1..=100000", self.in_flight));
                }
                if self.transport == Transport::Ws && self.in_flight > SERVER_MAX_IN_FLIGHT {
                    eprintln!(
                        "warning: --in-flight {} is over the server's default SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES ({SERVER_MAX_IN_FLIGHT})",
                        self.in_flight
                    );
                }
                Ok(Pace::Closed { in_flight: self.in_flight })
            }
            Some(rate) => {
                if !(rate > 0.0 && rate.is_finite()) {
                    return Err(format!("--rate {rate} is not a positive number of events per second"));
                }
                if self.max_in_flight == 0 {
                    return Err("--max-in-flight must be at least 1".into());
                }
                let batches_per_conn = rate / self.workload.batch as f64 / self.connections as f64;
                Ok(Pace::Open {
                    interval: Duration::from_secs_f64(1.0 / batches_per_conn),
                    offset: Duration::ZERO,
                    max_in_flight: self.max_in_flight,
                })
            }
        }
    }

    fn source_ips(&self) -> u8 {
        self.source_ips.unwrap_or_else(|| self.connections.div_ceil(PER_SOURCE_IP).clamp(1, 254) as u8)
    }
}

/// Runs `load` on its own runtime (`--threads` workers): the report on stdout and, with
/// `--json`, in a file; the exit status as `raccoon-cli load --help` describes it.
pub fn run(args: LoadArgs) -> ExitCode {
    let json = args.json.clone();
    let report = match report(args) {
        Ok(r) => r,
        Err(code) => return code,
    };
    print!("{}", report.text());
    if let Some(path) = &json {
        if let Err(code) = crate::write_json_report(path, &report.json()) {
            return code;
        }
    }
    if report.total.errors > 0 || report.total.acked_events == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `load` as [`run`] does (progress on stderr) and returns the report `--json` would
/// write, printing nothing on stdout; `Err` is the exit status of a usage error (2) or of a
/// runtime that did not start (3).
pub fn measure(args: LoadArgs) -> Result<serde_json::Value, ExitCode> {
    report(args).map(|r| r.json())
}

fn report(args: LoadArgs) -> Result<Report, ExitCode> {
    let pace = match args.check() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("error: {why}");
            return Err(ExitCode::from(2));
        }
    };
    if args.transport == Transport::Ws {
        crate::limits::check_connections(args.connections);
    } else {
        crate::limits::check_connections(args.connections * args.in_flight.min(64));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Err(ExitCode::from(3));
        }
    };
    Ok(runtime.block_on(drive(args, pace)))
}

async fn drive(args: LoadArgs, pace: Pace) -> Report {
    let url = server_url(args.transport, args.addr.as_deref(), args.tls.secure(args.addr.as_deref()));
    let plan = Arc::new(Plan {
        url: url.clone(),
        transport: args.transport,
        encoding: args.encoding,
        pace,
        events: Arc::new(args.workload.events()),
        timeout: Duration::from_secs_f64(args.timeout),
        tls: args.tls.clone(),
    });
    let recorder = Arc::new(Recorder::default());
    let server = args.server_pid.map(Pid::Other);
    let server_idle = server.and_then(sample_or_warn);
    let (connected_tx, mut connected_rx) = mpsc::channel(CONNECT_AT_ONCE);
    let (go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECT_AT_ONCE));
    let ips = args.source_ips();
    eprintln!(
        "load: {} {} connection(s) to {url} from {ips} source address(es), {}",
        args.connections,
        args.transport.name(),
        match pace {
            Pace::Closed { in_flight } => format!("closed loop, {in_flight} batch(es) in flight each"),
            Pace::Open { .. } => format!("open loop at {} events/s", args.rate.unwrap_or_default()),
        }
    );
    let opening = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.connections {
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % ips as usize) as u8));
        let mut plan = Arc::clone(&plan);
        if let Pace::Open { interval, max_in_flight, .. } = pace {
            // Spread the connections' schedules over one interval, so sends do not come in bursts.
            let offset = interval.mul_f64(index as f64 / args.connections as f64);
            let mut p = (*plan).clone();
            p.pace = Pace::Open { interval, offset, max_in_flight };
            plan = Arc::new(p);
        }
        let (recorder, connected, go, stop, gate) =
            (Arc::clone(&recorder), connected_tx.clone(), go_rx.clone(), stop_rx.clone(), Arc::clone(&gate));
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let (tx, mut rx) = mpsc::channel(1);
            let relay = async {
                let ok = rx.recv().await.unwrap_or(false);
                drop(permit);
                let _ = connected.send(ok).await;
            };
            tokio::join!(conn::run(plan, index, local, recorder, tx, go, stop), relay);
        });
    }
    drop(connected_tx);
    let (mut opened, mut failed) = (0usize, 0usize);
    while let Some(ok) = connected_rx.recv().await {
        if ok {
            opened += 1
        } else {
            failed += 1
        }
        if opened + failed == args.connections {
            break;
        }
    }
    eprintln!("load: {opened} connection(s) open, {failed} failed, in {:.1} s", opening.elapsed().as_secs_f64());

    let started = Instant::now();
    let warmup = Duration::from_secs_f64(args.warmup);
    let progress_stop = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(recorder::progress(Arc::clone(&recorder), started, warmup, Arc::clone(&progress_stop)));
    let _ = go_tx.send(true);
    tokio::time::sleep(warmup).await;
    recorder.measuring.store(true, Relaxed);
    let (counts_before, own_before) = (recorder.counts(), sample_or_warn(Pid::Own));
    let server_before = server.and_then(sample_or_warn);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let counts_after = recorder.counts();
    let server_after = server.and_then(sample_or_warn);
    let own_after = sample_or_warn(Pid::Own);
    recorder.measuring.store(false, Relaxed);
    let _ = stop_tx.send(true);
    // Each connection drains for at most the timeout plus a second; a little more for closing.
    let limit = tokio::time::Instant::now() + plan.timeout + Duration::from_secs(5);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(limit, tasks.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("warning: {} connection(s) did not close in time; abandoning them", tasks.len());
                tasks.abort_all();
                break;
            }
        }
    }
    progress_stop.store(true, Relaxed);
    let _ = progress.await;

    Report {
        transport: args.transport,
        encoding: args.encoding,
        url,
        connections: args.connections,
        opened,
        source_ips: ips,
        pace,
        rate: args.rate,
        workload: args.workload.clone(),
        warmup_s: args.warmup,
        window: (counts_before, counts_after),
        total: recorder.counts(),
        latency: recorder.window(),
        errors: recorder.error_kinds(),
        server: server_before.zip(server_after).map(|(b, a)| procfs::Usage::between(&b, &a)),
        server_idle_rss: server_idle.map(|s| s.rss_bytes),
        own: own_before.zip(own_after).map(|(b, a)| procfs::Usage::between(&b, &a)),
    }
}

fn sample_or_warn(pid: Pid) -> Option<procfs::Sample> {
    procfs::sample(pid).inspect_err(|why| eprintln!("warning: {why}")).ok()
}
