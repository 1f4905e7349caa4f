//! The TLS handshake of a connection a shard accepted, on a port with TLS
//! (`SERVER_TLS_*`, `SERVER_GRPC_TLS_*`): within `SERVER_HTTP_HEADER_TIMEOUT_MS`, counted in
//! `tls_handshakes_total` by outcome, a failure logged at DEBUG only (a scanner's handshakes
//! must not fill the log). On a port without TLS the socket goes on as it is.
//!
//! Lives on: owning shard (!Send).

use std::future::Future;
use std::rc::Rc;

use glommio::net::TcpStream;

use raccoon_metrics::{tags, MetricId};
use raccoon_rt::Stream;

use crate::shard::Shard;

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// `SERVER_WEBSOCKET_PORT`: WebSocket, REST, health.
    Http,
    /// `SERVER_GRPC_PORT`.
    Grpc,
}

/// The connection as the transport reads it: `tcp` itself, or TLS over it once the handshake
/// succeeded; `None` when it failed or shutdown dropped it (the socket is closed).
pub(crate) async fn secure(shard: &Rc<Shard>, tcp: TcpStream, port: Port) -> Option<Stream> {
    let Some((tls, scratch)) = shard.tls(port) else {
        return Some(Stream::Plain(tcp));
    };
    let peer = tcp.peer_addr().ok().map(raccoon_rt::listen::canonical);
    let deadline = shard.config().server.http_header_timeout;
    // Under the shard's shutdown like any HTTP connection: a handshake still running when the
    // drain gives up on HTTP connections is dropped, not waited for until its deadline.
    let mut handshake = Box::pin(raccoon_rt::tls::accept(tcp, tls.config(), scratch, deadline));
    let accepted = shard.drive_connection(&mut handshake, |_| {}, |handshake, cx| handshake.as_mut().poll(cx)).await?;
    let result = match &accepted {
        Ok(_) => "ok",
        Err(error) => error.reason(),
    };
    {
        let mut metrics = shard.metrics().borrow_mut();
        let (port_tag, result_tag) = (metrics.tag(port.name()), metrics.tag(result));
        metrics.add(MetricId::TlsHandshakes, tags([port_tag, result_tag]), 1);
    }
    match accepted {
        Ok(stream) => Some(Stream::Tls(Box::new(stream))),
        Err(error) => {
            tracing::debug!(?peer, port = port.name(), %error, "TLS handshake failed");
            None
        }
    }
}

impl Port {
    /// Its metric tag.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Port::Http => "http",
            Port::Grpc => "grpc",
        }
    }
}
