//! The HTTP/1.1 side of the HTTP port: parse a request head, decide what it is (`/ping`, a
//! WebSocket upgrade on `/api/v1/events`, or an error) and write the response head.
//!
//! Why by hand: the port serves three tiny things, and the WebSocket handshake must hand the raw
//! socket (plus any bytes read past the head) to tungstenite. `httparse` does the parsing; this
//! module only routes and validates, in the sans-IO style of the rest of `protocol`.

use thiserror::Error;

/// Largest request head accepted; a longer one gets `431` and the connection is closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers accepted in one request head.
pub const MAX_HEADERS: usize = 64;
/// The WebSocket (and, for Raccoon, REST) endpoint.
pub const EVENTS_PATH: &str = "/api/v1/events";
/// Raccoon's health endpoint: `200 pong` whatever the state.
pub const PING_PATH: &str = "/ping";
/// Liveness: `200` while the server answers at all.
pub const LIVE_PATH: &str = "/health/live";
/// Readiness: `200` when Kafka is reachable and the server is not draining, else `503`.
pub const READY_PATH: &str = "/health/ready";

/// A parsed request head. Header names keep their case; lookups ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// All headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why a request head could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeadError {
    /// Not HTTP/1.x.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// Longer than [`MAX_HEAD_BYTES`].
    #[error("request head exceeds {MAX_HEAD_BYTES} bytes")]
    TooLarge,
}

impl HeadError {
    /// The status line to answer with.
    pub fn status(&self) -> Status {
        match self {
            HeadError::Malformed(httparse::Error::TooManyHeaders) | HeadError::TooLarge => Status::HEADERS_TOO_LARGE,
            HeadError::Malformed(_) => Status::BAD_REQUEST,
        }
    }
}

impl RequestHead {
    /// First value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// First value of header `name` as text, if present and UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether a comma-separated header contains `token` (case-insensitive), as `Connection` and
    /// `Upgrade` are matched.
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request after this one.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("Connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.header_has_token("Connection", "keep-alive")
    }

    /// Whether the request announces a body (which this port never reads).
    pub fn has_body(&self) -> bool {
        let length = self.header_str("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
        length.is_some_and(|n| n > 0) || self.header("Transfer-Encoding").is_some()
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((head, n)))`: the head took the first `n` bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let path = req.path.unwrap_or("/");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            let head = RequestHead {
                method: req.method.unwrap_or("").to_owned(),
                path: path.to_owned(),
                minor_version: req.version.unwrap_or(1),
                headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HeadError::Malformed(e)),
    }
}

/// An HTTP status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The numeric code.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'static str,
}

impl Status {
    /// 200
    pub const OK: Status = Status { code: 200, reason: "OK" };
    /// 400
    pub const BAD_REQUEST: Status = Status { code: 400, reason: "Bad Request" };
    /// 403
    pub const FORBIDDEN: Status = Status { code: 403, reason: "Forbidden" };
    /// 404
    pub const NOT_FOUND: Status = Status { code: 404, reason: "Not Found" };
    /// 405
    pub const METHOD_NOT_ALLOWED: Status = Status { code: 405, reason: "Method Not Allowed" };
    /// 426
    pub const UPGRADE_REQUIRED: Status = Status { code: 426, reason: "Upgrade Required" };
    /// 431
    pub const HEADERS_TOO_LARGE: Status = Status { code: 431, reason: "Request Header Fields Too Large" };
    /// 501
    pub const NOT_IMPLEMENTED: Status = Status { code: 501, reason: "Not Implemented" };
    /// 503
    pub const SERVICE_UNAVAILABLE: Status = Status { code: 503, reason: "Service Unavailable" };
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /ping`: answer `200 pong`.
    Ping,
    /// `GET /health/live`.
    Live,
    /// `GET /health/ready`.
    Ready,
    /// A valid WebSocket upgrade; the value is the `Sec-WebSocket-Accept` to send back.
    Upgrade {
        /// `Sec-WebSocket-Accept` for the 101 response.
        accept_key: String,
    },
    /// Answer with this status and a short plain-text body, then close if `close` is set.
    Error {
        /// The status line.
        status: Status,
        /// One line of explanation, sent as the body.
        body: &'static str,
        /// Extra header line (without CRLF), e.g. `Allow: GET`.
        extra_header: Option<&'static str>,
    },
}

/// Decides what a request is. `check_origin` applies the same-origin rule Raccoon's
/// `SERVER_WEBSOCKET_CHECK_ORIGIN=true` applies: no `Origin`, or `Origin`'s host equal to `Host`.
pub fn route(head: &RequestHead, check_origin: bool) -> Route {
    let error = |status, body, extra_header| Route::Error { status, body, extra_header };
    match head.path.as_str() {
        PING_PATH if head.method == "GET" || head.method == "HEAD" => Route::Ping,
        LIVE_PATH if head.method == "GET" || head.method == "HEAD" => Route::Live,
        READY_PATH if head.method == "GET" || head.method == "HEAD" => Route::Ready,
        PING_PATH | LIVE_PATH | READY_PATH => error(Status::METHOD_NOT_ALLOWED, "use GET", Some("Allow: GET, HEAD")),
        EVENTS_PATH if head.method == "POST" => {
            error(Status::NOT_IMPLEMENTED, "the REST endpoint is not implemented yet; use the WebSocket endpoint", None)
        }
        EVENTS_PATH if head.method != "GET" => {
            error(Status::METHOD_NOT_ALLOWED, "use GET with a WebSocket upgrade", Some("Allow: GET, POST"))
        }
        EVENTS_PATH => upgrade(head, check_origin),
        _ => error(Status::NOT_FOUND, "not found", None),
    }
}

fn upgrade(head: &RequestHead, check_origin: bool) -> Route {
    let error = |status, body, extra_header| Route::Error { status, body, extra_header };
    if !head.header_has_token("Connection", "upgrade") {
        return error(Status::BAD_REQUEST, "websocket: 'Connection' header does not contain 'upgrade'", None);
    }
    if !head.header_has_token("Upgrade", "websocket") {
        return error(Status::BAD_REQUEST, "websocket: 'Upgrade' header does not contain 'websocket'", None);
    }
    if head.minor_version < 1 {
        return error(Status::BAD_REQUEST, "websocket: upgrade requires HTTP/1.1", None);
    }
    if head.header("Sec-WebSocket-Version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return error(
            Status::UPGRADE_REQUIRED,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
            Some("Sec-WebSocket-Version: 13"),
        );
    }
    let key = match head.header("Sec-WebSocket-Key").map(<[u8]>::trim_ascii) {
        Some(key) if !key.is_empty() => key,
        _ => return error(Status::BAD_REQUEST, "websocket: 'Sec-WebSocket-Key' header is missing or blank", None),
    };
    if check_origin && !same_origin(head) {
        return error(Status::FORBIDDEN, "websocket: request origin not allowed", None);
    }
    Route::Upgrade { accept_key: tungstenite::handshake::derive_accept_key(key) }
}

