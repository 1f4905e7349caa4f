//! A publisher thread's loop: batches off the queue, events into librdkafka.
//!
//! Runs on: its own OS thread (blocking is fine here, never on a shard).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use super::delivery::{DeliveryContext, InFlight};
use crate::topic::TopicPattern;
use crate::types::Batch;

/// How long to wait before retrying when librdkafka's queue is full. Its poll thread frees
/// room as deliveries complete; a full queue means the broker is slow or gone, and waiting here
/// is what pushes back on the shards.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

/// One publisher thread's state.
pub(super) struct Worker {
    pub(super) index: usize,
    pub(super) producer: ThreadedProducer<DeliveryContext>,
    pub(super) pattern: TopicPattern,
    pub(super) flush_timeout: Duration,
    /// Set at shutdown, `PUBLISHER_KAFKA_FLUSH_INTERVAL_MS` after the shards are gone: stop
    /// waiting on a full librdkafka queue.
    pub(super) abandon: Arc<AtomicBool>,
}

impl Worker {
    pub(super) fn run(self, queue: Receiver<Batch>) {
        let mut topic = String::with_capacity(64);
        while let Ok(batch) = queue.recv() {
            self.publish(batch, &mut topic);
        }
        // Every shard is gone; give librdkafka a bounded time to deliver what it holds.
        if let Err(error) = self.producer.flush(self.flush_timeout) {
            tracing::error!(
                publisher = self.index,
                %error,
                undelivered = self.producer.in_flight_count(),
                "flush at shutdown did not complete; undelivered events are lost"
            );
        } else {
            tracing::info!(publisher = self.index, "publisher flushed and stopped");
        }
    }

    /// Hands every event of `batch` to librdkafka. Hot path: no allocation per event (the
    /// topic is rendered into `topic`, payloads are borrowed; librdkafka copies them).
    fn publish(&self, batch: Batch, topic: &mut String) {
        let (in_flight, events) = InFlight::new(batch);
        for event in &events {
            let topic = self.pattern.render_into(&event.event_type, topic);
            let mut record = BaseRecord::<(), [u8], Arc<InFlight>>::with_opaque_to(topic, Arc::clone(&in_flight))
                .payload(&event.payload[..]);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                        if !self.abandon.load(Ordering::Acquire) =>
                    {
                        record = returned;
                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    Err((error, returned)) => {
                        drop(returned);
                        in_flight.fail(topic, &error);
                        if in_flight.settle_one() {
                            self.producer.context().complete(&in_flight);
                        }
                        break;
                    }
                }
            }
        }
    }
}
