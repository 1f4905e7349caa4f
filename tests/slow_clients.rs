//! Clients that never read their acks, or connect and say nothing, stall nobody else: on the
//! WebSocket, REST and gRPC transports, the other clients of the same server are answered at
//! once, while the slow ones are held back (backpressure) or dropped at a deadline.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;

/// How long a well-behaved client's batch may take while the slow one misbehaves.
const PROMPT: Duration = Duration::from_secs(3);

/// A WebSocket client that sends batch after batch and reads nothing.
#[test]
fn a_websocket_client_that_never_reads_stalls_nobody() {
    let kafka = shared_kafka();
    let prefix = unique("slow-ws");
    let server = start_server(
        kafka,
        &[
            ("SERVER_SHARDS", "1"),
            ("SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS", "1000"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut slow = server.connect(&[("X-User-ID", "slow")]);
    slow.ws.get_ref().set_nonblocking(true).unwrap();
    let frame = batch("s", &prefix, &["a"], 1).encode_to_vec();
    let mut sent = 0;
    let flood_until = Instant::now() + Duration::from_secs(2);
    // Until its socket buffer is full (the server stopped reading it) or 2 s passed.
    while Instant::now() < flood_until {
        match slow.ws.send(tungstenite::Message::Binary(frame.clone().into())) {
            Ok(()) => sent += 1,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
    assert!(sent > 128, "the slow client could send only {sent} batches");
    let mut good = server.connect(&[("X-User-ID", "good")]);
    for i in 0..20 {
        let started = Instant::now();
        let guid = format!("good-{i}");
        good.send_batch(&batch(&guid, &prefix, &["a"], 2));
        assert_success(&good.reply(), &guid);
        assert!(started.elapsed() < PROMPT, "a good client waited {:?}", started.elapsed());
    }
}

/// An HTTP client that pipelines requests and never reads the responses.
#[test]
fn a_rest_client_that_never_reads_stalls_nobody() {
    let server = start_server(shared_kafka(), &[("SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS", "1000")]);
    let body = batch("pipelined", "slow-rest", &["a"], 1).encode_to_vec();
    let mut request = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_nonblocking(true).unwrap();
    let flood_until = Instant::now() + Duration::from_secs(2);
    let mut written = 0usize;
    'flood: while Instant::now() < flood_until {
        let mut offset = 0;
        while offset < request.len() {
            match slow.write(&request[offset..]) {
                Ok(n) => offset += n,
                Err(_) => break 'flood,
            }
        }
        written += 1;
    }
    assert!(written > 100, "only {written} requests written");
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(server.get("/ping"), (200, "pong".to_owned()));
        assert!(started.elapsed() < PROMPT, "a good client waited {:?}", started.elapsed());
    }
    // The slow client itself is either answered in full once it reads (the responses fitted
    // in the socket buffers) or was dropped when a response could not be written in time.
    slow.set_nonblocking(false).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut seen = Vec::new();
    let outcome = loop {
        match slow.read(&mut sink) {
            Ok(0) => break "dropped",
            Ok(n) => {
                seen.extend_from_slice(&sink[..n]);
                if count(&seen, b"HTTP/1.1 200 OK") >= written {
                    break "answered";
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "dropped",
            Err(e) => panic!("the slow client was neither answered nor dropped: {e}"),
        }
    };
    eprintln!("slow REST client: {written} requests, {outcome}");
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Connections to the gRPC port that send nothing, or half an HTTP/2 preface.
#[test]
fn silent_grpc_connections_stall_nobody_and_are_closed() {
    let server = start_server(shared_kafka(), &[("SERVER_HTTP_IDLE_TIMEOUT_MS", "1000")]);
    let mut silent = TcpStream::connect(server.grpc_addr).unwrap();
    let mut half = TcpStream::connect(server.grpc_addr).unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    // Meanwhile the HTTP port and a fresh gRPC connection answer at once.
    let started = Instant::now();
    assert_eq!(server.get("/ping").0, 200);
    assert!(started.elapsed() < PROMPT);
    for stream in [&mut silent, &mut half] {
        let started = Instant::now();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                // The server's SETTINGS frame, then the close.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "the connection was not closed");
        assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    }
}
