//! The writer of one WebSocket connection: the only task that writes to its socket. It writes
//! replies (decode errors, acks on receipt), delivery outcomes, pings, flushes pongs, and runs
//! the closing handshake once every in-flight batch is answered (or the drain deadline passed).
//! Everything it writes arrives through the connection's [`Outbound`] queue, one at a time, so
//! replies and control frames never interleave. Each reply returns one in-flight permit.
//!
//! Lives on: owning shard (!Send).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use async_tungstenite::WebSocketSender;
use bytes::Bytes;
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::Message;

use super::registry::Admission;
use super::session::{JsonInFlight, Outbound, OutboundTx, ReaderEnd};
use super::Shard;
use crate::dedup::Dedup;
use crate::metrics::{tags, MetricId, Tag};
use crate::protocol::reply::{unix_now_secs, Reply};
use crate::protocol::Wire;
use crate::types::{Ack, DeliveryOutcome};

/// Payload of server pings, as Raccoon sends them.
const PING_PAYLOAD: &[u8] = b"--ping--";
/// Largest close reason RFC 6455 allows (a control frame holds 125 bytes, 2 are the code).
const MAX_CLOSE_REASON: usize = 123;

/// The only place that writes to the socket.
pub(super) struct Writer<'a> {
    pub(super) shard: &'a Shard,
    pub(super) sender: &'a mut WebSocketSender<TcpStream>,
    pub(super) out_tx: OutboundTx,
    pub(super) permits: &'a Semaphore,
    pub(super) max_inflight: u64,
    pub(super) group: Tag,
    pub(super) pong_queued: Rc<Cell<bool>>,
    pub(super) dedup: Option<Rc<RefCell<Dedup>>>,
    pub(super) admission: Rc<Admission>,
    pub(super) json_in_flight: JsonInFlight,
}

impl Writer<'_> {
    pub(super) async fn run(mut self, out_rx: LocalReceiver<Outbound>) {
        // Set once the connection must close: the frame to close with.
        let mut closing: Option<CloseFrame> = None;
        let mut force_close = false;
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
            let Some(message) = message else { return };
            let written = match message {
                Outbound::Reply(reply, wire, received) => self.reply(&reply, wire, received).await,
                Outbound::Delivery(ack) => self.delivery(ack).await,
                Outbound::Ping => {
                    let sent = self.sender.send(Message::Ping(Bytes::from_static(PING_PAYLOAD))).await;
                    if sent.is_err() {
                        self.shard.metrics.borrow_mut().add(MetricId::PingFailure, tags([self.group]), 1);
                    }
                    sent
                }
                Outbound::Pong => self.pong().await,
                Outbound::ReaderDone(ReaderEnd::Close(code, reason)) => {
                    tracing::debug!(%reason, "closing connection after a protocol violation");
                    self.begin_close(&mut closing, close_frame(code, &reason));
                    Ok(())
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
                    self.begin_close(&mut closing, close_frame(CloseCode::Away, "server shutting down"));
                    Ok(())
                }
                Outbound::DrainDeadline => {
                    force_close = true;
                    Ok(())
                }
                Outbound::Drained => {
                    // Every permit is held by this task now; it is about to close.
                    self.admission.release();
                    let _ = self.sender.close(closing.take()).await;
                    return;
                }
            };
            if let Err(error) = written {
                tracing::debug!(%error, "write failed; dropping connection");
                return;
            }
            if let Some(frame) = &closing {
                if force_close || self.permits.available() == self.max_inflight {
                    self.admission.release();
                    let _ = self.sender.close(Some(frame.clone())).await;
                    return;
                }
            }
        }
    }

    async fn reply(&mut self, reply: &Reply, wire: Wire, received: Option<Instant>) -> Result<(), tungstenite::Error> {
        let now = unix_now_secs();
        let message = match wire {
            Wire::Proto => Message::Binary(reply.encode_proto(now).into()),
            Wire::Json => Message::Text(reply.encode_json(now).into()),
        };
        let result = self.sender.send(message).await;
        self.permits.signal(1);
        if let (Ok(()), Some(received)) = (&result, received) {
            self.shard.metrics.borrow_mut().record(MetricId::EventRtt, tags([]), received.elapsed());
        }
        result
    }

    /// Answers a batch with its Kafka outcome, and every copy of it that arrived meanwhile.
    async fn delivery(&mut self, ack: Ack) -> Result<(), tungstenite::Error> {
        // The reply mirrors the frame type the batch came in.
        let wire = if self.json_in_flight.borrow_mut().remove(&ack.token.seq) { Wire::Json } else { Wire::Proto };
        let delivered = ack.outcome == DeliveryOutcome::Delivered;
        let copies = self.dedup.as_ref().map_or(0, |d| d.borrow_mut().settle(&ack.req_guid, delivered));
        let reply = match ack.outcome {
            DeliveryOutcome::Delivered => Reply::success(ack.req_guid),
            DeliveryOutcome::Failed(detail) => Reply::publish_failed(ack.req_guid, &detail),
        };
        self.reply(&reply, wire, Some(ack.received_at)).await?;
        for _ in 0..copies {
            self.reply(&reply, wire, None).await?;
        }
        Ok(())
    }

    /// Writes out the pong tungstenite queued for a client ping (unless the reader's next read
    /// already did), within the write deadline. A pong that cannot be written is counted.
    async fn pong(&mut self) -> Result<(), tungstenite::Error> {
        use futures_sink::Sink;
        self.pong_queued.set(false);
        let sender = &mut *self.sender;
        match futures_lite::future::poll_fn(|cx| std::pin::Pin::new(&mut *sender).poll_flush(cx)).await {
            Err(error @ tungstenite::Error::Io(_)) => {
                self.shard.metrics.borrow_mut().add(MetricId::PongFailure, tags([self.group]), 1);
                Err(error)
            }
            // Closed already (the client sent a Close): no pong is owed.
            _ => Ok(()),
        }
    }

    /// Starts closing: the close frame goes out once every in-flight batch is answered, or
    /// when the drain deadline passes.
    fn begin_close(&self, closing: &mut Option<CloseFrame>, frame: CloseFrame) {
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

pub(super) fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code, reason: reason[..end].to_owned().into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let frame = close_frame(CloseCode::Size, &long);
        assert!(frame.reason.len() <= MAX_CLOSE_REASON);
        assert!(frame.reason.len() >= MAX_CLOSE_REASON - 1);
    }
}
