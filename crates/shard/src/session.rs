//! One WebSocket connection: admission (server-wide limit and identifier, see
//! [`registry`](super::registry)), then a reader task (frames in, batches out to the publisher
//! queues; text frames are JSON, binary frames protobuf), a [writer](super::writer) (replies,
//! delivery acks, pings, pongs, [keep-alive](super::keepalive) and the closing handshake, in
//! order). Everything the writer sends comes through one local queue,
//! [`Outbound`]. The socket is read through the shard's read buffer ([`super::ws_socket`]) and
//! framed by [`raccoon_protocol::websocket`]: an idle connection holds no buffer.
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
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, Span};

use bytes::Bytes;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use tungstenite::protocol::frame::coding::CloseCode;

use super::keepalive::{Keepalive, Liveness};
use super::outbound::Queue;
use super::registry::{Admission, RegistryError};
use super::submit::{record_batch, record_refused, try_submit, wait_for_room, PUBLISHER_STOPPED};
use super::writer::{write_refusal, Writer};
use super::ws_socket::WsSocket;
use super::Shard;
use crate::dedup::{Dedup, Fingerprint, Verdict};
use crate::AckMode;
use raccoon_core::handoff::Offer;
use raccoon_core::handoff::{Ack, AckToken, Batch, ConnId, Seq, ShardId};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::identity::Identity;
use raccoon_protocol::reply::Reply;
use raccoon_protocol::websocket::{FrameError, FrameReader, Incoming};
use raccoon_protocol::Wire;

/// The shared sending side of a connection's [`Outbound`] queue (reader, router, drain timer).
pub(crate) type OutboundTx = Rc<Queue<Outbound>>;

/// What the writer is asked to do.
pub(crate) enum Outbound {
    /// A reply the reader produced (decode error, ack on receipt), and when its batch was
    /// received if it answers one. Returns one permit.
    Reply(Reply, Wire, Option<Instant>),
    /// A delivery outcome from Kafka (`EVENT_ACK=1`). Returns one permit.
    Delivery(Ack),
    /// The client pinged: answer the latest ping (`ConnCtx::ping`). At most one is queued at
    /// a time; a ping that arrives before the pong is written replaces the payload.
    Pong,
    /// The reader stopped.
    ReaderDone(ReaderEnd),
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
    /// The client's side of the connection ended without a close frame.
    PeerClosed,
    /// The client sent a close frame (with this code, if any): it is answered, then the
    /// connection ends.
    ClientClosed(Option<CloseCode>),
    /// The socket read timed out (the server sets no read timeout on WebSockets; silence is
    /// keep-alive's to judge).
    Silent,
    /// The socket failed.
    Failed(String),
    /// The client broke the rules; close with this code and reason once in-flight batches
    /// are answered.
    Close(CloseCode, String),
}

impl ReaderEnd {
    fn from_io(error: &std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::TimedOut => ReaderEnd::Silent,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => ReaderEnd::PeerClosed,
            _ => ReaderEnd::Failed(error.to_string()),
        }
    }

    fn from_frame(error: &FrameError) -> Self {
        ReaderEnd::Close(error.close_code(), error.to_string())
    }
}

