//! The writer of one WebSocket connection: the only task that writes to its socket. It writes
//! replies (decode errors, acks on receipt), delivery outcomes and pongs, keeps the connection
//! alive (pings, and dropping a silent client: [`keepalive`](super::keepalive)), and runs the
//! closing handshake once every in-flight batch is answered (or the drain deadline passed), as
//! [`close`](super::close) decides.
//! Everything it writes arrives through the connection's [`Outbound`] queue, in order, so
//! replies and control frames never interleave. Each reply returns one in-flight permit once it
//! is written.
//!
//! What is queued when the writer wakes is written together: frames are gathered into one
//! buffer, up to `SERVER_WEBSOCKET_WRITE_BUFFER_SIZE` bytes, and written with one send; acks that
//! Kafka confirms together leave together. The buffer lives for that write only.
//!
//! Lives on: owning shard (!Send).

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use raccoon_core::handoff::{Ack, DeliveryOutcome, Persistence, SinkId};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::reply::{unix_now_secs, Reply};
use raccoon_protocol::websocket::{encode, encode_close, encode_with};
use raccoon_protocol::Encoding;

use super::close::{CloseFrame, Closing, Step};
use super::keepalive::{Keepalive, KeepaliveAction};
use super::outbound::{Outbound, OutboundTx, ReaderEnd};
use super::queue::Receiver;
use super::shared::ConnShared;
use super::socket::WsSocket;
use crate::dedup::Settled;
use crate::shard::Shard;
use crate::submit::Answer;

/// Payload of server pings, as Raccoon sends them.
const PING_PAYLOAD: &[u8] = b"--ping--";

/// The only place that writes to the socket; its task is the connection's life: when it ends
/// (and the writer is dropped), the connection is unregistered and its reader stops.
pub(super) struct Writer {
    pub(super) shard: Rc<Shard>,
    pub(super) conn: SinkId,
    pub(super) shared: Rc<ConnShared>,
    pub(super) out_tx: OutboundTx,
    pub(super) out_rx: Receiver<Outbound>,
    pub(super) max_inflight: u64,
    pub(super) group: Tag,
    pub(super) keepalive: Keepalive,
}

/// Why the writer woke up.
enum Wake {
    /// A message (the queue never ends: the writer holds a sender itself).
    Message(Outbound),
    /// Keep-alive's next moment ([`Keepalive::next_wake`]) came.
    Keepalive,
}

/// Frames gathered for one write, and what to account for once it is written.
#[derive(Default)]
struct Gathered {
    out: Vec<u8>,
    /// In-flight permits the replies return.
    permits: u64,
    /// When the answered batches arrived, for `event_rtt`.
    received: Vec<Instant>,
    /// The replies' `sent_time`: the clock is read once per write, not once per reply.
    now: Option<i64>,
    ping: bool,
    pong: bool,
}

