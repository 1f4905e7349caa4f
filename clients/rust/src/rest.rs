//! The REST client: one `POST /api/v1/events` per batch over pooled HTTP/1.1 keep-alive
//! connections (hyper's client), protobuf or JSON bodies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::Uri;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::event::Batch;
use crate::options::{common_builder_methods, Options};
use crate::retry::with_retries;
use crate::stats::StatsSnapshot;
use crate::wire::{self, Encoding, Response};
use crate::Error;

/// The path events are posted to when the URL names none.
pub const EVENTS_PATH: &str = "/api/v1/events";

/// A REST client. Cheap to clone: clones share the connection pool and the stats.
///
/// Lives on: any tokio runtime (its connections are driven by tasks spawned on the runtime of
/// the first request).
#[derive(Clone, Debug)]
pub struct RestClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: Uri,
    encoding: Encoding,
    opts: Options,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Builds a [`RestClient`].
#[derive(Debug)]
pub struct RestBuilder {
    url: String,
    encoding: Encoding,
    opts: Options,
}

impl RestBuilder {
    common_builder_methods!();

    /// The body's encoding (default protobuf, `Content-Type: application/proto`).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The client. Fails on an invalid URL (`http://` or `https://`), header or TLS file.
    pub fn build(self) -> Result<RestClient, Error> {
        let opts = self.opts.finish()?;
        let mut url: Uri = self.url.parse().map_err(|e| Error::Config(format!("URL {:?}: {e}", self.url)))?;
        let secure = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(Error::Config(format!("URL {:?}: expected http:// or https://", self.url))),
        };
        if url.path() == "/" || url.path().is_empty() {
            let mut parts = url.into_parts();
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static(EVENTS_PATH));
            url = Uri::from_parts(parts).map_err(|e| Error::Config(e.to_string()))?;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(opts.connect_timeout));
        connector.enforce_http(false);
        let connector = https_connector(&opts, secure, HttpVersion::Http1, connector)?;
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build(connector);
        Ok(RestClient { inner: Arc::new(Inner { url, encoding: self.encoding, opts, http }) })
    }
}

/// Which HTTP version a connector speaks (and offers by ALPN over TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpVersion {
    /// REST: `http/1.1`.
    Http1,
    /// gRPC: `h2`.
    Http2,
}

/// `connector` with TLS for `https://` URLs (`secure`); plain URLs pass through. REST and gRPC
/// both connect through it.
pub(crate) fn https_connector(
    opts: &Options,
    secure: bool,
    version: HttpVersion,
    connector: HttpConnector,
) -> Result<HttpsConnector<HttpConnector>, Error> {
    // Without an https:// URL the TLS settings are not read: no system roots loaded for nothing.
    // hyper-rustls sets ALPN itself, from the version enabled.
    let tls = if secure { opts.tls.client_config(&[])? } else { crate::tls::TlsOptions::plain_config() };
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(Arc::unwrap_or_clone(tls)).https_or_http();
    Ok(match version {
        HttpVersion::Http1 => builder.enable_http1().wrap_connector(connector),
        HttpVersion::Http2 => builder.enable_http2().wrap_connector(connector),
    })
}

impl RestClient {
    /// A builder for a client posting to `url`, e.g. `http://127.0.0.1:8080` (the path defaults
    /// to `/api/v1/events`).
    pub fn builder(url: &str) -> RestBuilder {
        RestBuilder { url: url.to_owned(), encoding: Encoding::default(), opts: Options::default() }
    }

    /// Sends one batch and waits for its reply: the `req_guid` and the successful reply, or the
    /// error (an error reply is [`Error::Reply`]). Retries as the policy says.
    pub async fn send(&self, batch: impl Into<Batch>) -> Result<(String, Response), Error> {
        let batch = batch.into();
        let body = wire::encode(&batch, self.inner.encoding);
        let response =
            with_retries(&self.inner.opts, batch.req_guid(), |retry| self.attempt(body.clone(), retry > 0)).await?;
        Ok((batch.req_guid().to_owned(), response))
    }

    /// What this client and its clones did so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.opts.stats.snapshot()
    }

    async fn attempt(&self, body: Bytes, retry: bool) -> Result<Response, Error> {
        let inner = &*self.inner;
        let addr = inner.url.to_string();
        let mut request = http::Request::post(inner.url.clone())
            .header(CONTENT_TYPE, inner.encoding.content_type())
            .body(Full::new(body.clone()))
            .map_err(|e| Error::Config(e.to_string()))?;
        request.headers_mut().extend(inner.opts.headers.clone());
        inner.opts.stats.wrote(body.len(), retry);
        let exchange = async {
            let response = inner.http.request(request).await.map_err(|e| {
                inner.opts.stats.conn_error();
                let reason =
                    format!("{e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
                if e.is_connect() {
                    Error::Connect { addr: addr.clone(), reason }
                } else {
                    Error::Transport { addr: addr.clone(), reason }
                }
            })?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Transport { addr: addr.clone(), reason: e.to_string() })?
                .to_bytes();
            inner.opts.stats.received(body.len());
            let not_a_reply =
                || Error::Http { status, body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned() };
            let decoded = if content_type.starts_with("application/json") {
                wire::decode_json(&body)
            } else if content_type.contains("proto") {
                wire::decode_proto(&body)
            } else {
                return Err(not_a_reply());
            };
            decoded.map_err(|why| if status == 200 { Error::Decode(why) } else { not_a_reply() })
        };
        tokio::time::timeout(inner.opts.timeout, exchange)
            .await
            .unwrap_or(Err(Error::Timeout { addr: addr.clone(), timeout: inner.opts.timeout }))
    }
}
