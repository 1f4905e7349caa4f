//! One WebSocket connection: admission (server-wide limit and identifier, see
//! [`registry`](super::registry)), then a reader task (frames in, batches out to the publisher
//! queues; text frames are JSON, binary frames protobuf), a [writer](super::writer) (replies,
//! delivery acks, pings and the closing handshake, strictly one at a
//! time) and a pinger ([`keepalive`](super::keepalive)). Everything the writer sends comes
//! through one local queue, [`Outbound`].
//!
//! The connection's identifier is released the moment the connection ends: when the client's
//! Close arrives (before tungstenite writes the reply), when the reader stops, or before the
//! writer sends its own Close, whichever is first; so a client may reconnect with the same id
//! as soon as it sees the close.
//!
//! Hot path (the reader): no allocation per event, no logging above DEBUG per frame.
//!
//! Bounds: a connection has at most `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` frames awaiting their
//! reply (a semaphore; the writer returns a permit per reply written). At the limit, or while the
//! publisher queue is full, the reader stops reading and TCP pushes back on the client.
//!
//! Lives on: owning shard (!Send).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_tungstenite::{WebSocketReceiver, WebSocketStream};
use bytes::Bytes;
use futures_lite::StreamExt;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use tungstenite::error::CapacityError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::Role;
use tungstenite::Message;

use super::conn::Identity;
use super::keepalive::{ping_loop, Liveness};
use super::registry::{Admission, RegistryError};
use super::submit::{record_batch, record_refused, submit, PUBLISHER_STOPPED};
use super::writer::{close_frame, Writer};
use super::Shard;
use crate::config::AckMode;
use crate::dedup::{Dedup, Verdict};
use crate::metrics::{tags, MetricId, Tag};
use crate::protocol::batch::decode_batch;
use crate::protocol::json::decode_json_batch;
use crate::protocol::reply::{unix_now_secs, Reply};
use crate::protocol::Wire;
use crate::types::{Ack, AckToken, Batch, ConnId, Seq};

/// The shared sending side of a connection's [`Outbound`] queue (reader, pinger, router).
pub(crate) type OutboundTx = Rc<LocalSender<Outbound>>;

/// What the writer is asked to do.
pub(crate) enum Outbound {
    /// A reply the reader produced (decode error, ack on receipt), and when its batch was
    /// received if it answers one. Returns one permit.
    Reply(Reply, Wire, Option<Instant>),
    /// A delivery outcome from Kafka (`EVENT_ACK=1`). Returns one permit.
    Delivery(Ack),
    /// Time to ping the client.
    Ping,
    /// The client pinged: make sure the pong tungstenite queued is on the wire. At most one
    /// is queued at a time (see `ConnCtx::pong_queued`).
    Pong,
    /// The reader stopped.
    ReaderDone(ReaderEnd),
    /// The client left a ping unanswered for `SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS` (from the
    /// pinger): drop the connection.
    Silent,
    /// The server is shutting down: finish in-flight batches, close with 1001.
    GoingAway,
    /// Stop waiting for in-flight batches and close now.
    DrainDeadline,
    /// Made up by the closing writer itself: no batch is in flight any more.
    Drained,
}

/// Why the reader stopped.
#[derive(Debug)]
pub(crate) enum ReaderEnd {
    /// The client closed the connection (or it dropped).
    PeerClosed,
    /// The socket read timed out (the server sets no read timeout on WebSockets; silence is
    /// the pinger's to judge, see [`Outbound::Silent`]).
    Silent,
    /// The socket failed.
    Failed(String),
    /// The client broke the rules; close with this code and reason once in-flight batches
    /// are answered.
    Close(CloseCode, String),
}

impl ReaderEnd {
    fn from_error(error: tungstenite::Error) -> Self {
        use tungstenite::Error;
        match error {
            Error::ConnectionClosed | Error::AlreadyClosed => ReaderEnd::PeerClosed,
            Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                ReaderEnd::Close(CloseCode::Size, format!("frame of {size} bytes exceeds max_frame_bytes {max_size}"))
            }
            Error::Capacity(other) => ReaderEnd::Close(CloseCode::Size, other.to_string()),
            Error::Protocol(p) => ReaderEnd::Close(CloseCode::Protocol, p.to_string()),
            Error::Utf8(_) => ReaderEnd::Close(CloseCode::Invalid, "text frame is not valid UTF-8".to_owned()),
            Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => ReaderEnd::Silent,
            other => ReaderEnd::Failed(other.to_string()),
        }
    }
}

