//! The connection table and the ack router: which WebSocket connection or waiting REST or gRPC
//! request an [`Ack`] coming back from the publishers goes to.
//!
//! The table knows a WebSocket connection only as an [`AckSink`], what its writer's queue offers
//! the router and shutdown; so the shard's core does not depend on the WebSocket transport. A
//! WebSocket connection and a waiting request each have a [`SinkId`], the id an [`Ack`]'s token
//! names.
//!
//! Lives on: owning shard (!Send).

use std::rc::Rc;
use std::time::Instant;

use glommio::channels::local_channel::{self, LocalReceiver};

use raccoon_core::handoff::{Ack, ShardMsg, SinkId};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::identity::Identity;

use super::Shard;
use crate::registry::{Admission, RegistryError};

/// How the router and shutdown reach a WebSocket connection: where its acks go.
pub(crate) trait AckSink {
    /// Hands the connection a delivery outcome for one of its batches.
    fn deliver(&self, ack: Ack);
    /// Tells the connection to finish its in-flight batches and close with 1001.
    fn go_away(&self);
}

/// What the shard's router needs to reach a connection.
pub(super) struct ConnEntry {
    pub(super) sink: Rc<dyn AckSink>,
    pub(super) reader: Option<glommio::task::JoinHandle<()>>,
    pub(super) group: Tag,
    pub(super) opened: Instant,
    /// The connection's slot and identifier in the registry.
    pub(super) admission: Rc<Admission>,
}

impl Shard {
    /// Admits a WebSocket connection of `identity` across all shards (`SERVER_WEBSOCKET_MAX_CONN`
    /// first, then one live connection per identifier) and registers it here. Returns its id,
    /// its group's metric tag and its admission, which the connection releases the moment it
    /// ends.
    pub(crate) fn register(
        &self,
        sink: Rc<dyn AckSink>,
        identity: &Identity,
    ) -> Result<(SinkId, Tag, Rc<Admission>), RegistryError> {
        let mut metrics = self.metrics.borrow_mut();
        let group = metrics.client_tag(&identity.group);
        let admitted = if identity.anonymous {
            self.registry.admit_anonymous(&identity.user, &identity.group)
        } else {
            self.registry.admit(&identity.user, &identity.group)
        };
        let admission = match admitted {
            Ok(admission) => Rc::new(admission),
            Err(refused) => {
                // Interned once per reason (two values), then a lookup.
                let reason = metrics.tag(refused.as_label());
                metrics.add(MetricId::ConnFailure, tags([group, reason]), 1);
                return Err(refused);
            }
        };
        metrics.add(MetricId::ConnSuccess, tags([group]), 1);
        let id = self.next_sink_id();
        let entry = ConnEntry { sink, reader: None, group, opened: Instant::now(), admission: Rc::clone(&admission) };
        self.conns.borrow_mut().insert(id, entry);
        self.stats.borrow_mut().connections += 1;
        Ok((id, group, admission))
    }

    pub(crate) fn set_reader(&self, conn: SinkId, reader: glommio::task::JoinHandle<()>) {
        if let Some(entry) = self.conns.borrow_mut().get_mut(&conn) {
            entry.reader = Some(reader);
        }
    }

    /// Forgets a connection, releases its identifier (if the connection did not already) and
    /// stops its reader if it is still running.
    pub(crate) fn unregister(&self, conn: SinkId) {
        let Some(entry) = self.conns.borrow_mut().remove(&conn) else { return };
        entry.admission.release();
        self.metrics.borrow_mut().record(MetricId::SessionDuration, tags([entry.group]), entry.opened.elapsed());
        if let Some(reader) = entry.reader {
            reader.cancel();
        }
    }

    /// Routes a message of the shard's inbox; `false` for [`ShardMsg::Shutdown`].
    pub(crate) fn route(&self, msg: ShardMsg) -> bool {
        match msg {
            ShardMsg::Ack(ack) => {
                if let Some(entry) = self.conns.borrow().get(&ack.token.sink) {
                    entry.sink.deliver(ack);
                } else if let Some(request) = self.requests.borrow_mut().remove(&ack.token.sink) {
                    // Capacity 1, and one ack per request: never full.
                    let _ = request.try_send(ack);
                } else {
                    tracing::debug!(shard = %self.id, conn = %ack.token.sink, "ack for a closed connection");
                }
                true
            }
            ShardMsg::Shutdown => false,
        }
    }

    /// A name for a WebSocket that names no id, unique among the connections of this process
    /// (`SERVER_WEBSOCKET_CONN_ID_ANONYMOUS`).
    pub(crate) fn anonymous_name(&self) -> String {
        self.registry.anonymous_name()
    }

    /// A fresh sink id, for a WebSocket connection or a REST or gRPC request.
    pub(crate) fn next_sink_id(&self) -> SinkId {
        let id = SinkId(self.next_sink.get());
        self.next_sink.set(id.0 + 1);
        id
    }

    /// Registers a request that waits for its batch's outcome under a fresh sink id.
    pub(crate) fn await_ack(self: &Rc<Self>) -> PendingAck {
        let sink = self.next_sink_id();
        let (tx, rx) = local_channel::new_bounded(1);
        self.requests.borrow_mut().insert(sink, tx);
        PendingAck { shard: Rc::clone(self), sink, rx }
    }
}

/// A REST or gRPC request waiting for its batch's outcome. Dropping it (the client left)
/// forgets the request; its outcome is then dropped when it arrives.
///
/// Lives on: owning shard (!Send).
pub(crate) struct PendingAck {
    shard: Rc<Shard>,
    sink: SinkId,
    rx: LocalReceiver<Ack>,
}

impl PendingAck {
    /// The sink id the batch carries in its token.
    pub(crate) fn sink(&self) -> SinkId {
        self.sink
    }

    /// The outcome; `None` only if the shard stopped routing.
    pub(crate) async fn outcome(&self) -> Option<Ack> {
        self.rx.recv().await
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.shard.requests.borrow_mut().remove(&self.sink);
    }
}
