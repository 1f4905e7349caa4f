//! One WebSocket connection: admission (server-wide limit and identifier, see
//! [`registry`](crate::registry)), then a reader task (frames in, batches out to the publisher
//! queues; text frames are JSON, binary frames protobuf), a [`writer`] (replies,
//! delivery acks, pings, pongs, [keep-alive](keepalive) and the closing handshake, in
//! order). Everything the writer sends comes through one local queue,
//! [`Outbound`]. The socket is read through the shard's read buffer ([`socket`]) and
//! framed by [`raccoon_protocol::websocket`]: an idle connection holds no buffer.
//!
//! The connection's identifier is released the moment the connection ends: when the client's
//! Close arrives (before the writer answers it), when the reader stops, or before the
//! writer sends its own Close, whichever is first; so a client may reconnect with the same id
//! as soon as it sees the close.
//!
//! One folder, one file a part: [`reader`], [`writer`] (its closing handshake decided by
//! [`close`], sans-IO), [`keepalive`] (sans-IO), [`outbound`] (what the writer is asked to do),
//! [`queue`] (the queue it arrives by), [`socket`] (the socket both share) and [`shared`] (the
//! state they share).
//!
//! Hot path (the reader): no allocation per event, no logging above DEBUG per frame.
//!
//! Bounds: a connection has at most `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` frames awaiting their
//! reply (a semaphore; the writer returns a permit per reply written). At the limit, or while the
//! publisher queue is full, the reader stops reading and TCP pushes back on the client.
//!
//! Lives on: owning shard (!Send).

mod close;
mod keepalive;
mod outbound;
mod queue;
mod reader;
mod shared;
mod socket;
mod writer;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use glommio::sync::Semaphore;
use tracing::{Instrument, Span};

use raccoon_core::handoff::{Origin, ShardId};
use raccoon_protocol::identity::Identity;
use raccoon_protocol::reply::Reply;
use raccoon_protocol::websocket::FrameReader;
use raccoon_rt::Stream;

use crate::dedup::Dedup;
use crate::registry::RegistryError;
use crate::shard::{AckSink, Shard};
use keepalive::{Keepalive, Liveness};
use outbound::Outbound;
use queue::Queue;
use reader::Reader;
use shared::ConnShared;
use socket::WsSocket;
use writer::{write_refusal, Writer};

/// Starts a connection on its completed upgrade: admits it and spawns its writer and reader, or
/// a task that refuses it. `leftover`: what the client sent past the upgrade request.
///
/// Two tasks, each holding only its own state (the writer's future is its wait loop, not this
/// setup), and one allocation for what they share ([`ConnShared`]): what an idle connection
/// costs is mostly these.
pub(crate) fn start(shard: Rc<Shard>, stream: Stream, leftover: Bytes, identity: Identity, span: Span) {
    let server = &shard.config().server;
    // No read timeout: keep-alive decides when a client is silent (see `keepalive`).
    let _ = stream.set_read_timeout(None);
    let socket = WsSocket::new(stream);
    let mut frames = FrameReader::new(server.max_frame_bytes);
    frames.push(&leftover);
    drop(leftover);
    let (out_tx, out_rx) = Queue::new();
    let (conn, group, admission) = match shard.register(Rc::clone(&out_tx) as Rc<dyn AckSink>, &identity) {
        Ok(admitted) => admitted,
        Err(refused) => {
            let shard_id = shard.id();
            glommio::spawn_local(async move { refuse(shard_id, &socket, &refused).await }.instrument(span)).detach();
            return;
        }
    };
    span.in_scope(|| tracing::debug!(%conn, "connection open"));
    if shard.draining() {
        // Admitted as shutdown began, after the shard told its connections to go away.
        out_tx.push(Outbound::GoingAway);
    }

    let max_inflight = server.max_inflight_batches as u64;
    let shared = Rc::new(ConnShared {
        socket,
        permits: Semaphore::new(max_inflight),
        ping: Cell::new(None),
        live: Liveness::default(),
        json_in_flight: RefCell::default(),
        dedup: server.dedup_window.map(|window| RefCell::new(Dedup::new(window))),
        admission: Rc::clone(&admission),
    });
    let reader = Reader {
        shard: Rc::clone(&shard),
        conn,
        group,
        origin: Arc::new(Origin { conn_id: identity.user.as_str().into(), group: identity.group.as_str().into() }),
        shared: Rc::clone(&shared),
        frames,
        out: Rc::clone(&out_tx),
        next_seq: 0,
    };
    let reader = glommio::spawn_local(reader.run().instrument(span.clone())).detach();
    shard.set_reader(conn, reader);
    let keepalive = Keepalive::new(server.ping_interval, server.pong_wait);
    let writer = Writer { shard, conn, shared, out_tx, out_rx, max_inflight, group, keepalive };
    glommio::spawn_local(writer.run().instrument(span)).detach();
}

/// Refuses an upgraded connection as Raccoon does: one binary reply (code 4 or 5), a 1008
/// close, then the TCP close (dropping the stream), within the write deadline.
async fn refuse(shard: ShardId, socket: &WsSocket, refused: &RegistryError) {
    // The connection's span is at DEBUG: these lines name their shard themselves.
    let (reply, reason) = match refused {
        RegistryError::Full { .. } => {
            tracing::info!(%shard, error = %refused, "connection refused");
            (Reply::max_connections(), "Max connection reached".to_owned())
        }
        RegistryError::Duplicate { identifier } => {
            tracing::debug!(%shard, error = %refused, "connection refused");
            let reply = Reply::duplicate_connection(&identifier.group, &identifier.id);
            (reply, format!("duplicate connection: {}", identifier.id))
        }
    };
    write_refusal(socket, &reply, &reason).await;
}
