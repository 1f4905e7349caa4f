//! A publisher thread's loop: batches off the queue, events into librdkafka.
//!
//! Runs on: its own OS thread (blocking is fine here, never on a shard).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::dead_letter::{self, DeadLetter, Letter, Route};
use super::delivery::{DeliveryContext, InFlight};
use super::native::{Refused, TopicBatch, TopicHandles};
use super::record::BatchRecords;
use super::settings::Records;
use super::with_metrics;
use raccoon_core::handoff::{Batch, ShardMsg};
use raccoon_core::health::Health;
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
/// Why a batch is answered before Kafka's outcome, when Kafka is known to be unreachable.
const KAFKA_DOWN: &str = "Kafka is unreachable (every broker down)";

/// What a publisher needs to build its producer, at startup and again after a fatal error.
pub(super) struct ProducerSpec {
    pub(super) index: usize,
    pub(super) client: ClientConfig,
    pub(super) inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    pub(super) pattern: TopicPattern,
    pub(super) health: Arc<Health>,
    pub(super) metrics: MetricsFactory,
    /// Each record's key and headers, and the dead-letter topic.
    pub(super) records: Records,
    /// Where rejected events go, when `records` names a dead-letter topic.
    pub(super) dead_letters: Option<Route>,
}

impl ProducerSpec {
    /// A producer and its poll thread. Fails on a property librdkafka refuses (its message names
    /// the property) or when the OS refuses the thread.
    pub(super) fn build(&self) -> Result<(Arc<BaseProducer<DeliveryContext>>, Poller), crate::PublishError> {
        let context = DeliveryContext::new(
            Arc::clone(&self.inboxes),
            self.pattern.clone(),
            Arc::clone(&self.health),
            self.dead_letters.clone(),
        );
        let producer: Arc<BaseProducer<DeliveryContext>> = Arc::new(self.client.create_with_context(context)?);
        let poller = Poller::start(self.index, &producer, &self.metrics)?;
        Ok((producer, poller))
    }
}

/// A worker while it serves its queue, with what it keeps between batches.
struct Serving {
    worker: Worker,
    /// The topic being rendered (reused).
    topic: String,
    handles: TopicHandles,
    pending: Pending,
    /// Events a broker rejected, to be written to the dead-letter topic (see [`crate::dead_letter`]).
    dead_letters: Receiver<DeadLetter>,
}

impl super::QueueServer for Serving {
    fn publish(&mut self, batch: Batch, worker_tag: Tag) {
        self.worker.publish(batch, &mut self.topic, &mut self.handles, &mut self.pending, worker_tag);
    }

    fn tick(&mut self) {
        self.worker.tick(&mut self.handles, &mut self.pending);
        self.worker.write_dead_letters(&self.dead_letters);
    }
}

/// How long a publisher waits for Kafka before answering a batch anyway.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// `PUBLISHER_KAFKA_BATCH_DEADLINE_MS`: a batch not acknowledged by Kafka within this time
    /// of its receipt is answered "retry".
    pub(super) batch: Duration,
    /// `PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS`: how long a batch waits for room in librdkafka's
    /// queue before its remaining events are refused.
    pub(super) queue_full: Duration,
}