/// Runs a connection from the completed upgrade to its end.
pub(super) async fn run(shard: Rc<Shard>, stream: TcpStream, leftover: Vec<u8>, identity: Identity) {
    let server = &shard.config.server;
    // No read timeout: the pinger decides when a client is silent (see `keepalive`).
    let _ = stream.set_read_timeout(None);
    let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(shard.ws_config)).await;
    let (out_tx, out_rx) = local_channel::new_unbounded();
    let out_tx = Rc::new(out_tx);
    let (conn, group, admission) = match shard.register(Rc::clone(&out_tx), &identity) {
        Ok(admitted) => admitted,
        Err(refused) => return refuse(ws, &refused).await,
    };
    tracing::debug!(%conn, "connection open");

    let (mut sender, receiver) = ws.split();
    let max_inflight = server.max_inflight_batches as u64;
    let permits = Rc::new(Semaphore::new(max_inflight));
    let pong_queued = Rc::new(Cell::new(false));
    let dedup = server.dedup_window.map(|window| Rc::new(RefCell::new(Dedup::new(window))));
    let live = Rc::new(Liveness::default());
    let json_in_flight = JsonInFlight::default();
    let ctx = ConnCtx {
        conn,
        group,
        group_name: Arc::from(identity.group.as_str()),
        pong_queued: Rc::clone(&pong_queued),
        dedup: dedup.clone(),
        json_in_flight: Rc::clone(&json_in_flight),
        live: Rc::clone(&live),
        admission: Rc::clone(&admission),
    };
    let reader =
        glommio::spawn_local(read_loop(Rc::clone(&shard), ctx, receiver, Rc::clone(&out_tx), Rc::clone(&permits)))
            .detach();
    shard.set_reader(conn, reader);
    let pinger =
        glommio::spawn_local(ping_loop(Rc::clone(&out_tx), live, server.ping_interval, server.pong_wait)).detach();

    let writer = Writer {
        shard: &shard,
        sender: &mut sender,
        out_tx,
        permits: &permits,
        max_inflight,
        group,
        pong_queued,
        dedup,
        admission,
        json_in_flight,
    };
    writer.run(out_rx).await;

    pinger.cancel();
    shard.unregister(conn);
    tracing::debug!(%conn, "connection closed");
}

/// Refuses an upgraded connection as Raccoon does: one binary reply (code 4 or 5), a 1008
/// close, then the TCP close (dropping the stream). Each write has the write deadline.
async fn refuse(mut ws: WebSocketStream<TcpStream>, refused: &RegistryError) {
    let (reply, reason) = match refused {
        RegistryError::Full { .. } => {
            tracing::info!(error = %refused, "connection refused");
            (Reply::max_connections(), "Max connection reached".to_owned())
        }
        RegistryError::Duplicate { identifier } => {
            tracing::debug!(error = %refused, "connection refused");
            let reply = Reply::duplicate_connection(&identifier.group, &identifier.id);
            (reply, format!("duplicate connection: {}", identifier.id))
        }
    };
    let reply = reply.encode_proto(unix_now_secs());
    if ws.send(Message::Binary(reply.into())).await.is_ok() {
        let _ = ws.close(Some(close_frame(CloseCode::Policy, &reason))).await;
    }
}

/// Sequence numbers of a connection's JSON batches awaiting their delivery outcome, so that
/// their replies go out as JSON text frames. Empty (and unallocated) for protobuf clients; at
/// most `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` entries.
pub(super) type JsonInFlight = Rc<RefCell<HashSet<Seq>>>;

/// Who a reader reads for.
struct ConnCtx {
    conn: ConnId,
    /// The group's metric tag on this shard.
    group: Tag,
    /// The group's name, carried by every batch for the publisher's metrics.
    group_name: Arc<str>,
    /// An [`Outbound::Pong`] is waiting for the writer: a ping flood queues one, not one each
    /// (tungstenite keeps only the latest pong too).
    pong_queued: Rc<Cell<bool>>,
    /// Recent `req_guid`s, when `SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED`.
    dedup: Option<Rc<RefCell<Dedup>>>,
    /// Batches sent as JSON (text frames) awaiting their delivery outcome.
    json_in_flight: JsonInFlight,
    /// Whether the reader waits for the client, for the pinger.
    live: Rc<Liveness>,
    /// The connection's identifier, released when the client closes or the reader stops.
    admission: Rc<Admission>,
}

async fn read_loop(
    shard: Rc<Shard>,
    ctx: ConnCtx,
    mut receiver: WebSocketReceiver<TcpStream>,
    out: OutboundTx,
    permits: Rc<Semaphore>,
) {
    let end = read_frames(&shard, &ctx, &mut receiver, &out, &permits).await;
    ctx.admission.release();
    // Raccoon counts the read that ends a connection as a failed batch read.
    let t = shard.tags;
    shard.metrics.borrow_mut().add(MetricId::BatchesRead, tags([t.failed, t.close_error, ctx.group]), 1);
    let _ = out.try_send(Outbound::ReaderDone(end));
}

