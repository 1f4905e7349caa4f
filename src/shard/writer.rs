//! The writer of one WebSocket connection: the only task that writes to its socket. It writes
//! replies (decode errors, acks on receipt), delivery outcomes, pings and pongs, and runs the
//! closing handshake once every in-flight batch is answered (or the drain deadline passed).
//! Everything it writes arrives through the connection's [`Outbound`] queue, in order, so
//! replies and control frames never interleave. Each reply returns one in-flight permit once it
//! is written.
//!
//! What is queued when the writer wakes is written together: frames are gathered into one
//! buffer, up to `SERVER_WEBSOCKET_WRITE_BUFFER_SIZE` bytes, and written with one send; acks that
//! Kafka confirms together leave together. The buffer lives for that write only.
//!
//! Lives on: owning shard (!Send).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use glommio::channels::local_channel::LocalReceiver;
use glommio::sync::Semaphore;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use super::registry::Admission;
use super::session::{JsonInFlight, Outbound, OutboundTx, ReaderEnd};
use super::ws_socket::WsSocket;
use super::Shard;
use crate::dedup::Dedup;
use crate::metrics::{tags, MetricId, Tag};
use crate::protocol::reply::{unix_now_secs, Reply};
use crate::protocol::websocket::{encode, encode_close};
use crate::protocol::Wire;
use crate::types::{Ack, ConnId, DeliveryOutcome};

/// Payload of server pings, as Raccoon sends them.
const PING_PAYLOAD: &[u8] = b"--ping--";

/// The only place that writes to the socket; its task is the connection's life: when it ends,
/// the connection is unregistered and its other tasks stop.
pub(super) struct Writer {
    pub(super) shard: Rc<Shard>,
    pub(super) conn: ConnId,
    pub(super) socket: Rc<WsSocket>,
    pub(super) out_tx: OutboundTx,
    pub(super) permits: Rc<Semaphore>,
    pub(super) max_inflight: u64,
    pub(super) group: Tag,
    pub(super) ping: Rc<Cell<Option<Bytes>>>,
    pub(super) dedup: Option<Rc<RefCell<Dedup>>>,
    pub(super) admission: Rc<Admission>,
    pub(super) json_in_flight: JsonInFlight,
    /// Stopped with the connection.
    pub(super) pinger: glommio::task::JoinHandle<()>,
}

/// Frames gathered for one write, and what to account for once it is written.
#[derive(Default)]
struct Gathered {
    out: Vec<u8>,
    /// In-flight permits the replies return.
    permits: u64,
    /// When the answered batches arrived, for `event_rtt`.
    received: Vec<Instant>,
    ping: bool,
    pong: bool,
}

impl Writer {
    /// Serves the connection until it ends, then unregisters it (which stops its reader).
    pub(super) async fn run(self, out_rx: LocalReceiver<Outbound>) {
        self.serve(out_rx).await;
        self.pinger.cancel();
        self.shard.unregister(self.conn);
        tracing::debug!(conn = %self.conn, "connection closed");
    }

    async fn serve(&self, out_rx: LocalReceiver<Outbound>) {
        // Set once the connection must close: the code and reason to close with.
        let mut closing: Option<(CloseCode, String)> = None;
        let mut force_close = false;
        let write_cap = self.shard.config.server.write_buffer_bytes;
        loop {
            let message = match &closing {
                None => out_rx.recv().await,
                // Closing: the last in-flight reply may also be "returned" without a message,
                // when a reader cancelled while its batch waited for queue room drops its permit.
                Some(_) => {
                    let drained = async {
                        let _ = self.permits.acquire(self.max_inflight).await;
                        Some(Outbound::Drained)
                    };
                    futures_lite::future::or(out_rx.recv(), drained).await
                }
            };
            let Some(mut message) = message else { return };
            // Gather frames while more are queued, until a message that is not a frame.
            let mut gathered = Gathered::default();
            let control = loop {
                match message {
                    Outbound::Reply(reply, wire, received) => self.reply(&mut gathered, &reply, wire, received),
                    Outbound::Delivery(ack) => self.delivery(&mut gathered, ack),
                    Outbound::Ping => {
                        encode(OpCode::Control(Control::Ping), PING_PAYLOAD, &mut gathered.out);
                        gathered.ping = true;
                    }
                    Outbound::Pong => {
                        if let Some(payload) = self.ping.take() {
                            encode(OpCode::Control(Control::Pong), &payload, &mut gathered.out);
                            gathered.pong = true;
                        }
                    }
                    other => break Some(other),
                }
                if gathered.out.len() >= write_cap || self.out_tx.len() == 0 {
                    break None;
                }
                match futures_lite::future::poll_once(out_rx.recv()).await {
                    Some(Some(next)) => message = next,
                    _ => break None,
                }
            };
            if let Err(error) = self.write(gathered).await {
                tracing::debug!(%error, "write failed; dropping connection");
                return;
            }
            let Some(control) = control else {
                if self.closing_done(&closing, force_close).await {
                    return;
                }
                continue;
            };
            match control {
                Outbound::ReaderDone(ReaderEnd::Close(code, reason)) => {
                    tracing::debug!(%reason, "closing connection after a protocol violation");
                    self.begin_close(&mut closing, (code, reason));
                }
                Outbound::ReaderDone(ReaderEnd::ClientClosed(code)) => {
                    // Answer the client's close with its code (RFC 6455 section 5.5.1), then end.
                    let mut out = Vec::new();
                    match code {
                        Some(code) => encode_close(code, "", &mut out),
                        None => encode(OpCode::Control(Control::Close), &[], &mut out),
                    }
                    let _ = self.socket.write_all(&out).await;
                    let _ = self.socket.shutdown().await;
                    return;
                }
                Outbound::Silent => {
                    tracing::debug!("client left a ping unanswered for the pong wait; dropping connection");
                    return;
                }
                Outbound::ReaderDone(end) => {
                    // The client is gone or silent: nothing more can reach it.
                    match end {
                        ReaderEnd::Failed(error) => tracing::debug!(%error, "read failed"),
                        other => tracing::debug!(end = ?other, "reader stopped"),
                    }
                    return;
                }
                Outbound::GoingAway => {
                    self.begin_close(&mut closing, (CloseCode::Away, "server shutting down".to_owned()));
                }
                Outbound::DrainDeadline => force_close = true,
                Outbound::Drained => {
                    // Every permit is held by this task now; it is about to close.
                    if let Some(frame) = closing.take() {
                        self.close(&frame).await;
                    }
                    return;
                }
                Outbound::Reply(..) | Outbound::Delivery(_) | Outbound::Ping | Outbound::Pong => {}
            }
            if self.closing_done(&closing, force_close).await {
                return;
            }
        }
    }

