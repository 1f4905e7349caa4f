//! The opening request of a connection on the HTTP port, read as bytes, and the head of the
//! `101 Switching Protocols` that answers a WebSocket upgrade.
//!
//! Nearly every connection a WebSocket client opens starts with one read that holds its whole
//! upgrade request. [`parse_request`] parses that read with httparse (the parser hyper uses) into
//! the `http` crate's types, so [`super::routing::route`] decides it exactly as it decides a request
//! hyper parsed, and [`encode_response`] writes the answer. A connection upgraded this way never
//! meets hyper: none of hyper's per-connection state and buffers (8 KiB to read, more to write)
//! exists for it, even during a burst of thousands of handshakes. Anything this module does not
//! take (an incomplete or oversized head, too many headers, another HTTP version, a target that
//! is not a plain path) is left to hyper, which answers it by its own rules.
//!
//! No runtime, no IO: bytes in, `http` types or bytes out.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// Most headers [`parse_request`] reads; a request with more goes to hyper (whose limit is
/// `SERVER_HTTP_MAX_HEADERS`). A WebSocket upgrade has about ten.
pub const MAX_HEADERS: usize = 64;

/// A complete HTTP/1.1 request head, borrowing its path from the bytes it was parsed from.
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: Method,
    /// The path of the target, without its query.
    pub path: &'a str,
    /// The query of the target (after `?`), if it has one.
    pub query: Option<&'a str>,
    /// The headers, in order, repeated names kept.
    pub headers: HeaderMap,
    /// How many bytes of the input the head took; what follows belongs to the next protocol.
    pub len: usize,
}

/// Parses the request head at the start of `bytes` when it is complete and within the limits:
/// at most `max_headers` headers (and [`MAX_HEADERS`]) and `max_bytes` bytes of head, HTTP/1.1,
/// an origin-form target (`/path?query`). `None` otherwise, when hyper must read the request.
pub fn parse_request(bytes: &[u8], max_headers: usize, max_bytes: usize) -> Option<RequestHead<'_>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots[..max_headers.min(MAX_HEADERS)]);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) if len <= max_bytes => len,
        _ => return None,
    };
    if request.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let target = request.path?;
    if !target.starts_with('/') {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        headers.append(name, value);
    }
    Some(RequestHead { method, path, query, headers, len })
}

/// Appends an HTTP/1.1 response head (status line, headers, blank line) to `out`. Header
/// names are written as the `http` crate holds them (lowercase), as hyper writes them.
pub fn encode_response(status: StatusCode, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{route, Route, UpgradeOrigins, EVENTS_PATH};

    const UPGRADE: &str = "GET /api/v1/events?ignored=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
        Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-User-ID: u1\r\nX-Extra: a\r\nX-Extra: b\r\n\r\n";

    #[test]
    fn a_complete_upgrade_routes_as_hyper_would_route_it() {
        let mut bytes = UPGRADE.as_bytes().to_vec();
        bytes.extend_from_slice(b"\x82\x00 frame bytes");
        let head = parse_request(&bytes, 100, 8192).expect("complete head");
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.path, EVENTS_PATH);
        assert_eq!(head.query, Some("ignored=1"));
        assert_eq!(head.len, UPGRADE.len(), "the bytes after the head are not part of it");
        assert_eq!(head.headers["x-user-id"], "u1");
        let extra: Vec<_> = head.headers.get_all("x-extra").iter().collect();
        assert_eq!(extra, ["a", "b"], "repeated headers are kept in order");
        assert_eq!(
            route(&head.method, head.path, &head.headers, &UpgradeOrigins::Checked(Default::default())),
            Route::Upgrade { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into() }
        );
    }

    #[test]
    fn what_hyper_must_read_is_left_to_it() {
        let bytes = UPGRADE.as_bytes();
        // Incomplete: every proper prefix.
        for cut in [0, 1, 20, bytes.len() - 2, bytes.len() - 1] {
            assert!(parse_request(&bytes[..cut], 100, 8192).is_none(), "prefix of {cut} bytes");
        }
        assert!(parse_request(bytes, 100, bytes.len()).is_some(), "a head of exactly the limit");
        assert!(parse_request(bytes, 100, bytes.len() - 1).is_none(), "a head over the byte limit");
        assert!(parse_request(bytes, 7, 8192).is_none(), "more headers than the limit");
        assert!(parse_request(bytes, 8, 8192).is_some(), "as many headers as the limit");
        let http10 = UPGRADE.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert!(parse_request(http10.as_bytes(), 100, 8192).is_none(), "HTTP/1.0");
        let absolute = UPGRADE.replacen("/api", "http://h/api", 1);
        assert!(parse_request(absolute.as_bytes(), 100, 8192).is_none(), "absolute-form target");
        assert!(parse_request(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 100, 8192).is_none(), "invalid");
    }

    #[test]
    fn a_response_head_parses_back() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let mut out = b"kept".to_vec();
        encode_response(StatusCode::SWITCHING_PROTOCOLS, &headers, &mut out);
        assert_eq!(
            out,
            b"keptHTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
              sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut slots);
        assert_eq!(response.parse(&out[4..]).unwrap(), httparse::Status::Complete(out.len() - 4));
        assert_eq!(response.code, Some(101));
    }
}