impl Writer {
    /// Serves the connection until it ends. One future holding the writer itself: no wrapper,
    /// no copies of it (an idle connection's cost is mostly its two tasks).
    // An `async move` block rather than an `async fn`: the latter would keep a second copy of
    // `self` in its future.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(self) -> impl Future<Output = ()> {
        async move { self.serve().await }
    }

    async fn serve(&self) {
        let out_rx = &self.out_rx;
        let mut closing = Closing::default();
        let write_cap = self.shard.config().server.write_buffer_bytes;
        let shared = &*self.shared;
        loop {
            let message = async { Wake::Message(out_rx.recv().await) };
            let woke = if closing.is_closing() {
                // Closing: the last in-flight reply may also be "returned" without a message,
                // when a reader cancelled while its batch waited for queue room drops its permit.
                let drained = async {
                    let _ = shared.permits.acquire(self.max_inflight).await;
                    Wake::Message(Outbound::Drained)
                };
                // Boxed, as every closing step below: an idle connection's task does not
                // carry the closing path's state.
                Box::pin(futures_lite::future::or(message, drained)).await
            } else {
                let wake = self.keepalive.next_wake(&shared.live);
                let keepalive = async {
                    glommio::timer::sleep(wake.saturating_duration_since(Instant::now())).await;
                    Wake::Keepalive
                };
                futures_lite::future::or(message, keepalive).await
            };
            let mut gathered = Gathered::default();
            // `woke` is consumed here, so it takes no room in the task while the write waits.
            let control = match woke {
                Wake::Message(message) => self.gather(message, &mut gathered, write_cap),
                Wake::Keepalive => {
                    // Keep-alive's moment came with nothing queued: the storage a burst left
                    // in the queue goes back (an idle connection holds none; a busy one
                    // allocates it again, once per ping interval at most).
                    self.out_rx.release_storage();
                    None
                }
            };
            // Keep-alive runs while messages flow too: one clock read per write.
            if !closing.is_closing() {
                match self.keepalive.due(&shared.live, Instant::now()) {
                    KeepaliveAction::Wait => {}
                    KeepaliveAction::Ping => {
                        encode(OpCode::Control(Control::Ping), PING_PAYLOAD, &mut gathered.out);
                        gathered.ping = true;
                    }
                    KeepaliveAction::Silent => {
                        tracing::debug!("client left a ping unanswered for the pong wait; dropping connection");
                        return;
                    }
                }
            }
            if let Err(error) = self.write(&gathered).await {
                tracing::debug!(%error, "write failed; dropping connection");
                return;
            }
            // `control` and the step are consumed whole (`map_or`, `step @`), so neither keeps
            // room in the task across the awaits below: an idle connection's task is sized by
            // the largest state it can wait in.
            let step = control.map_or(Step::Continue, |control| {
                if let Outbound::ReaderDone(ReaderEnd::Close(_, reason)) = &control {
                    tracing::debug!(%reason, "closing connection after a protocol violation");
                }
                closing.on(control)
            });
            match step {
                Step::Continue => {}
                Step::ArmDeadline => self.arm_drain_deadline(),
                Step::Stop(end) => {
                    // The client is gone or silent: nothing more can reach it.
                    match end {
                        Some(ReaderEnd::Failed(error)) => tracing::debug!(%error, "read failed"),
                        Some(other) => tracing::debug!(end = ?other, "reader stopped"),
                        None => {}
                    }
                    return;
                }
                step @ (Step::AnswerClose(_) | Step::Close(_)) => return Box::pin(self.finish(step)).await,
            }
            let in_flight = self.max_inflight - shared.permits.available();
            if let Some(frame) = closing.ready(in_flight) {
                return Box::pin(self.close(frame.clone())).await;
            }
        }
    }

    /// Encodes `message` and whatever else is queued into `gathered`, up to `write_cap` bytes.
    /// Returns the first message that is not a frame to write, to be handled after the write.
    fn gather(&self, mut message: Outbound, gathered: &mut Gathered, write_cap: usize) -> Option<Outbound> {
        loop {
            match message {
                Outbound::Reply(reply, encoding, received) => self.reply(gathered, &reply, encoding, received),
                Outbound::Delivery(ack) => self.delivery(gathered, ack),
                Outbound::Pong => {
                    if let Some(payload) = self.shared.ping.take() {
                        encode(OpCode::Control(Control::Pong), &payload, &mut gathered.out);
                        gathered.pong = true;
                    }
                }
                other => return Some(other),
            }
            if gathered.out.len() >= write_cap {
                return None;
            }
            message = self.out_rx.try_recv()?;
        }
    }

    /// Ends the connection with a close frame: answering the client's ([`Step::AnswerClose`]) or
    /// the server's own ([`Step::Close`]).
    async fn finish(&self, step: Step) {
        match step {
            Step::AnswerClose(code) => {
                let mut out = Vec::new();
                match code {
                    Some(code) => encode_close(code, "", &mut out),
                    None => encode(OpCode::Control(Control::Close), &[], &mut out),
                }
                self.shared.socket.write_last(&out).await;
            }
            Step::Close(frame) => self.close(frame).await,
            Step::Continue | Step::ArmDeadline | Step::Stop(_) => {}
        }
    }

    /// Sends the close frame and ends the server's side.
    async fn close(&self, (code, reason): CloseFrame) {
        self.shared.admission.release();
        let mut out = Vec::new();
        encode_close(code, &reason, &mut out);
        self.shared.socket.write_last(&out).await;
    }

    /// Writes what was gathered, returns the replies' permits and counts what failed.
    async fn write(&self, gathered: &Gathered) -> std::io::Result<()> {
        if gathered.out.is_empty() {
            return Ok(());
        }
        let result = self.shared.socket.write_all(&gathered.out).await;
        self.shared.permits.signal(gathered.permits);
        let mut metrics = self.shard.metrics().borrow_mut();
        match &result {
            Ok(()) => {
                for received in &gathered.received {
                    metrics.record(MetricId::EventRtt, tags([]), received.elapsed());
                }
            }
            Err(_) => {
                if gathered.ping {
                    metrics.add(MetricId::PingFailure, tags([self.group]), 1);
                }
                if gathered.pong {
                    metrics.add(MetricId::PongFailure, tags([self.group]), 1);
                }
            }
        }
        result
    }

    fn reply(&self, gathered: &mut Gathered, reply: &Reply, encoding: Encoding, received: Option<Instant>) {
        let now = *gathered.now.get_or_insert_with(unix_now_secs);
        encode_reply(reply, encoding, now, &mut gathered.out);
        gathered.permits += 1;
        gathered.received.extend(received);
    }

    /// Answers a batch with its Kafka outcome, and every copy of it that arrived meanwhile. A
    /// late ack (the final outcome of a batch answered early) answers nobody: it only tells
    /// deduplication what became of the batch.
    fn delivery(&self, gathered: &mut Gathered, ack: Ack) {
        if ack.late {
            if let Some(dedup) = &self.shared.dedup {
                dedup.borrow_mut().settle_late(&ack.req_guid, ack.outcome == DeliveryOutcome::Delivered);
            }
            return;
        }
        // The reply mirrors the frame type the batch came in.
        let encoding = if self.shared.json_in_flight.borrow_mut().remove(&ack.token.seq) {
            Encoding::Json
        } else {
            Encoding::Proto
        };
        let settled = match &ack.outcome {
            DeliveryOutcome::Delivered => Settled::Delivered,
            DeliveryOutcome::Failed(failure) if failure.persistence == Persistence::StillPending => {
                Settled::StillPending
            }
            DeliveryOutcome::Failed(_) => Settled::Failed,
        };
        let copies = self.shared.dedup.as_ref().map_or(0, |d| d.borrow_mut().settle(&ack.req_guid, settled));
        let reply = Answer::of(ack.req_guid, &ack.outcome).reply;
        self.reply(gathered, &reply, encoding, Some(ack.received_at));
        for _ in 0..copies {
            self.reply(gathered, &reply, encoding, None);
        }
    }

    /// Closing began: the close frame goes out once every in-flight batch is answered, or when
    /// the drain deadline passes, whichever is first.
    fn arm_drain_deadline(&self) {
        let out = Rc::clone(&self.out_tx);
        let drain = self.shard.config().server.drain_timeout;
        glommio::spawn_local(async move {
            glommio::timer::sleep(drain).await;
            out.push(Outbound::DrainDeadline);
        })
        .detach();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shard.unregister(self.conn);
        tracing::debug!(conn = %self.conn, "connection closed");
    }
}

/// Appends a reply, sent at `now` (Unix seconds), as a binary (protobuf) or text (JSON) frame.
fn encode_reply(reply: &Reply, encoding: Encoding, now: i64, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Proto => {
            let len = reply.proto_len(now);
            encode_with(OpCode::Data(Data::Binary), len, out, |out| reply.encode_proto_into(now, out));
        }
        Encoding::Json => encode(OpCode::Data(Data::Text), reply.encode_json(now).as_bytes(), out),
    }
}

/// Refuses a connection: `reply` as a binary frame, then a 1008 close with `reason`, in one
/// write within the write deadline; the caller drops the socket.
pub(super) async fn write_refusal(socket: &WsSocket, reply: &Reply, reason: &str) {
    let mut out = Vec::new();
    encode_reply(reply, Encoding::Proto, unix_now_secs(), &mut out);
    encode_close(CloseCode::Policy, reason, &mut out);
    socket.write_last(&out).await;
}
