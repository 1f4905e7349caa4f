//! The HTTP port: each accepted TCP connection is a WebSocket upgrade, which becomes a
//! [`websocket`] connection on the same socket, or hyper's HTTP/1 server:
//! `/ping` and the health endpoints, REST batches ([`rest`]), and the upgrades hyper has to
//! read. Responses are [`body::Body`]s.
//!
//! The connection's first read goes through the shard's read buffer. When it holds a whole
//! upgrade request ([`handshake::parse_request`], routed as every request is), the 101 is written
//! here and hyper never sees the connection: a burst of handshakes holds none of hyper's state
//! or buffers. Whatever else the read holds is put back in front of the socket for hyper.
//!
//! hyper parses requests (keep-alive, pipelining, header size and count limits: 431 over them);
//! [`raccoon_rt`] adapts the socket and keeps the idle and header deadlines (also for the first
//! read); routing is [`raccoon_protocol::routing::route`].
//!
//! Lives on: owning shard.

mod body;
mod rest;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{ready, Poll};

use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::secure::{secure, Port};
use crate::shard::Shard;
use crate::websocket;
use body::{text, Body};

use raccoon_core::health::Readiness;
use raccoon_protocol::handshake;
use raccoon_protocol::identity::Identity;
use raccoon_protocol::routing::{self, Route};
use raccoon_rt::{Activity, HyperIo, Stream};

/// Serves one accepted connection on the HTTP port until it ends (after its TLS handshake, on a
/// TLS port).
pub(crate) async fn serve(shard: Rc<Shard>, tcp: TcpStream) {
    let _open = shard.http_opened();
    let Some(stream) = secure(&shard, tcp, Port::Http).await else { return };
    let peer = stream.peer_addr().ok().map(raccoon_rt::listen::canonical);
    // Errors here only mean the socket is already gone; the reads below notice.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shard.config().server.write_wait));
    let activity = Rc::new(Activity::default());
    let mut io = HyperIo::new(stream, Rc::clone(&activity), shard.http_deadlines());
    match first_read(&shard, &mut io).await {
        First::Upgrade { response, identity, leftover } => {
            let mut stream = io.into_inner();
            if let Err(error) = write_flushed(&mut stream, &response).await {
                tracing::debug!(?peer, %error, "WebSocket handshake not sent");
                return;
            }
            drop(response);
            start_session(shard, stream, leftover, identity, peer);
        }
        First::Hyper(read) => {
            io.unread(read);
            // Boxed: hyper's connection state is allocated only for the connections that use it.
            Box::pin(serve_hyper(shard, io, activity, peer)).await;
        }
        First::Closed => {}
        First::Failed(error) => tracing::debug!(?peer, %error, "HTTP connection ended"),
    }
}

/// Writes `bytes` and flushes them (a TLS stream may hold the last record until flushed).
async fn write_flushed(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// What a connection's first read brought.
enum First {
    /// A complete WebSocket upgrade (see [`handshake`]): the 101 to send, and the bytes read
    /// past the request.
    Upgrade { response: Vec<u8>, identity: Identity, leftover: Bytes },
    /// Anything else, for hyper to read again.
    Hyper(Bytes),
    /// The client left, or shutdown began, before it sent a byte.
    Closed,
    /// The read failed or timed out.
    Failed(std::io::Error),
}

/// Reads the connection's first bytes through the shard's read buffer and answers a complete
/// WebSocket upgrade without hyper: a burst of handshakes then holds no per-connection buffer.
async fn first_read(shard: &Rc<Shard>, io: &mut HyperIo<Stream>) -> First {
    let stop = Cell::new(false);
    let first = shard.drive_connection(
        io,
        |_| stop.set(true),
        |io, cx| {
            if stop.get() {
                return Poll::Ready(First::Closed);
            }
            let mut buffer = shard.ws_read_buffer().borrow_mut();
            Poll::Ready(match ready!(io.poll_read_into(cx, &mut buffer[..])) {
                Ok(0) => First::Closed,
                Ok(n) => examine(shard, &buffer[..n]),
                Err(error) => First::Failed(error),
            })
        },
    );
    first.await.unwrap_or(First::Closed)
}

/// Decides a first read: routed as hyper's requests are, an upgrade is answered here.
fn examine(shard: &Shard, read: &[u8]) -> First {
    let server = &shard.config().server;
    if let Some(head) = handshake::parse_request(read, server.http_max_headers, server.http_max_header_bytes) {
        if let Route::Upgrade { accept_key } =
            routing::route(&head.method, head.path, &head.headers, &server.upgrade_origins)
        {
            let (response, identity) = upgrade_response(shard, &head.headers, head.query, &accept_key);
            let mut bytes = Vec::with_capacity(192);
            handshake::encode_response(response.status(), response.headers(), &mut bytes);
            return First::Upgrade { response: bytes, identity, leftover: Bytes::copy_from_slice(&read[head.len..]) };
        }
    }
    First::Hyper(Bytes::copy_from_slice(read))
}

/// The connection as hyper serves it: everything but the upgrades [`first_read`] answered.
async fn serve_hyper(shard: Rc<Shard>, io: HyperIo<Stream>, activity: Rc<Activity>, peer: Option<SocketAddr>) {
    let upgrade: Rc<Cell<Option<Identity>>> = Rc::default();
    let service = {
        let (shard, upgrade) = (Rc::clone(&shard), Rc::clone(&upgrade));
        hyper::service::service_fn(move |request| {
            let active = activity.begin();
            let (shard, upgrade) = (Rc::clone(&shard), Rc::clone(&upgrade));
            // Boxed: driving the connection by hand (below) needs an `Unpin` future.
            Box::pin(async move {
                let response = handle(&shard, &upgrade, request).await;
                drop(active);
                Ok::<_, Infallible>(response)
            })
        })
    };
    // hyper's own upgrade path needs a `Send` socket; glommio's is not. Instead hyper stops
    // after the 101 response and hands back the socket and whatever it read past the request.
    let mut connection = shard.http1().serve_connection(io, service);
    // At shutdown an idle connection closes at once, a busy one after its response: an open
    // keep-alive connection must not keep the shard (and the process) alive.
    let served =
        shard.drive_connection(&mut connection, |c| c.graceful_shutdown(), |c, cx| c.poll_without_shutdown(cx)).await;
    match served {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            tracing::debug!(?peer, %error, "HTTP connection ended");
            return;
        }
        None => {
            tracing::debug!(?peer, "HTTP connection dropped at shutdown");
            return;
        }
    }
    let parts = connection.into_parts();
    let Some(identity) = upgrade.take() else { return };
    // Only the socket and the bytes read past the request go on: hyper's state, the service
    // and its buffers end here, not held for the life of the WebSocket. The session copies the
    // leftover bytes; hyper's buffer goes with `parts`.
    start_session(shard, parts.io.into_inner(), parts.read_buf, identity, peer);
}

