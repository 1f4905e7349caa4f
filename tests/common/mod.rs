//! The server's integration tests: the test kit (`crates/testkit`: the real binary, the real
//! Kafka broker, consumers reading back, bounded waits), plus what only these tests speak: a
//! synchronous WebSocket client, hand-made upgrades and frames, one gRPC call, batches of the
//! wire contract and the checks of their replies.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use raccoon_protocol::pb;
pub use raccoon_testkit::*;
use tungstenite::protocol::WebSocket;
use tungstenite::Message;

/// The root package's directory: the repository.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts this package's `raccoon` binary against `kafka` with extra environment
/// ([`TestServer::start`]).
pub fn start_server(kafka: &str, env: &[(&str, &str)]) -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_raccoon"), kafka, env)
}

/// Opening a WebSocket to a [`TestServer`].
pub trait Connect {
    /// Opens a WebSocket connection to `/api/v1/events` with `headers`.
    fn connect(&self, headers: &[(&str, &str)]) -> Client;
}

impl Connect for TestServer {
    fn connect(&self, headers: &[(&str, &str)]) -> Client {
        Client::connect(self.addr, headers)
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
        let path = ::http::uri::PathAndQuery::from_static(path);
        client.unary(request, path, codec).await.map(tonic::Response::into_inner)
    })
}

/// Posts `request` as protobuf to the REST endpoint at `addr` with extra `headers`: the HTTP
/// status and the decoded reply, whatever the status.
pub fn rest_post(
    addr: SocketAddr,
    request: &pb::SendEventRequest,
    headers: &[(&str, &str)],
) -> (u16, pb::SendEventResponse) {
    let agent = ureq::AgentBuilder::new().timeout(REPLY_LIMIT).build();
    let mut call = agent.post(&format!("http://{addr}/api/v1/events")).set("Content-Type", "application/proto");
    for (name, value) in headers {
        call = call.set(name, value);
    }
    let response = match call.send_bytes(&request.encode_to_vec()) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("POST to {addr} failed: {error}"),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    (status, pb::SendEventResponse::decode(&body[..]).expect("a SendEventResponse"))
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
/// the byte offsets `cuts`, each once the server has read the one before, and `after` (a
/// client's frames) goes out in the same write as the request's last piece. Returns the
/// response head and the connection as a client.
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
    let (server, client) = (stream.peer_addr().unwrap(), stream.local_addr().unwrap());
    for &cut in cuts.iter().filter(|&&c| c > 0 && c < end) {
        stream.write_all(&bytes[from..cut]).unwrap();
        stream.flush().unwrap();
        // The next piece goes out once the server has read this one, so no read of the server's
        // gets two pieces at once, however late it reads.
        wait_for_unread_at_most(server, client, 0, Duration::from_secs(10));
        from = cut;
    }
    stream.write_all(&bytes[from..]).unwrap();
    let head = read_head(&mut stream);
    stream.set_read_timeout(Some(REPLY_LIMIT)).unwrap();
    let ws = WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None);
    (head, Client { ws })
}

/// Bytes the client has sent on the connection `client` -> `server` that the server has not
/// read: the server socket's receive queue plus the client socket's send queue (what the
/// server's receive window did not admit yet), from `/proc/net/tcp` and `/proc/net/tcp6` (ports
/// are the 4 hex digits after the colon; both ends are on this host).
pub fn unread_bytes(server: SocketAddr, client: SocketAddr) -> u64 {
    let mut table = String::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        table.push_str(&std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}")));
    }
    let port_of = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    let (mut server_rx, mut client_tx) = (None, None);
    for line in table.lines().filter(|line| !line.trim_start().starts_with("sl")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (tx, rx) = fields[4].split_once(':').unwrap();
        let (local, remote) = (port_of(fields[1]), port_of(fields[2]));
        if local == server.port() && remote == client.port() {
            server_rx = Some(u64::from_str_radix(rx, 16).unwrap());
        } else if local == client.port() && remote == server.port() {
            client_tx = Some(u64::from_str_radix(tx, 16).unwrap());
        }
    }
    match (server_rx, client_tx) {
        (Some(rx), Some(tx)) => rx + tx,
        _ => panic!("connection {client} -> {server} not found in /proc/net/tcp or tcp6"),
    }
}

/// Waits until at most `at_most` bytes the client sent on `client` -> `server` are unread by
/// the server ([`unread_bytes`]) and returns how many are; panics after `limit`.
pub fn wait_for_unread_at_most(server: SocketAddr, client: SocketAddr, at_most: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let unread = unread_bytes(server, client);
        if unread <= at_most {
            return unread;
        }
        assert!(
            Instant::now() < deadline,
            "after {limit:?} the server still left {unread} bytes unread (want <= {at_most})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits, without reading, until the server has closed `stream` (FIN or reset); returns the
/// moment that was seen, or `None` after `limit`. Nothing is read, so no ping is answered
/// meanwhile.
pub fn hangup_within(stream: &TcpStream, limit: Duration) -> Option<Instant> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
        // SAFETY: one valid pollfd on the stack, and a descriptor the caller owns.
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(&mut pfd, 1, 10) };
        if ready > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return Some(Instant::now());
        }
    }
    None
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
        assert_topic_holds(kafka, topic, want);
    }
}

/// Reads back every topic of `sent` and checks: each event of an `acked` batch is there exactly
/// once; any other event (its batch was answered "retry") at most once; nothing else.
pub fn assert_acked_once(kafka: &str, prefix: &str, sent: &[pb::SendEventRequest], acked: &[String]) {
    let mut by_topic: HashMap<String, Vec<(Vec<u8>, bool)>> = HashMap::new();
    for batch in sent {
        let acked = acked.contains(&batch.req_guid);
        for event in &batch.events {
            by_topic
                .entry(format!("{prefix}-{}-log", event.r#type))
                .or_default()
                .push((event.event_bytes.to_vec(), acked));
        }
    }
    for (topic, events) in by_topic {
        // Until every acknowledged event is in (others may never come), then half a second more.
        let want = events.iter().filter(|(_, acked)| *acked).count();
        let got = consume(kafka, &topic, want, Duration::from_secs(15));
        let mut counts: HashMap<&[u8], usize> = HashMap::new();
        for payload in &got {
            *counts.entry(payload).or_default() += 1;
        }
        for (payload, acked) in &events {
            let n = counts.remove(&payload[..]).unwrap_or(0);
            if *acked {
                assert_eq!(
                    n,
                    1,
                    "{topic}: an acknowledged event is there {n} times: {:?}",
                    String::from_utf8_lossy(payload)
                );
            } else {
                assert!(n <= 1, "{topic}: an event sent once is there {n} times");
            }
        }
        assert!(counts.is_empty(), "{topic}: records nobody sent: {}", counts.len());
    }
}

/// The nearest-rank `q` quantile of `sorted` (ascending): the smallest value that at least a
/// fraction `q` of them do not exceed; zero for no values.
pub fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
    sorted.get(((q * sorted.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default()
}