/// One publisher thread's state.
pub(super) struct Worker {
    pub(super) spec: ProducerSpec,
    pub(super) producer: Arc<BaseProducer<DeliveryContext>>,
    /// This publisher's poll thread, started with the producer (see [`Poller::start`]).
    pub(super) poller: Poller,
    pub(super) flush_timeout: Duration,
    pub(super) deadlines: Deadlines,
    /// Set at shutdown, `PUBLISHER_KAFKA_FLUSH_INTERVAL_MS` after the shards are gone: stop
    /// waiting on a full librdkafka queue.
    pub(super) abandon: Arc<AtomicBool>,
    /// Bumped by [`crate::Publishers::raise_fatal_error`] (a fault drill); compared with
    /// `drills_seen` on every tick.
    pub(super) drills: Arc<AtomicU64>,
    pub(super) drills_seen: u64,
    /// Since when librdkafka's queue has been full, if it is now (see [`Worker::produce_all`]).
    pub(super) queue_full_since: std::cell::Cell<Option<Instant>>,
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

/// The batches of one publisher that wait for Kafka's answer and for which a client waits
/// (`EVENT_ACK=1`), in the order they were handed to librdkafka, which is about the order of
/// their deadlines. Settled ones are dropped as they reach the front; the rest are answered
/// early when their deadline passes or Kafka is known to be down. At most one entry per batch
/// librdkafka holds, so it is bounded by librdkafka's queue.
#[derive(Default)]
struct Pending(VecDeque<Arc<InFlight>>);

impl Worker {
    /// Serves `queue` until every shard is gone, then flushes. `dead_letters` brings back the
    /// events a broker rejected, when a dead-letter topic is set (the other end is in
    /// `self.spec.dead_letters`).
    pub(super) fn run(self, queue: Receiver<Batch>, dead_letters: Receiver<DeadLetter>) {
        let mut serving = Serving {
            worker: self,
            topic: String::with_capacity(64),
            handles: TopicHandles::default(),
            pending: Pending::default(),
            dead_letters,
        };
        let (index, metrics) = (serving.worker.spec.index, serving.worker.spec.metrics.clone());
        super::serve_queue(index, &metrics, &queue, &mut serving);
        let Serving { worker, handles, dead_letters, .. } = serving;
        // Every shard is gone; give librdkafka a bounded time to deliver what it holds, and the
        // dead letters its reports bring back (a dead letter's own rejection brings none).
        let mut flushed = worker.producer.flush(worker.flush_timeout);
        if !dead_letters.is_empty() {
            worker.write_dead_letters(&dead_letters);
            flushed = worker.producer.flush(worker.flush_timeout);
        }
        // Rejections reported during that last flush: too late to write, so they fail (and,
        // with EVENT_ACK=0, are logged as lost).
        for letter in dead_letters.try_iter() {
            worker.producer.context().settle_failed(&letter.batch, &letter.topic, letter.code);
        }
        if let Err(error) = flushed {
            tracing::error!(
                publisher = index,
                %error,
                undelivered = worker.producer.in_flight_count(),
                "flush at shutdown did not complete; undelivered events are lost"
            );
        } else {
            tracing::info!(publisher = index, "publisher flushed and stopped");
        }
        // Topic handles go before the producer they belong to.
        drop(handles);
        let Worker { producer, poller, .. } = worker;
        poller.stop();
        drop(producer);
        with_metrics(|m| m.flush(Instant::now()));
    }

    /// Between batches, and at least every [`super::TICK`]: answers the batches that waited too
    /// long or wait for a Kafka known to be down, runs a fault drill if one was asked for, and
    /// rebuilds a producer that hit a fatal error.
    fn tick(&mut self, handles: &mut TopicHandles, pending: &mut Pending) {
        let drills = self.drills.load(Ordering::Acquire);
        if drills != self.drills_seen {
            self.drills_seen = drills;
            self.raise_fatal_error();
        }
        if self.producer.context().take_errors_raised() {
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                self.rebuild(handles, code, &reason);
            }
        }
        let down = self.spec.health.kafka_known_down();
        let now = Instant::now();
        let context = self.producer.context();
        let (mut kafka_down, mut deadline) = (0, 0);
        while let Some(front) = pending.0.front() {
            if front.settled() {
                // Answered by Kafka's outcome already: only dropped.
            } else if down {
                kafka_down += u64::from(context.answer_early(front, KAFKA_DOWN));
            } else if now.saturating_duration_since(front.received_at()) >= self.deadlines.batch {
                let why = format!("not acknowledged within {} ms", self.deadlines.batch.as_millis());
                deadline += u64::from(context.answer_early(front, &why));
            } else {
                break;
            }
            pending.0.pop_front();
        }
        if kafka_down + deadline > 0 {
            with_metrics(|m| {
                for (reason, count) in [("kafka_down", kafka_down), ("deadline", deadline)] {
                    if count > 0 {
                        let reason = m.tag(reason);
                        m.add(MetricId::AnsweredEarly, tags([reason]), count);
                    }
                }
            });
        }
    }

    /// Writes the events a broker rejected to the dead-letter topic.
    fn write_dead_letters(&self, dead_letters: &Receiver<DeadLetter>) {
        let Some(route) = &self.spec.dead_letters else { return };
        for letter in dead_letters.try_iter() {
            dead_letter::write(&self.producer, &route.topic, &Letter::of(&letter));
        }
    }