/// Hands an upgraded socket to a [WebSocket connection](websocket::start), in a task of its own.
fn start_session(shard: Rc<Shard>, stream: Stream, leftover: Bytes, identity: Identity, peer: Option<SocketAddr>) {
    let span = tracing::debug_span!("conn", shard = %shard.id(), ?peer, user = %identity.user, group = %identity.group);
    websocket::start(shard, stream, leftover, identity, span);
}

async fn handle(shard: &Rc<Shard>, upgrade: &Cell<Option<Identity>>, request: Request<Incoming>) -> Response<Body> {
    let server = &shard.config().server;
    if let Some(preflight) = shard.cors().as_ref().and_then(|c| c.preflight(request.method(), request.headers())) {
        let mut response = Response::new(Body::default());
        *response.status_mut() = preflight.status;
        *response.headers_mut() = preflight.headers;
        return finish(shard, response);
    }
    // CORS headers go on every response, as Raccoon's middleware wrapped its whole router.
    let cors_request = shard.cors().is_some().then(|| request.headers().clone());
    let route = routing::route(request.method(), request.uri().path(), request.headers(), &server.upgrade_origins);
    if let Route::Error { status: StatusCode::FORBIDDEN, .. } = route {
        let origin = request.headers().get(header::ORIGIN);
        tracing::debug!(?origin, "WebSocket upgrade from an origin not allowed");
    }
    let mut response = match route {
        Route::Ping => text(StatusCode::OK, "pong"),
        Route::Live => text(StatusCode::OK, "live"),
        Route::Ready => match shard.health().readiness() {
            Readiness::Ready => text(StatusCode::OK, "ready"),
            Readiness::KafkaUnreachable => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: Kafka unreachable"),
            Readiness::Draining => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down"),
        },
        Route::Error { status, body, header } => {
            let mut response = text(status, body);
            if let Some((name, value)) = header {
                response.headers_mut().insert(name, HeaderValue::from_static(value));
            }
            response
        }
        Route::Upgrade { accept_key } => {
            let (response, identity) = upgrade_response(shard, request.headers(), request.uri().query(), &accept_key);
            upgrade.set(Some(identity));
            return response;
        }
        Route::Rest => rest::handle(shard, request).await,
    };
    if let (Some(cors), Some(headers)) = (&shard.cors(), cors_request) {
        cors.decorate(&headers, response.headers_mut());
    }
    finish(shard, response)
}

/// The 101 that accepts a WebSocket upgrade (CORS headers added, as on every response), and
/// who the connection belongs to (see [`raccoon_protocol::identity`]).
fn upgrade_response(
    shard: &Shard,
    headers: &HeaderMap,
    query: Option<&str>,
    accept_key: &str,
) -> (Response<Body>, Identity) {
    let rules = &shard.config().server.identity;
    let named = rules.for_upgrade(headers, query);
    let mut response = switching_protocols(accept_key);
    if let Some(protocol) = named.protocol {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    if let Some(cors) = &shard.cors() {
        cors.decorate(headers, response.headers_mut());
    }
    let identity = match named.id.filter(|id| !id.is_empty()) {
        Some(user) => Identity { user, group: named.group, anonymous: false },
        None if rules.anonymous => Identity { user: shard.anonymous_name(), group: named.group, anonymous: true },
        None => Identity { user: String::new(), group: named.group, anonymous: false },
    };
    (finish(shard, response), identity)
}

/// While the server drains, every response closes its connection.
fn finish(shard: &Shard, mut response: Response<Body>) -> Response<Body> {
    if shard.draining() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The 101 response that completes a WebSocket handshake.
fn switching_protocols(accept_key: &str) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
