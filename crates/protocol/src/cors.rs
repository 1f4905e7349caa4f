//! The CORS policy of the HTTP port (`SERVER_CORS_*`, spec section 1.8), sans-IO.
//!
//! Raccoon wraps its whole HTTP router in gorilla/handlers' CORS middleware when
//! `SERVER_CORS_ENABLED=true`; this module gives the same answers as a pure function of the
//! request's method and headers. The HTTP service asks [`CorsPolicy::preflight`] first: `Some`
//! is the complete answer to send instead of routing the request; `None` means route it, and
//! then [`CorsPolicy::decorate`] adds the CORS headers to whatever response the route produced.
//!
//! What a client sees, as with gorilla:
//! - No `Origin`, or an origin not allowed: the response is left alone (the request is still
//!   served). A preflight from such an origin gets an empty `200` with no CORS headers.
//! - An allowed origin: `Access-Control-Allow-Origin` echoes it, or is `*` when the allowed list
//!   holds `*` or is empty (gorilla allows every origin when given none); entries are matched as
//!   [`super::origin`] says. `Access-Control-Allow-Credentials: true` when credentials are
//!   allowed, and `Vary: Origin` when more than one entry or a wildcard is configured (the
//!   answer then depends on the origin). A response carrying `X-Raccoon-Error-Detail` exposes it
//!   (`Access-Control-Expose-Headers`), so a page's script can read it.
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed
//!   origin: `405` when the requested method is not allowed (methods compare exactly, after the
//!   configured ones are upper-cased); `403` when any requested header is neither configured nor
//!   one of the always-allowed `Accept`, `Accept-Language`, `Content-Language`, `Origin` (names
//!   compare case-insensitively); otherwise `200` with `Access-Control-Allow-Headers` listing
//!   the requested headers (canonical case, comma-separated), `Access-Control-Allow-Methods`
//!   naming the requested method unless it is GET, HEAD or POST (which browsers never need
//!   listed), and `Access-Control-Max-Age` when it is above 0, capped at 600 s as gorilla does.
//!   The `403` and `405` answers carry no CORS header, so the browser fails the request.
//!
//! Where this server differs from gorilla (fixes of real defects):
//! - Only real preflights are intercepted. gorilla answered every `OPTIONS` request without an
//!   allowed `Origin` (including one with no `Origin` at all, which is no CORS request) with an
//!   empty `200`, and one with an allowed origin but no `Access-Control-Request-Method` with
//!   `400`, so neither ever reached the router; here both are routed like any other request.
//! - `Access-Control-Allow-Headers` also lists the always-allowed headers when they were
//!   requested. gorilla left them out, yet a browser requests them only when their value is not
//!   CORS-safelisted, and then fails the preflight unless they are listed: the headers gorilla
//!   claimed to allow were refused.
//! - Every `Access-Control-Request-Headers` line is checked and answered; gorilla read the first.
//! - Configured origins match the request's `Origin` regardless of ASCII case (browsers send
//!   scheme and host in lower case, so `http://LocalHost:3000` never matched in gorilla), a
//!   scheme's default port is the same as none, and wildcard entries such as
//!   `https://*.example.com` take every subdomain (gorilla compared whole strings).
//! - `Vary: Origin` is appended to a `Vary` the response already has instead of replacing it.
//!
//! Kept as gorilla has it, although questionable: with `*` and credentials both configured, the
//! answer is `Access-Control-Allow-Origin: *` plus `Access-Control-Allow-Credentials: true`,
//! which browsers refuse for credentialed requests (gorilla declines to reflect arbitrary
//! origins, and so does this server).

use http::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, StatusCode};

use super::origin::OriginList;
use super::routing::ERROR_DETAIL_HEADER;

/// Request headers a preflight may always ask for, whatever the configuration (gorilla's set).
pub const ALWAYS_ALLOWED_HEADERS: [&str; 4] = ["Accept", "Accept-Language", "Content-Language", "Origin"];

/// Largest `Access-Control-Max-Age` sent; larger configured values are sent as this (gorilla).
pub const MAX_AGE_CAP_SECS: u64 = 600;