async fn read_frames(
    shard: &Shard,
    ctx: &ConnCtx,
    receiver: &mut WebSocketReceiver<TcpStream>,
    out: &LocalSender<Outbound>,
    permits: &Semaphore,
) -> ReaderEnd {
    let mut next_seq = 0u64;
    loop {
        let next = {
            let _listening = ctx.live.listen();
            receiver.next().await
        };
        let message = match next {
            None => return ReaderEnd::PeerClosed,
            Some(Ok(message)) => message,
            Some(Err(error)) => return ReaderEnd::from_error(error),
        };
        let (wire, frame) = match message {
            Message::Binary(frame) => (Wire::Proto, frame),
            Message::Text(text) => (Wire::Json, Bytes::from(text)),
            // tungstenite queues the pong and writes it on the next read; the writer flushes it
            // too, so that a pong that cannot be written is counted as such.
            Message::Ping(_) => {
                if !ctx.pong_queued.replace(true) {
                    let _ = out.try_send(Outbound::Pong);
                }
                continue;
            }
            // A Close is answered by tungstenite in the next read, which then ends. The
            // identifier is free before the client can see that answer.
            Message::Close(_) => {
                ctx.admission.release();
                continue;
            }
            Message::Pong(_) | Message::Frame(_) => continue,
        };
        let Ok(permit) = permits.acquire_permit(1).await else {
            return ReaderEnd::PeerClosed;
        };
        let (reply, received) = handle_batch(shard, ctx, &mut next_seq, frame, wire).await;
        // The frame is answered now or by its delivery report: from here on the writer returns
        // the permit when it writes the reply. Had this task been cancelled while the batch
        // waited for queue room (shutdown), dropping the permit would have returned it, and the
        // closing handshake would not wait for a reply that can never come.
        std::mem::forget(permit);
        if let Some(reply) = reply {
            let _ = out.try_send(Outbound::Reply(reply, wire, received));
        }
    }
}

/// Decodes and queues one batch. Returns the reply to send now, or `None` when the reply will
/// come with Kafka's delivery report (`EVENT_ACK=1`, also for a copy of a batch in flight);
/// and when the batch was received, if the frame was one.
async fn handle_batch(
    shard: &Shard,
    ctx: &ConnCtx,
    next_seq: &mut u64,
    frame: Bytes,
    wire: Wire,
) -> (Option<Reply>, Option<Instant>) {
    let received_at = Instant::now();
    let conn = ctx.conn;
    let pattern = &shard.config.topic_pattern;
    let decoded = match wire {
        Wire::Proto => decode_batch(frame, pattern),
        Wire::Json => decode_json_batch(&frame, pattern),
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            record_refused(shard, ctx.group, shard.tags.serde);
            tracing::debug!(%conn, %error, "frame refused");
            return (Some(Reply::bad_request(error.req_guid().to_owned(), error.to_string())), None);
        }
    };
    // Raccoon does not count a duplicate as a batch read.
    let fingerprint = match ctx.dedup.as_ref().map(|d| d.borrow_mut().check(&decoded.req_guid)) {
        None => None,
        Some(Verdict::Publish(fingerprint)) => fingerprint,
        Some(copy) => {
            shard.metrics.borrow_mut().add(MetricId::EventsDuplicate, tags([ctx.group, shard.tags.duplicate]), 1);
            tracing::debug!(%conn, req_guid = %decoded.req_guid, "duplicate batch dropped");
            return match copy {
                Verdict::AnsweredBefore => (Some(Reply::success(decoded.req_guid)), Some(received_at)),
                _ => (None, None),
            };
        }
    };
    record_batch(shard, ctx.group, &decoded);
    if decoded.events.is_empty() {
        // Nothing to publish: nothing to wait for, in either ack mode.
        return (Some(Reply::success(decoded.req_guid)), Some(received_at));
    }
    let wants_ack = shard.config.ack_mode == AckMode::OnDelivery;
    let token = AckToken { shard: shard.id, conn, seq: Seq(*next_seq) };
    *next_seq += 1;
    if wants_ack && wire == Wire::Json {
        ctx.json_in_flight.borrow_mut().insert(token.seq);
    }
    // With EVENT_ACK=0 the reply is sent here, so the batch does not need its guid.
    let (batch_guid, reply_guid) =
        if wants_ack { (decoded.req_guid, None) } else { (String::new(), Some(decoded.req_guid)) };
    let group = Arc::clone(&ctx.group_name);
    let batch = Batch { token, req_guid: batch_guid, events: decoded.events, wants_ack, received_at, group };
    let reply = match submit(shard, conn, batch).await {
        Ok(()) => {
            if let Some(dedup) = &ctx.dedup {
                dedup.borrow_mut().published(fingerprint, !wants_ack);
            }
            reply_guid.map(Reply::success)
        }
        Err(batch) => {
            let guid = reply_guid.unwrap_or(batch.req_guid);
            Some(Reply::publish_failed(guid, PUBLISHER_STOPPED))
        }
    };
    (reply, Some(received_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_message_maps_to_1009_with_both_sizes() {
        let end = ReaderEnd::from_error(tungstenite::Error::Capacity(CapacityError::MessageTooLong {
            size: 9_000_000,
            max_size: 1_048_576,
        }));
        match end {
            ReaderEnd::Close(code, reason) => {
                assert_eq!(code, CloseCode::Size);
                assert_eq!(reason, "frame of 9000000 bytes exceeds max_frame_bytes 1048576");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn read_timeout_means_silent_client() {
        let end = ReaderEnd::from_error(tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into()));
        assert!(matches!(end, ReaderEnd::Silent));
    }
}
