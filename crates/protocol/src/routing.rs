//! What a request on the HTTP port is, decided from its method, path and headers: `/ping`,
//! the health endpoints, a WebSocket upgrade or a REST batch on `/api/v1/events`, or an error
//! (404, 405, 400/403/426 for a bad upgrade). hyper parses the requests; this module only
//! routes and validates, on the `http` crate's types, so it knows no runtime and is tested
//! without sockets.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::origin::OriginList;
use super::Encoding;

/// The WebSocket and REST endpoint.
pub const EVENTS_PATH: &str = "/api/v1/events";
/// Raccoon's health endpoint: `200 pong` whatever the state.
pub const PING_PATH: &str = "/ping";
/// Liveness: `200` while the server answers at all.
pub const LIVE_PATH: &str = "/health/live";
/// Readiness: `200` when the publisher can take events and the server is not draining, else `503`.
pub const READY_PATH: &str = "/health/ready";

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /ping`: answer `200 pong`.
    Ping,
    /// `GET /health/live`.
    Live,
    /// `GET /health/ready`.
    Ready,
    /// A valid WebSocket upgrade on `/api/v1/events`.
    Upgrade {
        /// `Sec-WebSocket-Accept` for the 101 response.
        accept_key: String,
    },
    /// `POST /api/v1/events`: a batch over REST.
    Rest,
    /// Answer with this status and a one-line plain-text body.
    Error {
        /// The status.
        status: StatusCode,
        /// One line of explanation, sent as the body.
        body: &'static str,
        /// A header the status calls for (`Allow` for 405, `Sec-WebSocket-Version` for 426).
        header: Option<(HeaderName, &'static str)>,
    },
}

/// Which pages may open a WebSocket (`SERVER_WEBSOCKET_CHECK_ORIGIN`,
/// `SERVER_WEBSOCKET_ALLOWED_ORIGINS`). Browsers send `Origin` on every upgrade; other clients
/// usually send none.
///
/// Lives on: built once from the configuration; every shard owns a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeOrigins {
    /// Every origin (`SERVER_WEBSOCKET_CHECK_ORIGIN=false`).
    Any,
    /// An upgrade with no `Origin`, with an `Origin` whose host is the request's `Host`
    /// (Raccoon's same-origin rule, gorilla's default), or with an `Origin` on the list. An
    /// empty list leaves Raccoon's rule alone.
    Checked(OriginList),
}

impl UpgradeOrigins {
    fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            UpgradeOrigins::Any => true,
            UpgradeOrigins::Checked(list) => {
                let Some(origin) = headers.get(header::ORIGIN) else {
                    return true;
                };
                same_origin(headers) || origin.to_str().is_ok_and(|o| list.allows(o))
            }
        }
    }
}

/// Decides what a request is. `origins` says which pages may open a WebSocket.
pub fn route(method: &Method, path: &str, headers: &HeaderMap, origins: &UpgradeOrigins) -> Route {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        PING_PATH if read => Route::Ping,
        LIVE_PATH if read => Route::Live,
        READY_PATH if read => Route::Ready,
        PING_PATH | LIVE_PATH | READY_PATH => error(StatusCode::METHOD_NOT_ALLOWED, "use GET", allow("GET, HEAD")),
        EVENTS_PATH if method == Method::POST => Route::Rest,
        EVENTS_PATH if method == Method::GET => upgrade(headers, origins),
        EVENTS_PATH => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST for a batch, or GET with a WebSocket upgrade",
            allow("GET, POST"),
        ),
        _ => error(StatusCode::NOT_FOUND, "not found", None),
    }
}

fn error(status: StatusCode, body: &'static str, header: Option<(HeaderName, &'static str)>) -> Route {
    Route::Error { status, body, header }
}

fn allow(methods: &'static str) -> Option<(HeaderName, &'static str)> {
    Some((header::ALLOW, methods))
}

/// Whether a comma-separated header contains `token` (case-insensitive), as `Connection` and
/// `Upgrade` are matched.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn upgrade(headers: &HeaderMap, origins: &UpgradeOrigins) -> Route {
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return error(StatusCode::BAD_REQUEST, "websocket: 'Connection' header does not contain 'upgrade'", None);
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return error(StatusCode::BAD_REQUEST, "websocket: 'Upgrade' header does not contain 'websocket'", None);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes().trim_ascii()) != Some(b"13") {
        return error(
            StatusCode::UPGRADE_REQUIRED,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
            Some((header::SEC_WEBSOCKET_VERSION, "13")),
        );
    }
    // The origin before the key, in the order Raccoon's upgrader (gorilla's) checks them.
    if !origins.allows(headers) {
        return error(StatusCode::FORBIDDEN, "websocket: request origin not allowed", None);
    }
    let key = match headers.get(header::SEC_WEBSOCKET_KEY).map(|v| v.as_bytes().trim_ascii()) {
        Some(key) if !key.is_empty() => key,
        _ => return error(StatusCode::BAD_REQUEST, "websocket: 'Sec-WebSocket-Key' header is missing or blank", None),
    };
    Route::Upgrade { accept_key: tungstenite::handshake::derive_accept_key(key) }
}

/// Raccoon's rule: the `Origin`'s host (and port) is the request's `Host`, ignoring case.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some((_, rest)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let origin_host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host.trim())
}

/// The [`Encoding`] a REST request's `Content-Type` names: `application/json` or
/// `application/proto` (also `application/protobuf` and `application/x-protobuf`), with any
/// parameters (`; charset=utf-8`) and in any case. `None` for anything else, or no header.
/// (Raccoon matched the whole header value exactly, so `application/json; charset=utf-8` failed.)
pub fn rest_encoding(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else if ["application/proto", "application/protobuf", "application/x-protobuf"]
        .iter()
        .any(|m| media.eq_ignore_ascii_case(m))
    {
        Some(Encoding::Proto)
    } else {
        None
    }
}

/// Response header with the detail of a REST refusal whose `reason` is Raccoon's fixed text
/// (`deserialization failure`, `invalid content type`): for a person debugging, where no Raccoon
/// client looks.
pub const ERROR_DETAIL_HEADER: &str = "x-raccoon-error-detail";

/// Longest [`ERROR_DETAIL_HEADER`] value, in bytes; a longer detail is cut and ends with `...`.
pub const ERROR_DETAIL_MAX_BYTES: usize = 512;

/// `detail` as an [`ERROR_DETAIL_HEADER`] value: printable ASCII kept, every other character
/// escaped as `\u{..}` (a decoder's message may quote the client's bytes), at most
/// [`ERROR_DETAIL_MAX_BYTES`].
pub fn error_detail(detail: &str) -> HeaderValue {
    let mut out = String::with_capacity(detail.len().min(ERROR_DETAIL_MAX_BYTES));
    for c in detail.chars() {
        let before = out.len();
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        if out.len() > ERROR_DETAIL_MAX_BYTES - 3 {
            out.truncate(before);
            out.push_str("...");
            break;
        }
    }
    HeaderValue::from_str(&out).expect("invariant: printable ASCII is a valid header value")
}

/// The first value of header `name` as text, if present and visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    const UPGRADE: &[(&str, &str)] = &[
        ("host", "example.com:8080"),
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("x-user-id", "1234"),
    ];

    /// Raccoon's default: `SERVER_WEBSOCKET_CHECK_ORIGIN=true` and no list.
    fn raccoons_rule() -> UpgradeOrigins {
        UpgradeOrigins::Checked(OriginList::default())
    }

    fn with(extra: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut all = UPGRADE.to_vec();
        all.extend_from_slice(extra);
        headers(&all)
    }

    #[test]
    fn ping_and_health_route_with_get_and_head_only() {
        let none = HeaderMap::new();
        assert_eq!(route(&Method::GET, "/ping", &none, &raccoons_rule()), Route::Ping);
        assert_eq!(route(&Method::HEAD, "/ping", &none, &raccoons_rule()), Route::Ping);
        assert_eq!(route(&Method::GET, "/health/live", &none, &raccoons_rule()), Route::Live);
        assert_eq!(route(&Method::GET, "/health/ready", &none, &raccoons_rule()), Route::Ready);
        assert!(matches!(
            route(&Method::PUT, "/ping", &none, &raccoons_rule()),
            Route::Error { status: StatusCode::METHOD_NOT_ALLOWED, .. }
        ));
        assert!(matches!(
            route(&Method::GET, "/nope", &none, &raccoons_rule()),
            Route::Error { status: StatusCode::NOT_FOUND, .. }
        ));
    }

    #[test]
    fn events_path_is_rest_on_post_and_405_otherwise() {
        let none = HeaderMap::new();
        assert_eq!(route(&Method::POST, EVENTS_PATH, &none, &raccoons_rule()), Route::Rest);
        match route(&Method::PUT, EVENTS_PATH, &none, &raccoons_rule()) {
            Route::Error { status, header, .. } => {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
                assert_eq!(header, Some((header::ALLOW, "GET, POST")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn valid_upgrade_gets_rfc6455_accept_key() {
        assert_eq!(
            route(&Method::GET, EVENTS_PATH, &with(&[]), &raccoons_rule()),
            Route::Upgrade { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into() }
        );
    }

    #[test]
    fn upgrade_without_websocket_headers_is_400() {
        let h = headers(&[("host", "x")]);
        assert!(matches!(
            route(&Method::GET, EVENTS_PATH, &h, &raccoons_rule()),
            Route::Error { status: StatusCode::BAD_REQUEST, .. }
        ));
    }

    #[test]
    fn wrong_version_is_426_with_supported_version() {
        let mut h = with(&[]);
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(
            route(&Method::GET, EVENTS_PATH, &h, &raccoons_rule()),
            Route::Error {
                status: StatusCode::UPGRADE_REQUIRED,
                body: "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
                header: Some((header::SEC_WEBSOCKET_VERSION, "13")),
            }
        );
    }

    #[test]
    fn origin_check_follows_same_origin_rule() {
        let same = with(&[("origin", "http://EXAMPLE.com:8080")]);
        assert!(matches!(route(&Method::GET, EVENTS_PATH, &same, &raccoons_rule()), Route::Upgrade { .. }));
        let other = with(&[("origin", "http://evil.test")]);
        assert!(matches!(
            route(&Method::GET, EVENTS_PATH, &other, &raccoons_rule()),
            Route::Error { status: StatusCode::FORBIDDEN, .. }
        ));
        assert!(matches!(route(&Method::GET, EVENTS_PATH, &other, &UpgradeOrigins::Any), Route::Upgrade { .. }));
    }

    #[test]
    fn listed_origins_may_upgrade_besides_the_same_origin() {
        let list =
            UpgradeOrigins::Checked(OriginList::parse(["http://localhost:3000", "https://*.shop.test"]).unwrap());
        let upgrade = |origin: &'static str| route(&Method::GET, EVENTS_PATH, &with(&[("origin", origin)]), &list);
        assert!(matches!(upgrade("http://localhost:3000"), Route::Upgrade { .. }));
        assert!(matches!(upgrade("https://www.shop.test"), Route::Upgrade { .. }));
        assert!(matches!(upgrade("http://example.com:8080"), Route::Upgrade { .. }), "same origin");
        for refused in ["http://localhost:3001", "http://www.shop.test", "https://shop.test", "null", "garbage"] {
            assert!(
                matches!(upgrade(refused), Route::Error { status: StatusCode::FORBIDDEN, .. }),
                "{refused} is not allowed"
            );
        }
        assert!(matches!(route(&Method::GET, EVENTS_PATH, &with(&[]), &list), Route::Upgrade { .. }), "no Origin");
    }

    #[test]
    fn error_details_are_printable_and_bounded() {
        assert_eq!(error_detail("missing field `events` at line 1"), "missing field `events` at line 1");
        assert_eq!(error_detail("bad\nbyte \u{1} é"), "bad\\u{a}byte \\u{1} \\u{e9}");
        let long = error_detail(&"x".repeat(2000));
        assert_eq!(long.len(), ERROR_DETAIL_MAX_BYTES);
        assert!(long.to_str().unwrap().ends_with("..."));
        let escapes = error_detail(&"\u{0}".repeat(2000));
        assert!(escapes.len() <= ERROR_DETAIL_MAX_BYTES && escapes.to_str().unwrap().ends_with("..."));
        assert_eq!(error_detail(&"y".repeat(ERROR_DETAIL_MAX_BYTES - 3)).len(), ERROR_DETAIL_MAX_BYTES - 3);
    }

    #[test]
    fn content_types_with_parameters_and_aliases() {
        let ct = |v: &str| rest_encoding(&headers(&[("content-type", v)]));
        assert_eq!(ct("application/json"), Some(Encoding::Json));
        assert_eq!(ct("Application/JSON; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(ct("application/proto"), Some(Encoding::Proto));
        assert_eq!(ct("application/x-protobuf"), Some(Encoding::Proto));
        assert_eq!(ct("text/plain"), None);
        assert_eq!(ct("application/jsonx"), None);
        assert_eq!(rest_encoding(&HeaderMap::new()), None);
    }
}
