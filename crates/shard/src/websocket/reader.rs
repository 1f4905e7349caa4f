//! The reader of one WebSocket connection: frames in, batches out to the publishers through the
//! shard's handoff (text frames are JSON, binary frames protobuf), and what the writer must answer
//! to the writer's queue. It is the only task that reads the socket.
//!
//! Hot path: no allocation per event, no logging above DEBUG per frame.
//!
//! Lives on: owning shard (!Send).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use raccoon_core::handoff::{AckToken, Batch, Offer, Origin, Seq, SinkId};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::refusal;
use raccoon_protocol::reply::Reply;
use raccoon_protocol::websocket::{FrameReader, Incoming};
use raccoon_protocol::Encoding;

use super::outbound::{Outbound, OutboundTx, ReaderEnd};
use super::shared::ConnShared;
use crate::dedup::{Fingerprint, Verdict};
use crate::shard::Shard;
use crate::submit::{record_batch, record_refused, try_submit, wait_for_room, Answer};
use crate::AckMode;

/// A connection's reader: its task's whole state, owned, so that the task is one future with
/// no copies of its arguments.
pub(super) struct Reader {
    pub(super) shard: Rc<Shard>,
    pub(super) conn: SinkId,
    /// The group's metric tag on this shard.
    pub(super) group: Tag,
    /// Who sends on this connection, carried by every batch for the publisher (metrics, record
    /// keys and headers).
    pub(super) origin: Arc<Origin>,
    pub(super) shared: Rc<ConnShared>,
    pub(super) frames: FrameReader,
    pub(super) out: OutboundTx,
    pub(super) next_seq: u64,
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
    pub(super) fn run(mut self) -> impl Future<Output = ()> {
        async move {
            let end = self.read_frames().await;
            self.shared.admission.release();
            // Raccoon counts the read that ends a connection as a failed batch read.
            let t = self.shard.tags();
            self.shard.metrics().borrow_mut().add(
                MetricId::BatchesRead,
                tags([t.failed, t.close_error, self.group]),
                1,
            );
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
                        self.shared.socket.read(self.shard.ws_read_buffer(), &mut self.frames).await
                    };
                    match read {
                        Ok(0) => return ReaderEnd::PeerClosed,
                        Ok(_) => continue,
                        Err(error) => return ReaderEnd::from_io(&error),
                    }
                }
                Err(error) => return ReaderEnd::from_frame(&error),
            };
            let (encoding, frame) = match incoming {
                Incoming::Binary(frame) => (Encoding::Proto, frame),
                Incoming::Text(text) => (Encoding::Json, text),
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
            let (reply, received) = match self.handle_batch(frame, encoding) {
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
                self.out.push(Outbound::Reply(reply, encoding, received));
            }
        }
    }

    /// Decodes and queues one batch, without waiting.
    fn handle_batch(&mut self, frame: Bytes, encoding: Encoding) -> Handled {
        let shard = &*self.shard;
        let received_at = Instant::now();
        let conn = self.conn;
        let decoded = match encoding.decode(frame, &shard.config().topic_pattern) {
            Ok(decoded) => decoded,
            Err(error) => {
                record_refused(shard, self.group, shard.tags().serde);
                tracing::debug!(%conn, %error, "frame refused");
                return Handled::Answer(Some(Reply::bad_request(error.req_guid().to_owned(), error.to_string())), None);
            }
        };
        // Raccoon does not count a duplicate as a batch read.
        let fingerprint = match self.shared.dedup.as_ref().map(|d| d.borrow_mut().check(&decoded.req_guid)) {
            None => None,
            Some(Verdict::Publish(fingerprint)) => fingerprint,
            Some(copy) => {
                shard.metrics().borrow_mut().add(
                    MetricId::EventsDuplicate,
                    tags([self.group, shard.tags().duplicate]),
                    1,
                );
                tracing::debug!(%conn, req_guid = %decoded.req_guid, "duplicate batch dropped");
                return match copy {
                    Verdict::AnsweredBefore => {
                        Handled::Answer(Some(Reply::success(decoded.req_guid)), Some(received_at))
                    }
                    Verdict::StillPending => {
                        Handled::Answer(Some(refusal::copy_still_pending(decoded.req_guid)), Some(received_at))
                    }
                    Verdict::WaitForOriginal | Verdict::Publish(_) => Handled::Answer(None, None),
                };
            }
        };
        record_batch(shard, self.group, &decoded);
        if decoded.events.is_empty() {
            // Nothing to publish: nothing to wait for, in either ack mode.
            return Handled::Answer(Some(Reply::success(decoded.req_guid)), Some(received_at));
        }
        let wants_ack = shard.config().ack_mode == AckMode::OnDelivery;
        let token = AckToken { shard: shard.id(), sink: conn, seq: Seq(self.next_seq) };
        self.next_seq += 1;
        if wants_ack && encoding == Encoding::Json {
            self.shared.json_in_flight.borrow_mut().insert(token.seq);
        }
        // With EVENT_ACK=0 the reply is sent here: it takes a copy of the guid, which the batch
        // keeps for the publisher (a record key or header).
        let reply_guid = (!wants_ack).then(|| decoded.req_guid.clone());
        let sent_time = decoded.client_sent_time();
        let batch = Batch {
            token,
            req_guid: decoded.req_guid,
            events: decoded.events,
            wants_ack,
            received_at,
            origin: Arc::clone(&self.origin),
            sent_time,
        };
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
                Some(Answer::publisher_stopped(guid, batch.events.len()).reply)
            }
        }
    }
}