fn same_origin(head: &RequestHead) -> bool {
    let Some(origin) = head.header_str("Origin") else {
        return head.header("Origin").is_none();
    };
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let origin_host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = head.header_str("Host").unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host.trim())
}

/// The `101 Switching Protocols` response head.
pub fn switching_protocols(accept_key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n"
    )
    .into_bytes()
}

/// A complete response with a `text/plain` body. `head_only` leaves the body out (for `HEAD`).
pub fn plain_response(
    status: Status,
    body: &str,
    extra_header: Option<&str>,
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", body.as_bytes(), extra_header, keep_alive, head_only)
}

/// A complete response with any content type.
pub fn response(
    status: Status,
    content_type: &str,
    body: &[u8],
    extra_header: Option<&str>,
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        status.code,
        status.reason,
        body.len()
    );
    if let Some(extra) = extra_header {
        out.push_str(extra);
        out.push_str("\r\n");
    }
    out.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> RequestHead {
        parse_head(text.as_bytes()).unwrap().unwrap().0
    }

    const UPGRADE: &str = "GET /api/v1/events HTTP/1.1\r\nHost: example.com:8080\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-User-ID: 1234\r\n";

    #[test]
    fn ping_routes() {
        assert_eq!(route(&head("GET /ping HTTP/1.1\r\n\r\n"), true), Route::Ping);
        assert_eq!(route(&head("GET /ping?x=1 HTTP/1.1\r\n\r\n"), true), Route::Ping);
        assert!(matches!(
            route(&head("PUT /ping HTTP/1.1\r\n\r\n"), true),
            Route::Error { status: Status::METHOD_NOT_ALLOWED, .. }
        ));
        assert!(matches!(
            route(&head("GET /nope HTTP/1.1\r\n\r\n"), true),
            Route::Error { status: Status::NOT_FOUND, .. }
        ));
    }

    #[test]
    fn valid_upgrade_gets_rfc6455_accept_key() {
        let h = head(&format!("{UPGRADE}\r\n"));
        assert_eq!(route(&h, true), Route::Upgrade { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into() });
        assert_eq!(h.header_str("x-user-id"), Some("1234"));
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert_eq!(parse_head(b"GET /ping HTTP/1.1\r\nHost: x\r\n"), Ok(None));
    }

    #[test]
    fn head_boundary_is_reported() {
        let text = "GET /ping HTTP/1.1\r\n\r\nEXTRA";
        let (_, len) = parse_head(text.as_bytes()).unwrap().unwrap();
        assert_eq!(&text[len..], "EXTRA");
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut text = String::from("GET /ping HTTP/1.1\r\nX-Pad: ");
        text.push_str(&"a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(text.as_bytes()), Err(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status(), Status::HEADERS_TOO_LARGE);
    }

    #[test]
    fn garbage_is_malformed() {
        let err = parse_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap_err();
        assert_eq!(err.status(), Status::BAD_REQUEST);
    }

    #[test]
    fn upgrade_without_websocket_headers_is_400() {
        let h = head("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(route(&h, true), Route::Error { status: Status::BAD_REQUEST, .. }));
    }

    #[test]
    fn wrong_version_is_426_with_supported_version() {
        let text = UPGRADE.replace("Version: 13", "Version: 8");
        assert_eq!(
            route(&head(&format!("{text}\r\n")), true),
            Route::Error {
                status: Status::UPGRADE_REQUIRED,
                body: "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
                extra_header: Some("Sec-WebSocket-Version: 13"),
            }
        );
    }

    #[test]
    fn origin_check_follows_same_origin_rule() {
        let same = head(&format!("{UPGRADE}Origin: http://EXAMPLE.com:8080\r\n\r\n"));
        assert!(matches!(route(&same, true), Route::Upgrade { .. }));
        let other = head(&format!("{UPGRADE}Origin: http://evil.test\r\n\r\n"));
        assert!(matches!(route(&other, true), Route::Error { status: Status::FORBIDDEN, .. }));
        assert!(matches!(route(&other, false), Route::Upgrade { .. }));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(head("GET /ping HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head("GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("GET /ping HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    }

    #[test]
    fn responses_are_well_formed() {
        let text = String::from_utf8(plain_response(Status::OK, "pong", None, true, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 4\r\n"));
        assert!(text.ends_with("\r\n\r\npong"));
        let head_only = plain_response(Status::OK, "pong", None, false, true);
        assert!(String::from_utf8(head_only).unwrap().ends_with("Connection: close\r\n\r\n"));
    }
}