    /// Raises a fatal error on this publisher's producer (librdkafka's
    /// `rd_kafka_test_fatal_error`), as an idempotence failure would: the next tick rebuilds it.
    #[allow(unsafe_code)]
    fn raise_fatal_error(&self) {
        let reason = c"fault drill (SIGUSR2)";
        // SAFETY: the client's handle is valid while `self.producer` lives; librdkafka copies
        // the reason.
        let err = unsafe {
            rdsys::rd_kafka_test_fatal_error(
                self.producer.client().native_ptr(),
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        tracing::warn!(publisher = self.spec.index, result = ?RDKafkaErrorCode::from(err), "fault drill: fatal producer error raised");
    }

    /// Replaces a producer that librdkafka declared unusable. Dropping the old one purges what it
    /// held: each of those events is reported failed (retriable; "possibly persisted" if it was on
    /// the wire), so every batch it held gets its answer. If a new producer cannot be built, the
    /// old one stays (it refuses every event, answered "retry") and the next tick tries again.
    fn rebuild(&mut self, handles: &mut TopicHandles, code: RDKafkaErrorCode, reason: &str) {
        let (producer, poller) = match self.spec.build() {
            Ok(built) => built,
            Err(error) => {
                tracing::error!(publisher = self.spec.index, %error, "cannot rebuild the Kafka producer; retrying");
                // Asked again at the next tick.
                self.producer.context().recheck_errors();
                return;
            }
        };
        tracing::error!(
            publisher = self.spec.index,
            error = ?code,
            %reason,
            in_flight = self.producer.in_flight_count(),
            "fatal producer error: producer rebuilt, the batches it held are answered \"retry\""
        );
        // Topic handles go before the producer they belong to.
        *handles = TopicHandles::default();
        std::mem::replace(&mut self.poller, poller).stop();
        // The last reference: rdkafka purges its queue and serves the purge reports on this
        // thread as it drops.
        drop(std::mem::replace(&mut self.producer, producer));
        with_metrics(|m| m.add(MetricId::ProducerRebuilds, tags([]), 1));
    }

    /// Hands every event of `batch` to librdkafka, one batch-produce call per topic (see
    /// [`super::native`]). Hot path: no allocation per event (the topic is rendered into `topic`
    /// and its handle kept, payloads are borrowed; librdkafka copies them).
    ///
    /// A batch whose client waits for its outcome (`EVENT_ACK=1`) is not queued for a Kafka known
    /// to be down: its events are refused at once, not published, and it is answered "retry".
    /// With `EVENT_ACK=0` the client was answered already, and librdkafka keeps the events for
    /// when Kafka is back.
    ///
    /// The records of one call carry one timestamp (CreateTime), read once by librdkafka: one
    /// clock read per batch and topic rather than per message, which was 1-4% of the server's CPU
    /// in the first profile (perf-results/2026-12-01-report).
    fn publish(
        &self,
        batch: Batch,
        topic: &mut String,
        handles: &mut TopicHandles,
        pending: &mut Pending,
        worker_tag: Tag,
    ) {
        let dequeued = Instant::now();
        let idle = dequeued.duration_since(batch.received_at);
        let refuse_all = batch.wants_ack && self.spec.health.kafka_known_down();
        let wants_ack = batch.wants_ack;
        let (in_flight, events) = InFlight::new(batch);
        let records =
            BatchRecords::new(&self.spec.records, in_flight.origin(), in_flight.req_guid(), in_flight.sent_time());
        let (key, headers) = (records.key, records.headers.as_ref());
        handles.start_batch();
        let handles = &*handles;
        // The batch's topics, in the order their first event came, and the types seen so far
        // with their topic's group: a batch has few, and an event of a type seen already costs
        // one comparison per type (at most TYPES_REMEMBERED) instead of a render and a lookup.
        let mut groups: Vec<TopicBatch<'_>> = Vec::new();
        let mut types: Vec<(&[u8], usize)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            // A batch holds fewer than 2^32 events (its message would be larger than any limit).
            let index = i as u32;
            let refused = |name: &str, code| {
                self.refused(
                    Refused { opaque: Arc::clone(&in_flight), code, payload: &event.payload, index },
                    name,
                    key,
                )
            };
            if refuse_all {
                refused(self.spec.pattern.render_into(&event.event_type, topic), RDKafkaErrorCode::AllBrokersDown);
                continue;
            }
            let seen = types.iter().find(|(t, _)| *t == &event.event_type[..]).map(|&(_, group)| group);
            let group = match seen {
                Some(group) => group,
                None => {
                    let name = self.spec.pattern.render_into(&event.event_type, topic);
                    let handle = match handles.get(&self.producer, name) {
                        Ok(handle) => handle,
                        Err(code) => {
                            refused(name, code);
                            continue;
                        }
                    };
                    // Linear: a batch of n topics costs n^2 / 2 pointer comparisons, less than
                    // librdkafka's own lookup by name cost per event before.
                    let position = match groups.iter().position(|g| g.topic == handle) {
                        Some(position) => position,
                        None => {
                            // At most the rest of the batch goes to this topic.
                            groups.push(TopicBatch::with_capacity(handle, events.len() - i, headers));
                            groups.len() - 1
                        }
                    };
                    if types.len() < TYPES_REMEMBERED {
                        types.push((&event.event_type, position));
                    }
                    position
                }
            };
            groups[group].push(&event.payload, key, index, Arc::clone(&in_flight));
        }
        let gave_up = self.produce_all(groups, wants_ack, key);
        if wants_ack && !in_flight.settled() {
            if gave_up {
                // Part of the batch is queued, the rest was refused: its client is answered
                // now rather than at the deadline.
                let why = format!("librdkafka's queue stayed full for {} ms", self.deadlines.queue_full.as_millis());
                self.producer.context().answer_early(&in_flight, &why);
            } else {
                pending.0.push_back(in_flight);
            }
        }
        let taken = dequeued.elapsed();
        with_metrics(|m| {
            m.record(MetricId::BatchIdle, tags([worker_tag]), idle);
            m.record(MetricId::ProduceBulk, tags([]), taken);
            m.record(MetricId::WorkerProcessing, tags([worker_tag]), taken / events.len().max(1) as u32);
        });
    }

    /// Hands every gathered group to librdkafka, waiting (and offering again) while its queue is
    /// full. A client that waits for the outcome (`wants_ack`) is not kept waiting once the queue
    /// has been full for `PUBLISHER_KAFKA_QUEUE_FULL_WAIT_MS`, or at all once Kafka is known to be
    /// down: the events still outside librdkafka are refused (not published), and `true` says so.
    /// Without a waiting client, the wait lasts until shutdown gives up on it: that is what
    /// pushes back on the shards.
    fn produce_all<'a>(&self, groups: Vec<TopicBatch<'a>>, wants_ack: bool, key: Option<&'a [u8]>) -> bool {
        let mut gave_up = false;
        for mut group in groups {
            let topic = group.topic;
            // The name is looked up only for a refusal, which is rare.
            let refused = |refused: Refused<'a>| self.refused(refused, &topic.name(), key);
            while group.produce(&self.producer, refused) {
                // Since when the queue has been full, across batches: those behind a batch that
                // waited do not wait again while it stays full.
                let since = match self.queue_full_since.get() {
                    Some(since) => since,
                    None => {
                        let now = Instant::now();
                        self.queue_full_since.set(Some(now));
                        now
                    }
                };
                let give_up = if wants_ack {
                    since.elapsed() >= self.deadlines.queue_full || self.spec.health.kafka_known_down()
                } else {
                    self.abandon.load(Ordering::Acquire)
                };
                if give_up {
                    group.refuse_all(RDKafkaErrorCode::QueueFull, refused);
                    gave_up = true;
                    break;
                }
                std::thread::sleep(QUEUE_FULL_BACKOFF);
            }
            if !gave_up {
                self.queue_full_since.set(None);
            }
        }
        gave_up
    }

    /// An event librdkafka refused outright (or that was not offered to it) for `topic`: it is
    /// written to the dead-letter topic if it was rejected for good and one is set (with `key`,
    /// its record's), and otherwise counts as settled, failed and not published.
    fn refused(&self, refused: Refused<'_>, topic: &str, key: Option<&[u8]>) {
        let Refused { opaque: in_flight, code, payload, index } = refused;
        let context = self.producer.context();
        if let Some(route) = self.spec.dead_letters.as_ref().filter(|route| route.takes(topic, code)) {
            context.count_event(&in_flight, topic, Err(code));
            let letter = Letter { batch: &in_flight, topic, code, payload, key, headers: None, index: Some(index) };
            dead_letter::write(&self.producer, &route.topic, &letter);
            return;
        }
        context.count_event(&in_flight, topic, Err(code));
        if matches!(code, RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition) {
            with_metrics(|m| {
                let (t, g) = (m.client_tag(topic), m.client_tag(in_flight.group()));
                let ty = m.client_tag(self.spec.pattern.event_type_of(topic));
                m.add(MetricId::UnknownTopic, tags([t, ty, g]), 1);
            });
        }
        context.settle_failed(&in_flight, topic, code);
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