/// Methods a browser never needs listed in `Access-Control-Allow-Methods` (CORS-safelisted).
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// The CORS settings, from the `SERVER_CORS_*` keys (validated by `raccoon_config`).
///
/// Lives on: built once from the configuration; every shard owns a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Allowed origins (`scheme://host[:port]`); `*` or an empty list allows any origin.
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may request.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may request, besides [`ALWAYS_ALLOWED_HEADERS`].
    pub allowed_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` of preflight answers; 0 sends none.
    pub max_age_secs: u64,
}

/// The CORS policy, normalised from a [`CorsConfig`] so answering allocates only the headers.
///
/// Lives on: each shard (clone).
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// The allowed origins; `None` when every origin is (answered with `*`).
    origins: Option<OriginList>,
    /// Upper-cased, trimmed, without duplicates.
    methods: Vec<String>,
    /// Lower-cased, trimmed, without duplicates, including [`ALWAYS_ALLOWED_HEADERS`].
    headers: Vec<String>,
    allow_credentials: bool,
    max_age: Option<HeaderValue>,
    vary_origin: bool,
}

/// The answer to a preflight request: send it with an empty body instead of routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// 200, or 403 / 405 when the preflight asked for a header or method not allowed.
    pub status: StatusCode,
    /// The CORS headers of the answer (none on 403 / 405 or for a disallowed origin).
    pub headers: HeaderMap,
}

impl Preflight {
    fn bare(status: StatusCode) -> Self {
        Preflight { status, headers: HeaderMap::new() }
    }
}

/// Trimmed, non-empty entries of `items`, normalised by `norm`, without duplicates.
fn normalised<'a>(items: impl IntoIterator<Item = &'a str>, norm: fn(&str) -> String) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        let item = norm(item);
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A header name in canonical case (`x-user-id` becomes `X-User-Id`), as gorilla echoes them.
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

impl CorsPolicy {
    /// Normalises `config`: trims entries, drops empty ones and duplicates, upper-cases methods,
    /// adds the always-allowed headers and caps the max age at [`MAX_AGE_CAP_SECS`].
    pub fn new(config: &CorsConfig) -> Self {
        let (origins, vary_origin) = match OriginList::parse(config.allowed_origins.iter().map(String::as_str)) {
            Ok(list) if list.allows_any() || list.is_empty() => (None, false),
            Ok(list) => {
                let vary = list.varies();
                (Some(list), vary)
            }
            // `raccoon_config` refuses a malformed entry at startup; should one get here, the
            // policy allows no origin rather than every origin.
            Err(_) => (Some(OriginList::default()), false),
        };
        let headers = ALWAYS_ALLOWED_HEADERS.into_iter().chain(config.allowed_headers.iter().map(String::as_str));
        let max_age_secs = config.max_age_secs.min(MAX_AGE_CAP_SECS);
        CorsPolicy {
            origins,
            methods: normalised(config.allowed_methods.iter().map(String::as_str), str::to_ascii_uppercase),
            headers: normalised(headers, str::to_ascii_lowercase),
            allow_credentials: config.allow_credentials,
            max_age: (max_age_secs > 0).then(|| HeaderValue::from(max_age_secs)),
            vary_origin,
        }
    }

    /// For a preflight request (OPTIONS with Access-Control-Request-Method): the complete answer to send
    /// instead of routing the request (status + headers, empty body). None: not a preflight, route it.
    ///
    /// A request without `Origin` is no CORS request, so it is not a preflight either.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Preflight> {
        if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
            return None;
        }
        let requested_method = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let Some(allow_origin) = self.allowed_origin(headers) else {
            return Some(Preflight::bare(StatusCode::OK));
        };
        let method_text = requested_method.to_str().map(str::trim).unwrap_or_default();
        if !self.methods.iter().any(|m| m == method_text) {
            return Some(Preflight::bare(StatusCode::METHOD_NOT_ALLOWED));
        }

        let mut allow_headers = Vec::new();
        for line in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
            let Ok(line) = line.to_str() else {
                return Some(Preflight::bare(StatusCode::FORBIDDEN));
            };
            for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    return Some(Preflight::bare(StatusCode::FORBIDDEN));
                }
                allow_headers.push(canonical_header_name(name));
            }
        }

        let mut out = HeaderMap::new();
        if !allow_headers.is_empty() {
            // Each name matched a configured or always-allowed name and came from a valid header
            // value, so the joined text is a valid value; if not, refuse rather than guess.
            let Ok(value) = HeaderValue::from_str(&allow_headers.join(",")) else {
                return Some(Preflight::bare(StatusCode::FORBIDDEN));
            };
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if let Some(max_age) = &self.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if !SAFELISTED_METHODS.contains(&method_text) {
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, requested_method.clone());
        }
        self.add_origin_headers(allow_origin, &mut out);
        Some(Preflight { status: StatusCode::OK, headers: out })
    }

    /// Adds the CORS headers an actual (non-preflight) response gets, given the request's headers.
    /// A response with an [`ERROR_DETAIL_HEADER`] also exposes it to the page's script.
    ///
    /// Nothing is added when the request has no `Origin` or its origin is not allowed.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if let Some(allow_origin) = self.allowed_origin(request) {
            if response.contains_key(ERROR_DETAIL_HEADER) {
                response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("X-Raccoon-Error-Detail"));
            }
            self.add_origin_headers(allow_origin, response);
        }
    }

    /// The `Access-Control-Allow-Origin` value for this request, or `None` when its `Origin` is
    /// missing, empty or not allowed.
    fn allowed_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        let origin = request.get(ORIGIN).filter(|o| !o.is_empty())?;
        match &self.origins {
            None => Some(HeaderValue::from_static("*")),
            Some(list) => list.allows(origin.to_str().ok()?).then(|| origin.clone()),
        }
    }

    /// The headers every answer to an allowed origin carries.
    fn add_origin_headers(&self, allow_origin: HeaderValue, out: &mut HeaderMap) {
        if self.allow_credentials {
            out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if self.vary_origin && !varies_on_origin(out) {
            out.append(VARY, HeaderValue::from_static("Origin"));
        }
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    }
}

/// Whether the `Vary` headers already name `Origin` (or `*`, which covers it).
fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim().eq_ignore_ascii_case("origin") || f.trim() == "*")
}

#[cfg(test)]
mod tests;