    /// Closes if closing and nothing is in flight (or the drain deadline passed). `true` when
    /// the connection is closed.
    async fn closing_done(&self, closing: &Option<(CloseCode, String)>, force_close: bool) -> bool {
        let Some(frame) = closing else { return false };
        if force_close || self.permits.available() == self.max_inflight {
            self.close(frame).await;
            return true;
        }
        false
    }

    /// Sends the close frame and ends the server's side.
    async fn close(&self, (code, reason): &(CloseCode, String)) {
        self.admission.release();
        let mut out = Vec::new();
        encode_close(*code, reason, &mut out);
        if self.socket.write_all(&out).await.is_ok() {
            let _ = self.socket.shutdown().await;
        }
    }

    /// Writes what was gathered, returns the replies' permits and counts what failed.
    async fn write(&self, gathered: Gathered) -> std::io::Result<()> {
        if gathered.out.is_empty() {
            return Ok(());
        }
        let result = self.socket.write_all(&gathered.out).await;
        self.permits.signal(gathered.permits);
        let mut metrics = self.shard.metrics.borrow_mut();
        match &result {
            Ok(()) => {
                for received in gathered.received {
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

    fn reply(&self, gathered: &mut Gathered, reply: &Reply, wire: Wire, received: Option<Instant>) {
        encode_reply(reply, wire, &mut gathered.out);
        gathered.permits += 1;
        gathered.received.extend(received);
    }

    /// Answers a batch with its Kafka outcome, and every copy of it that arrived meanwhile.
    fn delivery(&self, gathered: &mut Gathered, ack: Ack) {
        // The reply mirrors the frame type the batch came in.
        let wire = if self.json_in_flight.borrow_mut().remove(&ack.token.seq) { Wire::Json } else { Wire::Proto };
        let delivered = ack.outcome == DeliveryOutcome::Delivered;
        let copies = self.dedup.as_ref().map_or(0, |d| d.borrow_mut().settle(&ack.req_guid, delivered));
        let reply = match ack.outcome {
            DeliveryOutcome::Delivered => Reply::success(ack.req_guid),
            DeliveryOutcome::Failed(detail) => Reply::publish_failed(ack.req_guid, &detail),
        };
        self.reply(gathered, &reply, wire, Some(ack.received_at));
        for _ in 0..copies {
            self.reply(gathered, &reply, wire, None);
        }
    }

    /// Starts closing: the close frame goes out once every in-flight batch is answered, or
    /// when the drain deadline passes.
    fn begin_close(&self, closing: &mut Option<(CloseCode, String)>, frame: (CloseCode, String)) {
        if closing.is_some() {
            return;
        }
        *closing = Some(frame);
        let out = Rc::clone(&self.out_tx);
        let drain = self.shard.config.server.drain_timeout;
        glommio::spawn_local(async move {
            glommio::timer::sleep(drain).await;
            let _ = out.try_send(Outbound::DrainDeadline);
        })
        .detach();
    }
}

/// Appends a reply as a binary (protobuf) or text (JSON) frame.
fn encode_reply(reply: &Reply, wire: Wire, out: &mut Vec<u8>) {
    let now = unix_now_secs();
    match wire {
        Wire::Proto => encode(OpCode::Data(Data::Binary), &reply.encode_proto(now), out),
        Wire::Json => encode(OpCode::Data(Data::Text), reply.encode_json(now).as_bytes(), out),
    }
}

/// Refuses a connection: `reply` as a binary frame, then a 1008 close with `reason`, in one
/// write within the write deadline; the caller drops the socket.
pub(super) async fn write_refusal(socket: &WsSocket, reply: &Reply, reason: &str) {
    let mut out = Vec::new();
    encode_reply(reply, Wire::Proto, &mut out);
    encode_close(CloseCode::Policy, reason, &mut out);
    if socket.write_all(&out).await.is_ok() {
        let _ = socket.shutdown().await;
    }
}
