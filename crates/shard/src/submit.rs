//! Handing decoded batches to the publishers, for every transport: the metrics a received batch
//! records, queueing with backoff while a publisher queue is full, and, for the request-shaped
//! transports (REST, gRPC), waiting for the batch's reply.
//!
//! Hot path: once per batch; no allocation per event.
//!
//! Lives on: owning shard (!Send).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raccoon_core::handoff::{AckToken, Batch, DeliveryOutcome, Offer, Seq};
use raccoon_metrics::{tags, MetricId, Tag};
use raccoon_protocol::batch::DecodedBatch;
use raccoon_protocol::reply::Reply;

use crate::shard::Shard;
use crate::AckMode;

/// First and longest wait while a publisher queue is full.
const QUEUE_FULL_BACKOFF_MIN: Duration = Duration::from_micros(100);
const QUEUE_FULL_BACKOFF_MAX: Duration = Duration::from_millis(5);

/// Why a reply says the publisher has stopped (shutdown raced the batch).
pub(crate) const PUBLISHER_STOPPED: &str = "the publisher has stopped";

/// Counts a decoded batch and its events.
pub(crate) fn record_batch(shard: &Shard, group: Tag, batch: &DecodedBatch) {
    let mut metrics = shard.metrics().borrow_mut();
    if !metrics.enabled() {
        return;
    }
    let t = shard.tags();
    metrics.add(MetricId::BatchesRead, tags([t.success, t.na, group]), 1);
    let events = batch.events.iter().map(|e| (&e.event_type[..], e.payload.len()));
    raccoon_metrics::count_events(&mut metrics, group, events);
    if let Some(sent) = &batch.sent_time {
        let sent = UNIX_EPOCH + Duration::new(sent.seconds.max(0) as u64, sent.nanos.clamp(0, 999_999_999) as u32);
        if let (Ok(age), false) = (SystemTime::now().duration_since(sent), batch.events.is_empty()) {
            metrics.record(MetricId::EventProcessing, tags([group]), age / batch.events.len() as u32);
        }
    }
}

/// Counts a batch that did not decode (`batches_read_total{status="failed",reason}`).
pub(crate) fn record_refused(shard: &Shard, group: Tag, reason: Tag) {
    shard.stats().borrow_mut().bad_frames += 1;
    shard.metrics().borrow_mut().add(MetricId::BatchesRead, tags([shard.tags().failed, reason, group]), 1);
}

/// Queues a batch for its publisher, waiting (without blocking the shard) while the queue is
/// full. Only a stopped publisher hands the batch back.
pub(crate) async fn submit(shard: &Shard, batch: Batch) -> Result<(), Batch> {
    match try_submit(shard, batch) {
        Offer::Queued => Ok(()),
        Offer::Stopped(batch) => Err(batch),
        Offer::Full(batch) => wait_for_room(shard, batch).await,
    }
}

/// Counts a batch and queues it if its publisher's queue has room: the path every batch takes
/// first, with no waiting. A WebSocket reader boxes the rare wait ([`wait_for_room`]) so that
/// its idle task does not carry the wait's state.
pub(crate) fn try_submit(shard: &Shard, batch: Batch) -> Offer {
    {
        let mut stats = shard.stats().borrow_mut();
        stats.batches += 1;
        stats.events += batch.events.len() as u64;
    }
    let offer = shard.handoff().offer(batch);
    if let Offer::Full(_) = offer {
        shard.metrics().borrow_mut().add(MetricId::ShardQueueFull, tags([shard.tags().shard]), 1);
    }
    offer
}

/// Retries a batch [`try_submit`] found its queue full for, with backoff, until there is room.
/// Only a stopped publisher hands the batch back.
pub(crate) async fn wait_for_room(shard: &Shard, mut batch: Batch) -> Result<(), Batch> {
    let mut backoff = QUEUE_FULL_BACKOFF_MIN;
    loop {
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(QUEUE_FULL_BACKOFF_MAX);
        match shard.handoff().offer(batch) {
            Offer::Queued => return Ok(()),
            Offer::Full(returned) => batch = returned,
            Offer::Stopped(returned) => return Err(returned),
        }
    }
}

/// Publishes one batch of a request-shaped transport (REST, gRPC) and returns its reply: once
/// it is queued (`EVENT_ACK=0`) or once Kafka's outcome is known (`EVENT_ACK=1`).
///
/// Cancel safety: dropped while waiting (the client left), the batch is still published and
/// its outcome is discarded when it comes back.
pub(crate) async fn publish_request(
    shard: &Rc<Shard>,
    group: Tag,
    group_name: Arc<str>,
    decoded: DecodedBatch,
    received_at: Instant,
) -> Reply {
    record_batch(shard, group, &decoded);
    if decoded.events.is_empty() {
        return Reply::success(decoded.req_guid);
    }
    let wants_ack = shard.config().ack_mode == AckMode::OnDelivery;
    // Every request is a connection of its own in the ack router: its outcome comes back to it.
    let pending = wants_ack.then(|| shard.await_ack());
    let conn = pending.as_ref().map_or_else(|| shard.next_conn_id(), |p| p.conn());
    let token = AckToken { shard: shard.id(), conn, seq: Seq(0) };
    let (batch_guid, reply_guid) =
        if wants_ack { (decoded.req_guid, None) } else { (String::new(), Some(decoded.req_guid)) };
    let batch =
        Batch { token, req_guid: batch_guid, events: decoded.events, wants_ack, received_at, group: group_name };
    if let Err(batch) = submit(shard, batch).await {
        return Reply::publish_failed(reply_guid.unwrap_or(batch.req_guid), PUBLISHER_STOPPED);
    }
    let Some(pending) = pending else {
        return Reply::success(reply_guid.unwrap_or_default());
    };
    match pending.outcome().await {
        Some(ack) => match ack.outcome {
            DeliveryOutcome::Delivered => Reply::success(ack.req_guid),
            DeliveryOutcome::Failed(detail) => Reply::publish_failed(ack.req_guid, &detail),
        },
        // The shard stopped routing before the outcome came (it cannot, while requests wait).
        None => Reply::publish_failed(String::new(), PUBLISHER_STOPPED),
    }
}
