//! A publisher thread's loop: batches off the queue, events into librdkafka.
//!
//! Runs on: its own OS thread (blocking is fine here, never on a shard).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};

use super::delivery::{DeliveryContext, InFlight};
use super::native::{TopicBatch, TopicHandles};
use super::with_metrics;
use raccoon_core::handoff::Batch;
use raccoon_core::topic::TopicPattern;
use raccoon_metrics::{tags, MetricId, MetricsFactory, Tag};

/// How long to wait before retrying when librdkafka's queue is full. Its poll thread frees
/// room as deliveries complete; a full queue means the broker is slow or gone, and waiting here
/// is what pushes back on the shards.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);
/// Most event types a batch remembers the topic of.
const TYPES_REMEMBERED: usize = 8;
/// Longest a poll waits for librdkafka events; also how often the poll thread looks up.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// One publisher thread's state.
pub(super) struct Worker {
    pub(super) index: usize,
    pub(super) producer: Arc<BaseProducer<DeliveryContext>>,
    pub(super) pattern: TopicPattern,
    pub(super) flush_timeout: Duration,
    /// Set at shutdown, `PUBLISHER_KAFKA_FLUSH_INTERVAL_MS` after the shards are gone: stop
    /// waiting on a full librdkafka queue.
    pub(super) abandon: Arc<AtomicBool>,
    pub(super) metrics: MetricsFactory,
    /// This publisher's poll thread, started with it (see [`Poller::start`]).
    pub(super) poller: Poller,
}

/// The thread that serves librdkafka's events for one producer.
pub(super) struct Poller {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Poller {
    /// Starts the poll thread. Failing here fails startup: without it, acks would wait for the
    /// final flush.
    pub(super) fn start(
        index: usize,
        producer: &Arc<BaseProducer<DeliveryContext>>,
        metrics: &MetricsFactory,
    ) -> std::io::Result<Poller> {
        let stop = Arc::new(AtomicBool::new(false));
        let (producer, flag, metrics) = (Arc::clone(producer), Arc::clone(&stop), metrics.clone());
        let thread = std::thread::Builder::new()
            .name(format!("raccoon-poll-{index}"))
            .spawn(move || poll_loop(&producer, &flag, &metrics))?;
        Ok(Poller { thread, stop })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if self.thread.join().is_err() {
            tracing::error!("a Kafka poll thread panicked");
        }
    }
}

impl Worker {
    pub(super) fn run(self, queue: Receiver<Batch>) {
        let mut topic = String::with_capacity(64);
        let mut handles = TopicHandles::default();
        super::serve_queue(self.index, &self.metrics, &queue, |batch, worker| {
            self.publish(batch, &mut topic, &mut handles, worker);
        });
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
        // Topic handles go before the producer they belong to.
        drop(handles);
        self.poller.stop();
        with_metrics(|m| m.flush(Instant::now()));
    }

    /// Hands every event of `batch` to librdkafka, one batch-produce call per topic (see
    /// [`super::native`]). Hot path: no allocation per event (the topic is rendered into `topic`
    /// and its handle kept, payloads are borrowed; librdkafka copies them).
    ///
    /// The records of one call carry one timestamp (CreateTime), read once by librdkafka: one
    /// clock read per batch and topic rather than per message, which was 1-4% of the server's CPU
    /// in the first profile (perf-results/2026-12-01-report).
    fn publish(&self, batch: Batch, topic: &mut String, handles: &mut TopicHandles, worker_tag: Tag) {
        let dequeued = Instant::now();
        let idle = dequeued.duration_since(batch.received_at);
        let (in_flight, events) = InFlight::new(batch);
        handles.start_batch();
        let handles = &*handles;
        // The batch's topics, in the order their first event came, and the types seen so far
        // with their topic's group: a batch has few, and an event of a type seen already costs
        // one comparison per type (at most TYPES_REMEMBERED) instead of a render and a lookup.
        let mut groups: Vec<TopicBatch<'_>> = Vec::new();
        let mut types: Vec<(&[u8], usize)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let seen = types.iter().find(|(t, _)| *t == &event.event_type[..]).map(|&(_, group)| group);
            let index = match seen {
                Some(index) => index,
                None => {
                    let name = self.pattern.render_into(&event.event_type, topic);
                    let handle = match handles.get(&self.producer, name) {
                        Ok(handle) => handle,
                        Err(code) => {
                            self.refused(&in_flight, name, &KafkaError::MessageProduction(code));
                            continue;
                        }
                    };
                    // Linear: a batch of n topics costs n^2 / 2 pointer comparisons, less than
                    // librdkafka's own lookup by name cost per event before.
                    let index = match groups.iter().position(|g| g.topic == handle) {
                        Some(index) => index,
                        None => {
                            // At most the rest of the batch goes to this topic.
                            groups.push(TopicBatch::with_capacity(handle, events.len() - i));
                            groups.len() - 1
                        }
                    };
                    if types.len() < TYPES_REMEMBERED {
                        types.push((&event.event_type, index));
                    }
                    index
                }
            };
            groups[index].push(&event.payload, Arc::clone(&in_flight));
        }
        self.produce_all(groups);
        let taken = dequeued.elapsed();
        with_metrics(|m| {
            m.record(MetricId::BatchIdle, tags([worker_tag]), idle);
            m.record(MetricId::ProduceBulk, tags([]), taken);
            m.record(MetricId::WorkerProcessing, tags([worker_tag]), taken / events.len().max(1) as u32);
        });
    }

    /// Hands every gathered group to librdkafka, waiting (and offering again) while its queue
    /// is full, until shutdown gives up on it.
    fn produce_all(&self, groups: Vec<TopicBatch<'_>>) {
        for mut group in groups {
            let topic = group.topic;
            // The name is looked up only for a refusal, which is rare.
            let refused = |opaque: Arc<InFlight>, code| {
                self.refused(&opaque, &topic.name(), &KafkaError::MessageProduction(code))
            };
            while group.produce(refused) {
                if self.abandon.load(Ordering::Acquire) {
                    group.refuse_all(RDKafkaErrorCode::QueueFull, refused);
                    break;
                }
                std::thread::sleep(QUEUE_FULL_BACKOFF);
            }
        }
    }

    /// An event librdkafka refused outright: it counts as settled and failed.
    fn refused(&self, in_flight: &InFlight, topic: &str, error: &KafkaError) {
        let context = self.producer.context();
        in_flight.fail(topic, error);
        context.count_event(in_flight, topic, false);
        if matches!(
            error,
            KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
        ) {
            with_metrics(|m| {
                let (t, g) = (m.client_tag(topic), m.client_tag(in_flight.group()));
                let ty = m.client_tag(self.pattern.event_type_of(topic));
                m.add(MetricId::UnknownTopic, tags([t, ty, g]), 1);
            });
        }
        if in_flight.settle_one() {
            context.complete(in_flight);
        }
    }
}

/// Serves librdkafka's events (delivery reports, statistics, logs) the moment they are queued,
/// so an ack waits for no polling interval.
fn poll_loop(producer: &BaseProducer<DeliveryContext>, stop: &AtomicBool, metrics: &MetricsFactory) {
    with_metrics(|m| *m = metrics.local());
    while !stop.load(Ordering::Acquire) {
        producer.poll(POLL_WAIT);
        with_metrics(|m| m.maybe_flush(Instant::now()));
    }
    with_metrics(|m| m.flush(Instant::now()));
}
