//! Integration-test harness: a real `raccoon` binary, a real Kafka broker (installed and started
//! by `scripts/kafka.sh`), real WebSocket clients, and a consumer that reads back what was sent.
//! Everything targets 127.0.0.1 and every wait is bounded.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use raccoon_protocol::pb;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tungstenite::protocol::WebSocket;
use tungstenite::Message;

/// The shared broker every test uses (started once per test binary).
pub const KAFKA: &str = "127.0.0.1:9092";

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/kafka.sh <action>` with extra environment; panics with its output on failure.
pub fn kafka_script(action: &str, env: &[(&str, &str)]) {
    let output = Command::new("bash")
        .arg(project_dir().join("scripts/kafka.sh"))
        .arg(action)
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        output.status.success(),
        "scripts/kafka.sh {action} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes sure the shared broker on 127.0.0.1:9092 is up (installs and starts it if needed).
pub fn shared_kafka() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| kafka_script("start", &[]));
    KAFKA
}

/// A name no earlier run used, so topics start empty even on a broker that keeps its data.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A running server process.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts the binary on 127.0.0.1 with a free port and the given extra environment. The
    /// environment is otherwise cleared, so nothing from the caller's shell leaks in.
    pub fn start(kafka: &str, env: &[(&str, &str)]) -> TestServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raccoon"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_BIND_ADDRESS", "127.0.0.1")
            .env("SERVER_WEBSOCKET_PORT", "0")
            .env("SERVER_GRPC_PORT", "0")
            .env("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", kafka)
            .env("LOG_LEVEL", std::env::var("RACCOON_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn raccoon");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let addr = line
                        .split("raccoon listening on ")
                        .nth(1)
                        .map(|rest| rest.split_whitespace().next().unwrap().parse::<SocketAddr>().unwrap());
                    // Logged before it is announced, so the startup line is in `log()` on return.
                    log.lock().unwrap().push(line);
                    if let Some(addr) = addr {
                        let _ = addr_tx.send(addr);
                    }
                }
            });
        }
        let Ok(addr) = addr_rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start:\n{}", log.lock().unwrap().join("\n"));
        };
        let grpc_addr = {
            let log = log.lock().unwrap();
            let line = log.iter().find_map(|l| l.split("gRPC on ").nth(1)).expect("no gRPC address in the log");
            line.split_whitespace().next().unwrap().parse().unwrap()
        };
        TestServer { child, addr, grpc_addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until the log, read by another thread, satisfies `holds`; returns it.
    pub fn wait_for_log(&self, what: &str, holds: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
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

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_async();
        self.wait(Duration::from_secs(30))
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate_async(&self) {
        signal(&self.child, libc::SIGTERM);
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens a WebSocket connection to `/api/v1/events`.
    pub fn connect(&self, headers: &[(&str, &str)]) -> Client {
        Client::connect(self.addr, headers)
    }

    /// Sends a raw HTTP request and returns the whole response (the server closes after it).
    pub fn http(&self, request: &str) -> String {
        http_to(self.addr, request)
    }

    /// `GET path` on the HTTP port: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        get_from(self.addr, path)
    }

    /// The Prometheus endpoint's address, from the startup log.
    pub fn prometheus_addr(&self) -> SocketAddr {
        let log = self.log();
        let rest = log.split("Prometheus metrics on http://").nth(1).expect("no Prometheus address in the log");
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// Polls `GET path` until its status is `want`; panics after `limit`.
    pub fn wait_for_status(&self, path: &str, want: u16, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = self.get(path);
            if status == want {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} still answers {status} {body:?} after {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The value of the sample `series` (name and labels exactly as exported), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes until every `(series, value)` holds; panics with the last scrape after `limit`.
pub fn scrape_until(server: &TestServer, want: &[(String, f64)], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, text) = get_from(server.prometheus_addr(), "/metrics");
        assert_eq!(status, 200, "{text}");
        let missing: Vec<_> = want.iter().filter(|(s, v)| sample(&text, s) != Some(*v)).collect();
        if missing.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "after {limit:?} these do not hold: {missing:?}\nlast scrape:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The sum of every sample of `name` (any labels) in a Prometheus text exposition.
pub fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET path` with `Connection: close`: status code and body.
pub fn get_from(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_to(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Sends a raw HTTP request and returns the whole response (the server closes after it).
pub fn http_to(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
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

#[allow(unsafe_code)]
fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The longest a test waits for any one reply.
pub const REPLY_LIMIT: Duration = Duration::from_secs(30);

/// One unary gRPC call to `addr` with `metadata`, as a stock client (tonic) makes it.
pub fn grpc_call<M: prost::Message + Default + 'static>(
    addr: SocketAddr,
    path: &'static str,
    message: M,
    metadata: &[(&'static str, &str)],
) -> Result<pb::SendEventResponse, tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .expect("connect to the gRPC port");
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.expect("channel ready");
        let mut request = tonic::Request::new(message);
        for (k, v) in metadata {
            request.metadata_mut().insert(*k, v.parse().unwrap());
        }
        let codec = tonic_prost::ProstCodec::<M, pb::SendEventResponse>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        client.unary(request, path, codec).await.map(tonic::Response::into_inner)
    })
}

/// A synchronous WebSocket client with a read timeout.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr, headers: &[(&str, &str)]) -> Client {
        Client::connect_to(addr, "/api/v1/events", headers).0
    }

    /// Opens a WebSocket to `target` (path and query) and returns it with the 101's headers.
    pub fn connect_to(
        addr: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
    ) -> (Client, tungstenite::http::HeaderMap) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut builder = tungstenite::http::Request::builder()
            .uri(format!("ws://{addr}{target}"))
            .header("Host", addr.to_string())
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (ws, response) = tungstenite::client(builder.body(()).unwrap(), stream).expect("websocket handshake");
        (Client { ws }, response.headers().clone())
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.ws.get_ref().set_read_timeout(Some(d)).unwrap();
    }

    pub fn send_batch(&mut self, req: &pb::SendEventRequest) {
        self.ws.send(Message::Binary(Bytes::from(req.encode_to_vec()))).unwrap();
    }

    pub fn send_raw(&mut self, message: Message) {
        self.ws.send(message).unwrap();
    }

    /// Next data or close message (pings are answered by tungstenite and skipped). Panics if
    /// none arrives within [`REPLY_LIMIT`], however many pings the server sends meanwhile.
    pub fn next(&mut self) -> Message {
        let deadline = Instant::now() + REPLY_LIMIT;
        loop {
            assert!(Instant::now() < deadline, "no message from the server within {REPLY_LIMIT:?}");
            match self.ws.read().expect("read from server") {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// The next data or close message if one arrives within `limit`, else `None`.
    pub fn next_within(&mut self, limit: Duration) -> Option<Message> {
        let deadline = Instant::now() + limit;
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            self.set_read_timeout(left);
            match self.ws.read() {
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(other) => break Some(other),
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break None
                }
                Err(e) => panic!("read from server: {e}"),
            }
        };
        self.set_read_timeout(REPLY_LIMIT);
        result
    }

    /// Next reply, decoded from a binary frame.
    pub fn reply(&mut self) -> pb::SendEventResponse {
        match self.next() {
            Message::Binary(b) => pb::SendEventResponse::decode(b).expect("decode reply"),
            other => panic!("expected a binary reply, got {other:?}"),
        }
    }

    /// Closes with 1000 and waits (bounded) for the server's close frame.
    pub fn close(&mut self) {
        self.ws.close(None).expect("send close");
        let deadline = Instant::now() + REPLY_LIMIT;
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => return,
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(error) => panic!("closing: {error}"),
            }
            assert!(Instant::now() < deadline, "the server did not finish the close handshake");
        }
    }
}