/// Starts a connection on its completed upgrade: admits it and spawns its writer and reader, or
/// a task that refuses it. `leftover`: what the client sent past the upgrade request.
///
/// Two tasks, each holding only its own state (the writer's future is its wait loop, not this
/// setup), and one allocation for what they share ([`ConnShared`]): what an idle connection
/// costs is mostly these.
pub(super) fn start(shard: Rc<Shard>, stream: TcpStream, leftover: Bytes, identity: Identity, span: Span) {
    let server = &shard.config.server;
    // No read timeout: keep-alive decides when a client is silent (see `keepalive`).
    let _ = stream.set_read_timeout(None);
    let socket = WsSocket::new(stream);
    let mut frames = FrameReader::new(server.max_frame_bytes);
    frames.push(&leftover);
    drop(leftover);
    let (out_tx, out_rx) = Queue::new();
    let (conn, group, admission) = match shard.register(Rc::clone(&out_tx), &identity) {
        Ok(admitted) => admitted,
        Err(refused) => {
            let shard_id = shard.id;
            glommio::spawn_local(async move { refuse(shard_id, &socket, &refused).await }.instrument(span)).detach();
            return;
        }
    };
    span.in_scope(|| tracing::debug!(%conn, "connection open"));
    if shard.draining.get() {
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
        group_name: Arc::from(identity.group.as_str()),
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

/// What a connection's reader and writer share, in one allocation.
///
/// Lives on: owning shard (!Send).
pub(super) struct ConnShared {
    pub(super) socket: WsSocket,
    /// `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` permits: the reader takes one per frame, the
    /// writer returns it with the frame's reply.
    pub(super) permits: Semaphore,
    /// The payload of the latest ping not answered yet; while it is set, an [`Outbound::Pong`]
    /// is queued (a ping flood queues one, and the pong answers the latest ping).
    pub(super) ping: Cell<Option<Bytes>>,
    /// Whether the reader waits for the client, for keep-alive.
    pub(super) live: Liveness,
    /// Sequence numbers of the JSON batches (text frames) awaiting their delivery outcome, so
    /// that their replies go out as text frames. Empty (and unallocated) for protobuf clients;
    /// at most `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` entries.
    pub(super) json_in_flight: RefCell<HashSet<Seq>>,
    /// Recent `req_guid`s, when `SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED`.
    pub(super) dedup: Option<RefCell<Dedup>>,
    /// The connection's identifier, released when the client closes, the reader stops or the
    /// writer closes, whichever is first.
    pub(super) admission: Rc<Admission>,
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

/// A connection's reader: its task's whole state, owned, so that the task is one future with
/// no copies of its arguments.
struct Reader {
    shard: Rc<Shard>,
    conn: ConnId,
    /// The group's metric tag on this shard.
    group: Tag,
    /// The group's name, carried by every batch for the publisher's metrics.
    group_name: Arc<str>,
    shared: Rc<ConnShared>,
    frames: FrameReader,
    out: OutboundTx,
    next_seq: u64,
}

/// What became of a frame that is a batch.
enum Handled {
    /// Answered now (`Some`), or later by its delivery report (`None`); and when the batch was
    /// received, if the frame was one.
    Answer(Option<Reply>, Option<Instant>),
    /// Its publisher queue is full: [`Reader::when_queued`] waits for room.
    QueueFull(Held),
}

/// A batch waiting for room in its publisher queue, and what its reply needs.
struct Held {
    batch: Batch,
    fingerprint: Option<Fingerprint>,
    reply_guid: Option<String>,
}

impl Reader {
    // An `async move` block rather than an `async fn`: the latter would keep a second copy of
    // `self` in its future.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> {
        async move {
            let end = self.read_frames().await;
            self.shared.admission.release();
            // Raccoon counts the read that ends a connection as a failed batch read.
            let t = self.shard.tags;
            self.shard.metrics.borrow_mut().add(MetricId::BatchesRead, tags([t.failed, t.close_error, self.group]), 1);
            self.out.push(Outbound::ReaderDone(end));
        }
    }

    async fn read_frames(&mut self) -> ReaderEnd {
        // Its own handle: the permit taken below borrows it while `self` handles the batch.
        let shared = Rc::clone(&self.shared);
        loop {
            let incoming = match self.frames.next_message() {
                Ok(Some(incoming)) => incoming,
                Ok(None) => {
                    let read = {
                        let _listening = self.shared.live.listen();
                        self.shared.socket.read(&self.shard.ws_read_buffer, &mut self.frames).await
                    };
                    match read {
                        Ok(0) => return ReaderEnd::PeerClosed,
                        Ok(_) => continue,
                        Err(error) => return ReaderEnd::from_io(&error),
                    }
                }
                Err(error) => return ReaderEnd::from_frame(&error),
            };
            let (wire, frame) = match incoming {
                Incoming::Binary(frame) => (Wire::Proto, frame),
                Incoming::Text(text) => (Wire::Json, text),
                Incoming::Ping(payload) => {
                    if self.shared.ping.replace(Some(payload)).is_none() {
                        self.out.push(Outbound::Pong);
                    }
                    continue;
                }
                // The identifier is free before the client can see the answer.
                Incoming::Close(close) => {
                    self.shared.admission.release();
                    return ReaderEnd::ClientClosed(close.map(|(code, _)| code));
                }
                Incoming::Pong => continue,
            };
            let Ok(permit) = shared.permits.acquire_permit(1).await else {
                return ReaderEnd::PeerClosed;
            };
            let (reply, received) = match self.handle_batch(frame, wire) {
                Handled::Answer(reply, received) => (reply, received),
                // Boxed: an idle reader's task does not carry the wait's state.
                Handled::QueueFull(held) => Box::pin(self.when_queued(held)).await,
            };
            // The frame is answered now or by its delivery report: from here on the writer
            // returns the permit when it writes the reply. Had this task been cancelled while
            // the batch waited for queue room (shutdown), dropping the permit would have returned
            // it, and the closing handshake would not wait for a reply that can never come.
            std::mem::forget(permit);
            if let Some(reply) = reply {
                self.out.push(Outbound::Reply(reply, wire, received));
            }
        }
    }

    /// Decodes and queues one batch, without waiting.
    fn handle_batch(&mut self, frame: Bytes, wire: Wire) -> Handled {
        let shard = &*self.shard;
        let received_at = Instant::now();
        let conn = self.conn;
        let decoded = match wire.decode(frame, &shard.config.topic_pattern) {
            Ok(decoded) => decoded,
            Err(error) => {
                record_refused(shard, self.group, shard.tags.serde);
                tracing::debug!(%conn, %error, "frame refused");
                return Handled::Answer(Some(Reply::bad_request(error.req_guid().to_owned(), error.to_string())), None);
            }
        };
        // Raccoon does not count a duplicate as a batch read.
        let fingerprint = match self.shared.dedup.as_ref().map(|d| d.borrow_mut().check(&decoded.req_guid)) {
            None => None,
            Some(Verdict::Publish(fingerprint)) => fingerprint,
            Some(copy) => {
                shard.metrics.borrow_mut().add(MetricId::EventsDuplicate, tags([self.group, shard.tags.duplicate]), 1);
                tracing::debug!(%conn, req_guid = %decoded.req_guid, "duplicate batch dropped");
                return match copy {
                    Verdict::AnsweredBefore => {
                        Handled::Answer(Some(Reply::success(decoded.req_guid)), Some(received_at))
                    }
                    _ => Handled::Answer(None, None),
                };
            }
        };
        record_batch(shard, self.group, &decoded);
        if decoded.events.is_empty() {
            // Nothing to publish: nothing to wait for, in either ack mode.
            return Handled::Answer(Some(Reply::success(decoded.req_guid)), Some(received_at));
        }
        let wants_ack = shard.config.ack_mode == AckMode::OnDelivery;
        let token = AckToken { shard: shard.id, conn, seq: Seq(self.next_seq) };
        self.next_seq += 1;
        if wants_ack && wire == Wire::Json {
            self.shared.json_in_flight.borrow_mut().insert(token.seq);
        }
        // With EVENT_ACK=0 the reply is sent here, so the batch does not need its guid.
        let (batch_guid, reply_guid) =
            if wants_ack { (decoded.req_guid, None) } else { (String::new(), Some(decoded.req_guid)) };
        let group = Arc::clone(&self.group_name);
        let batch = Batch { token, req_guid: batch_guid, events: decoded.events, wants_ack, received_at, group };
        let queued = match try_submit(shard, batch) {
            Offer::Queued => Ok(()),
            Offer::Stopped(batch) => Err(batch),
            Offer::Full(batch) => return Handled::QueueFull(Held { batch, fingerprint, reply_guid }),
        };
        Handled::Answer(self.queued(queued, fingerprint, reply_guid), Some(received_at))
    }

    /// Waits for room for a held batch, then answers as [`Reader::handle_batch`] would have.
    async fn when_queued(&self, held: Held) -> (Option<Reply>, Option<Instant>) {
        let received_at = held.batch.received_at;
        let queued = wait_for_room(&self.shard, held.batch).await;
        (self.queued(queued, held.fingerprint, held.reply_guid), Some(received_at))
    }

    /// The reply owed once a batch is queued (`Ok`) or refused by a stopped publisher (`Err`).
    fn queued(
        &self,
        queued: Result<(), Batch>,
        fingerprint: Option<Fingerprint>,
        reply_guid: Option<String>,
    ) -> Option<Reply> {
        match queued {
            Ok(()) => {
                if let Some(dedup) = &self.shared.dedup {
                    dedup.borrow_mut().published(fingerprint, reply_guid.is_some());
                }
                reply_guid.map(Reply::success)
            }
            Err(batch) => {
                let guid = reply_guid.unwrap_or(batch.req_guid);
                Some(Reply::publish_failed(guid, PUBLISHER_STOPPED))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_message_maps_to_1009_with_both_sizes() {
        let end = ReaderEnd::from_frame(&FrameError::TooLarge { size: 9_000_000, max: 1_048_576 });
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
        let end = ReaderEnd::from_io(&std::io::ErrorKind::TimedOut.into());
        assert!(matches!(end, ReaderEnd::Silent));
    }
}
