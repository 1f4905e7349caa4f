//! What a connection's writer is asked to do ([`Outbound`]), by its reader, by the shard's ack
//! router and by the drain timer, through the connection's [`Queue`]; and why a reader stopped
//! ([`ReaderEnd`]).
//!
//! Lives on: owning shard (!Send).

use std::rc::Rc;
use std::time::Instant;

use tungstenite::protocol::frame::coding::CloseCode;

use raccoon_core::handoff::Ack;
use raccoon_protocol::reply::Reply;
use raccoon_protocol::websocket::FrameError;
use raccoon_protocol::Encoding;

use super::queue::Queue;
use crate::shard::AckSink;

/// The shared sending side of a connection's [`Outbound`] queue (reader, router, drain timer).
pub(crate) type OutboundTx = Rc<Queue<Outbound>>;

/// What the writer is asked to do.
pub(crate) enum Outbound {
    /// A reply the reader produced (decode error, ack on receipt), and when its batch was
    /// received if it answers one. Returns one permit.
    Reply(Reply, Encoding, Option<Instant>),
    /// A delivery outcome from Kafka (`EVENT_ACK=1`). Returns one permit.
    Delivery(Ack),
    /// The client pinged: answer the latest ping ([`ConnShared::ping`](super::shared::ConnShared::ping)). At most one is queued at
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
#[derive(Debug, PartialEq, Eq)]
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
    pub(super) fn from_io(error: &std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::TimedOut => ReaderEnd::Silent,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => ReaderEnd::PeerClosed,
            _ => ReaderEnd::Failed(error.to_string()),
        }
    }

    pub(super) fn from_frame(error: &FrameError) -> Self {
        ReaderEnd::Close(error.close_code(), error.to_string())
    }
}

/// How the shard's ack router and shutdown reach a WebSocket connection: through its writer's
/// queue.
impl AckSink for Queue<Outbound> {
    fn deliver(&self, ack: Ack) {
        // Unbounded, but bounded by construction: at most SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES
        // replies per connection.
        self.push(Outbound::Delivery(ack));
    }

    fn go_away(&self) {
        self.push(Outbound::GoingAway);
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
