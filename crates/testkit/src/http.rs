//! Plain HTTP/1.1 to the server's ports over a `TcpStream`, no client library: the request goes
//! out as written, so tests can send exactly the bytes they mean.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sends a raw HTTP request and returns the whole response (the server closes after it, or the
/// read gives up after 10 s).
pub fn http_to(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set a read timeout");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` with `Connection: close`: status code (0 when there was no answer) and body.
pub fn get_from(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_to(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Polls `GET path` until its status is `want` and returns that body; panics after `limit`.
pub fn wait_for_status(addr: SocketAddr, path: &str, want: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get_from(addr, path);
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} still answers {status} {body:?} after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