/// Reads an HTTP response head (up to and including its blank line) byte by byte, so that
/// nothing after it is consumed. Panics if the connection closes first.
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed during the upgrade: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A WebSocket upgrade written by hand: the request (with `headers`) is sent in pieces cut at
/// the byte offsets `cuts`, 50 ms apart, and `after` (a client's frames) goes out in the same
/// write as the request's last piece. Returns the response head and the connection as a client.
pub fn upgrade_by_hand(addr: SocketAddr, headers: &[(&str, &str)], cuts: &[usize], after: &[u8]) -> (String, Client) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    let end = bytes.len();
    bytes.extend_from_slice(after);
    let mut from = 0;
    for &cut in cuts.iter().filter(|&&c| c > 0 && c < end) {
        stream.write_all(&bytes[from..cut]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        from = cut;
    }
    stream.write_all(&bytes[from..]).unwrap();
    let head = read_head(&mut stream);
    stream.set_read_timeout(Some(REPLY_LIMIT)).unwrap();
    let ws = WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None);
    (head, Client { ws })
}

/// `message` as a client sends it: one final frame, masked.
pub fn client_frame(message: &pb::SendEventRequest) -> Vec<u8> {
    let mut frame = tungstenite::protocol::frame::Frame::message(
        message.encode_to_vec(),
        tungstenite::protocol::frame::coding::OpCode::Data(tungstenite::protocol::frame::coding::Data::Binary),
        true,
    );
    frame.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut out = Vec::new();
    frame.format(&mut out).unwrap();
    out
}

