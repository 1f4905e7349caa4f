//! A `raccoon` process for a test: started from a binary path on 127.0.0.1 with free ports, its
//! addresses read from the addresses line on its stdout, its log (stderr) kept for assertions
//! and printed when a test panics; SIGTERM and a bounded wait to stop it, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::addresses::Addresses;
use crate::http::{get_from, http_to, wait_for_status};

/// The longest the server may take to announce its addresses, or to exit after SIGTERM.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// The longest [`TestServer::wait_for_log`] waits.
pub const LOG_LIMIT: Duration = Duration::from_secs(10);
/// The human line the server logs just before its addresses line; waited for (never parsed)
/// so that the startup log is in [`TestServer::log`] when [`TestServer::start`] returns.
const STARTED_LOG: &str = "raccoon listening on ";

/// A running server process.
pub struct TestServer {
    child: Child,
    /// The HTTP port's address.
    pub addr: SocketAddr,
    /// The gRPC port's address.
    pub grpc_addr: SocketAddr,
    /// Everything the addresses line said.
    pub addresses: Addresses,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread copying stderr into `log`; it ends when the process's stderr does.
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts `binary` on 127.0.0.1 (HTTP and gRPC on port 0) against the broker `kafka`, with
    /// `env` on top (it may set any key, ports included). The environment is otherwise cleared,
    /// so nothing from the caller's shell leaks in; `RACCOON_TEST_LOG` sets `LOG_LEVEL` (default
    /// info). Returns once the addresses line arrived and, at a log level that shows it, the
    /// startup log line is in [`TestServer::log`]; panics with the log if the addresses line
    /// does not come within [`START_LIMIT`] (or the log line within [`LOG_LIMIT`]).
    pub fn start(binary: impl AsRef<Path>, kafka: &str, env: &[(&str, &str)]) -> TestServer {
        let binary = binary.as_ref();
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_BIND_ADDRESS", "127.0.0.1")
            .env("SERVER_WEBSOCKET_PORT", "0")
            .env("SERVER_GRPC_PORT", "0")
            .env("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", kafka)
            .env("LOG_LEVEL", std::env::var("RACCOON_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let log_reader = {
            let (stderr, log) = (child.stderr.take().expect("piped stderr"), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            })
        };
        let (tx, rx) = mpsc::channel();
        {
            let stdout = child.stdout.take().expect("piped stdout");
            std::thread::spawn(move || {
                // The first line is the addresses line; anything after it is drained unread.
                let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
                if let Some(line) = lines.next() {
                    let _ = tx.send(Addresses::parse(&line));
                }
                lines.for_each(drop);
            });
        }
        let mut server = TestServer {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            addresses: Addresses {
                pid: 0,
                http: SocketAddr::from(([0, 0, 0, 0], 0)),
                grpc: SocketAddr::from(([0, 0, 0, 0], 0)),
                prometheus: None,
            },
            log,
            log_reader: Some(log_reader),
        };
        // On a panic here, Drop kills the process and prints its log.
        let addresses = match rx.recv_timeout(START_LIMIT) {
            Ok(Ok(addresses)) => addresses,
            Ok(Err(why)) => panic!("the server's first stdout line is not its addresses line: {why}"),
            Err(_) => panic!("the server wrote no addresses line within {START_LIMIT:?} (or exited)"),
        };
        assert_eq!(addresses.pid, server.child.id(), "the addresses line names another process");
        (server.addr, server.grpc_addr, server.addresses) = (addresses.http, addresses.grpc, addresses);
        // The log line is written before the addresses line, but through another pipe, read by
        // another thread: wait for it (bounded), unless the log level leaves it out.
        let level = env.iter().rev().find(|(k, _)| *k == "LOG_LEVEL").map(|(_, v)| (*v).to_owned());
        let level = level.or_else(|| std::env::var("RACCOON_TEST_LOG").ok()).unwrap_or_else(|| "info".into());
        if ["info", "debug", "trace"].iter().any(|shown| level.to_ascii_lowercase().contains(shown)) {
            server.wait_for_log("its startup line", |log| log.contains(STARTED_LOG));
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://` and the HTTP port's address.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://` and the HTTP port's address.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://` and the gRPC port's address.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The Prometheus endpoint's address; panics if the server runs without one.
    pub fn prometheus_addr(&self) -> SocketAddr {
        self.addresses.prometheus.expect("the server runs without a Prometheus endpoint (METRIC_PROMETHEUS_ENABLED)")
    }

    /// The log so far (stderr), one line each.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    /// Waits (at most [`LOG_LIMIT`]) until the log, read by another thread, satisfies `holds`;
    /// returns it. `what` names the wait in the panic message.
    pub fn wait_for_log(&self, what: &str, holds: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LOG_LIMIT;
        loop {
            let log = self.log();
            if holds(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "the server never logged {what}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until the server's log holds `line`.
    pub fn assert_logged(&self, line: &str) {
        self.wait_for_log(&format!("{line:?}"), |log| log.contains(line));
    }

    /// Sends a raw HTTP request to the HTTP port and returns the whole response.
    pub fn http(&self, request: &str) -> String {
        http_to(self.addr, request)
    }

    /// `GET path` on the HTTP port: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        get_from(self.addr, path)
    }

    /// Polls `GET path` on the HTTP port until its status is `want`; panics after `limit`.
    pub fn wait_for_status(&self, path: &str, want: u16, limit: Duration) -> String {
        wait_for_status(self.addr, path, want, limit)
    }

    /// Sends SIGTERM and waits (at most [`START_LIMIT`]) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_async();
        self.wait(START_LIMIT)
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate_async(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the process to exit, then for the last of its log to be read (bounded); kills
    /// it and panics after `limit`. So after it, [`TestServer::log`] is the whole log.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                self.read_log_to_end();
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP: the server reads its TLS files again.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends SIGUSR2: the server's fault drill (a fatal error on every Kafka producer).
    pub fn fault_drill(&self) {
        self.signal(libc::SIGUSR2);
    }

    /// Waits (at most [`LOG_LIMIT`]) until the stderr reader has seen the end of the exited
    /// process's stderr.
    fn read_log_to_end(&mut self) {
        let Some(reader) = self.log_reader.take() else { return };
        let deadline = Instant::now() + LOG_LIMIT;
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if reader.is_finished() {
            let _ = reader.join();
        }
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}\n--- end of server log ---", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
