//! One accepted TCP connection on the HTTP port: read request heads, answer `/ping` and errors
//! (with keep-alive), and hand WebSocket upgrades to [`session`](super::session).
//!
//! Lives on: owning shard.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tracing::Instrument;

use super::{session, Shard};
use crate::health::Readiness;
use crate::protocol::http::{self, Route, Status};

/// How long a client may take to send a request head (and how long an idle keep-alive HTTP
/// connection is kept).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a WebSocket connection belongs to, from the configured headers.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) user: String,
    pub(crate) group: String,
}

pub(super) async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    // Errors here only mean the socket is already gone; the reads below notice.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HEAD_TIMEOUT));
    let _ = stream.set_write_timeout(Some(shard.config.server.write_wait));
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let parsed = loop {
            if !buf.is_empty() {
                match http::parse_head(&buf) {
                    Ok(Some(parsed)) => break parsed,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(?peer, %error, "bad request head");
                        let body = error.to_string();
                        let _ =
                            stream.write_all(&http::plain_response(error.status(), &body, None, false, false)).await;
                        return;
                    }
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let (head, head_len) = parsed;
        buf.drain(..head_len);
        let keep_alive = head.keep_alive() && !head.has_body();
        let head_only = head.method == "HEAD";
        let response = match http::route(&head, shard.config.server.check_origin) {
            Route::Ping => http::plain_response(Status::OK, "pong", None, keep_alive, head_only),
            Route::Live => http::plain_response(Status::OK, "live", None, keep_alive, head_only),
            Route::Ready => {
                let (status, body) = match shard.health.readiness() {
                    Readiness::Ready => (Status::OK, "ready"),
                    Readiness::KafkaUnreachable => (Status::SERVICE_UNAVAILABLE, "not ready: Kafka unreachable"),
                    Readiness::Draining => (Status::SERVICE_UNAVAILABLE, "not ready: shutting down"),
                };
                http::plain_response(status, body, None, keep_alive, head_only)
            }
            Route::Error { status, body, extra_header } => {
                http::plain_response(status, body, extra_header, keep_alive, head_only)
            }
            Route::Upgrade { accept_key } => {
                if stream.write_all(&http::switching_protocols(&accept_key)).await.is_err() {
                    return;
                }
                let identity = identity(&shard, &head);
                let span = tracing::info_span!("conn", shard = %shard.id, ?peer, user = %identity.user, group = %identity.group);
                session::run(shard, stream, std::mem::take(&mut buf), identity).instrument(span).await;
                return;
            }
        };
        if stream.write_all(&response).await.is_err() || !keep_alive {
            return;
        }
    }
}

fn identity(shard: &Shard, head: &http::RequestHead) -> Identity {
    let server = &shard.config.server;
    let user = head.header_str(&server.conn_id_header).unwrap_or("").to_owned();
    let group = server
        .conn_group_header
        .as_deref()
        .and_then(|name| head.header_str(name))
        .filter(|g| !g.is_empty())
        .unwrap_or(&server.conn_group_default)
        .to_owned();
    Identity { user, group }
}