/// A batch whose payloads are unique per `(tag, index)` and include non-UTF-8 bytes.
pub fn batch(req_guid: &str, tag: &str, types: &[&str], events: usize) -> pb::SendEventRequest {
    pb::SendEventRequest {
        req_guid: req_guid.to_owned(),
        sent_time: Some(prost_types::Timestamp { seconds: now_secs(), nanos: 0 }),
        events: (0..events)
            .map(|i| {
                let mut payload = format!("{tag}/{req_guid}/{i}/").into_bytes();
                payload.extend_from_slice(&[0x00, 0xff, 0x80, (i % 256) as u8]);
                pb::Event { event_bytes: Bytes::from(payload), r#type: types[i % types.len()].to_owned() }
            })
            .collect(),
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn assert_success(reply: &pb::SendEventResponse, req_guid: &str) {
    assert_eq!(reply.status(), pb::Status::Success, "reply: {reply:?}");
    assert_eq!(reply.code(), pb::Code::Ok, "reply: {reply:?}");
    assert_eq!(reply.reason, "");
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some(req_guid));
    assert!((reply.sent_time - now_secs()).abs() < 60, "sent_time {} is not now", reply.sent_time);
}

/// Reads every record of partition 0 of `topic` from the beginning until `want` records were
/// seen or `limit` passed. Test topics are auto-created with one partition.
pub fn consume(kafka: &str, topic: &str, want: usize, limit: Duration) -> Vec<Vec<u8>> {
    consume_records(kafka, topic, want, limit).into_iter().map(|(payload, _)| payload).collect()
}

/// [`consume`], with each record's timestamp (milliseconds since the epoch).
pub fn consume_records(kafka: &str, topic: &str, want: usize, limit: Duration) -> Vec<(Vec<u8>, Option<i64>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("raccoon-test"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        // Errors (e.g. the topic is not there yet) are retried until the deadline.
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((m.payload().unwrap_or_default().to_vec(), m.timestamp().to_millis()));
        }
    }
    // Anything beyond `want` would be a duplicate: give it a moment to show up.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((m.payload().unwrap_or_default().to_vec(), m.timestamp().to_millis()));
        }
    }
    out
}

/// The payloads each topic should hold for these batches, given the pattern `prefix-%s-log`.
pub fn expected_by_topic(prefix: &str, batches: &[pb::SendEventRequest]) -> HashMap<String, Vec<Vec<u8>>> {
    let mut map: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for b in batches {
        for e in &b.events {
            map.entry(format!("{prefix}-{}-log", e.r#type)).or_default().push(e.event_bytes.to_vec());
        }
    }
    map
}

/// Consumes each topic and checks it holds exactly the expected payloads (order-insensitive
/// across batches, no loss, no duplicates).
pub fn assert_topics_hold(kafka: &str, expected: &HashMap<String, Vec<Vec<u8>>>) {
    for (topic, want) in expected {
        let mut got = consume(kafka, topic, want.len(), Duration::from_secs(60));
        let mut want = want.clone();
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "topic {topic}: got {} records, want {}", got.len(), want.len());
        assert_eq!(got, want, "topic {topic}: payloads differ");
    }
}

/// A broker of a test's own on free 127.0.0.1 ports, with extra `scripts/kafka.sh`
/// environment; stopped (and its data removed) when dropped, also when the test fails. For tests
/// that stop the broker or need a non-default broker setting.
pub struct PrivateBroker {
    pub addr: String,
    env: Vec<(String, String)>,
    data_dir: String,
}

/// Two ports free on 127.0.0.1 right now (held together, so they differ).
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

impl PrivateBroker {
    pub fn new(name: &str, extra: &[(&str, &str)]) -> PrivateBroker {
        let data_dir = format!("/tmp/raccoon-kafka-{name}-{}", std::process::id());
        let (port, controller) = free_ports();
        let mut env = vec![
            ("KAFKA_PORT".to_owned(), port.to_string()),
            ("KAFKA_CONTROLLER_PORT".to_owned(), controller.to_string()),
            ("KAFKA_DATA_DIR".to_owned(), data_dir.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        PrivateBroker { addr: format!("127.0.0.1:{port}"), env, data_dir }
    }

    pub fn run(&self, action: &str) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        kafka_script(action, &env);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(project_dir().join("scripts/kafka.sh"))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
