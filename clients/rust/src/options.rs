//! What every client's builder takes: app info, headers, retries, timeouts, StatsD.
//!
//! Headers every request (REST request, gRPC call, WebSocket upgrade) carries:
//!
//! | Header | Value |
//! |---|---|
//! | `User-Agent` | [`USER_AGENT`](crate::USER_AGENT), `raccoon-client/<version>` |
//! | `X-User-ID` (see `user_id_header`) | the connection's user id: set with `user_id`, else a UUID v4 per client, so that two clients never collide as one identifier on the server (which allows one WebSocket per id and group) and gRPC calls have the id metadata the server requires |
//! | `X-App-Id`, `X-App-Name`, `X-App-Version` | the [`App`] info, when set |
//! | any other | `header(name, value)` |

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::stats::Stats;

/// The header naming the application's id.
pub const APP_ID_HEADER: &str = "x-app-id";
/// The header naming the application.
pub const APP_NAME_HEADER: &str = "x-app-name";
/// The header carrying the application's version.
pub const APP_VERSION_HEADER: &str = "x-app-version";
/// The server's default connection id header (`SERVER_WEBSOCKET_CONN_ID_HEADER`).
pub const DEFAULT_USER_ID_HEADER: &str = "x-user-id";

/// The application that uses the client, sent with every request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct App {
    /// Its id, e.g. `shop-123`.
    pub id: String,
    /// Its name, e.g. `shop-backend`.
    pub name: String,
    /// Its version, e.g. `1.0`.
    pub version: String,
}

/// How often, and how far apart, a failed batch is tried again with the same `req_guid`
/// (which failures count: [`Error::is_retryable`](crate::Error::is_retryable)). The same policy
/// paces a WebSocket client's reconnects, with its own attempt limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: u32,
    /// The wait before the first retry; each further wait doubles it.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 100 ms, 200 ms, 400 ms apart, at most 2 s.
    fn default() -> RetryPolicy {
        RetryPolicy { max_retries: 3, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// The wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The settings all builders share.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) headers: HeaderMap,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) stats: Stats,
    /// For `https://` and `wss://` URLs.
    pub(crate) tls: crate::tls::TlsOptions,
    /// The first invalid setting, reported by `build`/`connect`.
    pub(crate) invalid: Option<String>,
    user_id_header: HeaderName,
    user_id: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
        Options {
            headers,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            stats: Stats::default(),
            tls: crate::tls::TlsOptions::default(),
            invalid: None,
            user_id_header: HeaderName::from_static(DEFAULT_USER_ID_HEADER),
            user_id: None,
        }
    }
}

impl Options {
    pub(crate) fn header(&mut self, name: &str, value: &str) {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => self.invalid(format!("header {name:?}: {value:?} is not a valid HTTP header")),
        }
    }

    pub(crate) fn user_id_header(&mut self, name: &str) {
        match HeaderName::try_from(name) {
            Ok(n) => self.user_id_header = n,
            Err(_) => self.invalid(format!("{name:?} is not a valid header name")),
        }
    }

    pub(crate) fn user_id(&mut self, id: &str) {
        self.user_id = Some(id.to_owned());
    }

    pub(crate) fn app(&mut self, app: &App) {
        self.header(APP_ID_HEADER, &app.id);
        self.header(APP_NAME_HEADER, &app.name);
        self.header(APP_VERSION_HEADER, &app.version);
    }

    pub(crate) fn invalid(&mut self, why: String) {
        self.invalid.get_or_insert(why);
    }

    /// Checks the settings and fixes the user id; the headers every request carries.
    pub(crate) fn finish(mut self) -> Result<Options, crate::Error> {
        if let Some(why) = self.invalid.take() {
            return Err(crate::Error::Config(why));
        }
        let id = self.user_id.take().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let value = HeaderValue::try_from(id.as_str())
            .map_err(|_| crate::Error::Config(format!("user id {id:?} is not a valid header value")))?;
        self.headers.insert(self.user_id_header.clone(), value);
        Ok(self)
    }
}

/// The setters every builder has, over its `opts: Options` field.
macro_rules! common_builder_methods {
    () => {
        /// Adds a header to every request (replacing one of the same name).
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.opts.header(name, value);
            self
        }

        /// The connection's user id (default: a UUID v4 per client).
        pub fn user_id(mut self, id: &str) -> Self {
            self.opts.user_id(id);
            self
        }

        /// The header that carries the user id (default `X-User-ID`, the server's default
        /// `SERVER_WEBSOCKET_CONN_ID_HEADER`).
        pub fn user_id_header(mut self, name: &str) -> Self {
            self.opts.user_id_header(name);
            self
        }

        /// App info sent with every request as `X-App-Id`, `X-App-Name` and `X-App-Version`.
        pub fn app(mut self, app: &$crate::App) -> Self {
            self.opts.app(app);
            self
        }

        /// Retries of failed batches (default [`RetryPolicy::default`](crate::RetryPolicy)).
        pub fn retry(mut self, policy: $crate::RetryPolicy) -> Self {
            self.opts.retry = policy;
            self
        }

        /// How long one attempt may wait for its reply (default 30 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.opts.timeout = timeout;
            self
        }

        /// How long a connection attempt may take (default 10 s).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.opts.connect_timeout = timeout;
            self
        }

        /// Sends StatsD statistics over UDP to `addr` (`host:port`), names prefixed with
        /// `prefix` (see [`stats`](crate::stats)). Off unless called.
        pub fn statsd(mut self, addr: &str, prefix: &str) -> Self {
            match $crate::stats::udp_client(addr, prefix) {
                Ok(client) => self.opts.stats = $crate::stats::Stats::with_statsd(client),
                Err(why) => self.opts.invalid(why),
            }
            self
        }

        /// Trusts the CA certificates in this PEM file for `https://` and `wss://` URLs, instead
        /// of the system's roots (a private CA, a test CA).
        pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.opts.tls.ca_file = Some(path.into());
            self
        }

        /// Presents this PEM certificate chain and key to a server that asks for one (mTLS).
        pub fn tls_client_cert(
            mut self,
            cert: impl Into<std::path::PathBuf>,
            key: impl Into<std::path::PathBuf>,
        ) -> Self {
            self.opts.tls.client_cert = Some((cert.into(), key.into()));
            self
        }

        /// Accepts any server certificate, for any name: the connection is encrypted, but to
        /// whoever answers. For a test server only; never on by default.
        pub fn tls_insecure_skip_verify(mut self) -> Self {
            self.opts.tls.insecure = true;
            self
        }

        /// Sends StatsD statistics through a `cadence` client of the caller's (any sink).
        pub fn statsd_client(mut self, client: cadence::StatsdClient) -> Self {
            self.opts.stats = $crate::stats::Stats::with_statsd(client);
            self
        }
    };
}
pub(crate) use common_builder_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=6).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000]);
        assert_eq!(p.backoff(200), Duration::from_secs(2));
    }

    #[test]
    fn every_request_names_the_client_the_user_and_the_app() {
        let mut o = Options::default();
        o.app(&App { id: "a1".into(), name: "shop".into(), version: "1.0".into() });
        let o = o.finish().unwrap();
        assert_eq!(o.headers["user-agent"], crate::USER_AGENT);
        assert!(crate::USER_AGENT.starts_with("raccoon-client/"));
        assert_eq!(o.headers["x-app-name"], "shop");
        assert!(uuid::Uuid::parse_str(o.headers["x-user-id"].to_str().unwrap()).is_ok());
        let mut bad = Options::default();
        bad.header("bad header", "v");
        assert!(matches!(bad.finish(), Err(crate::Error::Config(_))));
    }
}
