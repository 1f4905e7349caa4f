//! What a connection's reader and writer share, in one allocation.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use bytes::Bytes;
use glommio::sync::Semaphore;

use raccoon_core::handoff::Seq;

use super::keepalive::Liveness;
use super::socket::WsSocket;
use crate::dedup::Dedup;
use crate::registry::Admission;

/// What a connection's reader and writer share, in one allocation.
///
/// Lives on: owning shard (!Send).
pub(super) struct ConnShared {
    pub(super) socket: WsSocket,
    /// `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES` permits: the reader takes one per frame, the
    /// writer returns it with the frame's reply.
    pub(super) permits: Semaphore,
    /// The payload of the latest ping not answered yet; while it is set, an [`Outbound::Pong`](super::outbound::Outbound::Pong)
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
