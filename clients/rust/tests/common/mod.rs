//! Test harness of the client crates: the real `raccoon` binary (built here if needed), the
//! repository's local Kafka (`scripts/kafka.sh`), and a consumer reading back what was sent.
//! Everything targets 127.0.0.1 and every wait is bounded. Shared with the CLI's tests through
//! `#[path]`.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const KAFKA: &str = "127.0.0.1:9092";

/// The workspace root (two levels above either client crate).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Makes sure the shared broker on 127.0.0.1:9092 is up (installs and starts it if needed).
pub fn shared_kafka() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let out = Command::new("bash")
            .arg(workspace_dir().join("scripts/kafka.sh"))
            .arg("start")
            .output()
            .expect("run scripts/kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh start failed:\n{}", String::from_utf8_lossy(&out.stderr));
    });
    KAFKA
}

/// The server binary: `$RACCOON_BIN`, else `raccoon` next to this test's own profile directory
/// (`target/<profile>/`), built first with `cargo build -p raccoon --bin raccoon` (a no-op when
/// `cargo test` at the root already built it; needed for `cargo test -p raccoon-client`).
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RACCOON_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_path_buf();
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_dir())
            .args(["build", "-p", "raccoon", "--bin", "raccoon"])
            .arg("--target-dir")
            .arg(&target_dir);
        if profile != "debug" {
            cmd.args(["--profile", if profile == "release" { "release" } else { &profile }]);
        }
        let status = cmd.status().expect("run cargo build for the server");
        assert!(status.success(), "building the server failed");
        profile_dir.join("raccoon")
    })
    .clone()
}

/// A name no earlier run used, so topics start empty.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A port nobody listens on right now, for a server that must come back on the same port.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports (the listeners are held until all are chosen).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A running server process; killed when dropped.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts the server on 127.0.0.1 with free ports and the given extra environment (which may
    /// set `SERVER_WEBSOCKET_PORT`/`SERVER_GRPC_PORT`); reads the bound ports from its log.
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let mut child = Command::new(server_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_BIND_ADDRESS", "127.0.0.1")
            .env("SERVER_WEBSOCKET_PORT", "0")
            .env("SERVER_GRPC_PORT", "0")
            .env("SERVER_SHARDS", "1")
            .env("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", shared_kafka())
            .env("LOG_LEVEL", std::env::var("RACCOON_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn raccoon");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let listening = line.contains("raccoon listening on ");
                    log.lock().unwrap().push(line);
                    if listening {
                        let _ = tx.send(());
                    }
                }
            });
        }
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start:\n{}", log.lock().unwrap().join("\n"));
        }
        let find = |marker: &str| -> SocketAddr {
            let log = log.lock().unwrap();
            let rest =
                log.iter().find_map(|l| l.split(marker).nth(1)).unwrap_or_else(|| panic!("no {marker:?} in the log"));
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        let addr = find("raccoon listening on ");
        let grpc_addr = find("gRPC on ");
        TestServer { child, addr, grpc_addr, log }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The server's process id (for `/proc` readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
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

/// Every record of partition 0 of `topic` from the beginning, until `want` were seen or `limit`
/// passed, then half a second more to catch duplicates.
pub fn consume(topic: &str, want: usize, limit: Duration) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", shared_kafka())
        .set("group.id", unique("raccoon-client-test"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    out
}

/// Checks `topic` holds exactly `want` (in any order: no loss, no duplicates).
pub fn assert_topic_holds(topic: &str, want: &[Vec<u8>]) {
    let mut got = consume(topic, want.len(), Duration::from_secs(60));
    let mut want = want.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "topic {topic} holds other records than were sent");
}
