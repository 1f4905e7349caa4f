//! Publisher threads: each owns the receiving end of one of the [`Handoff`]'s bounded queues
//! and, with `PUBLISHER_TYPE=kafka`, one librdkafka producer. Shards offer batches to the
//! handoff (never waiting); delivery outcomes travel back to the owning shard's inbox as
//! [`Ack`](raccoon_core::handoff::Ack)s. This crate knows no shard: both sides meet only in
//! [`raccoon_core`].
//!
//! * `producer.rs`, `delivery.rs`: the Kafka publisher; `native.rs`: librdkafka's batch produce
//!   call, which rust-rdkafka does not wrap; `record`: each record's key and headers;
//!   `dead_letter.rs`: where events Kafka rejects for good go, when a dead-letter topic is set.
//! * `log.rs`: the log publisher (`PUBLISHER_TYPE=log`), which logs each event instead and needs
//!   no broker; [`raccoon_protocol::rawproto`] renders its protobuf payloads. Shards cannot tell
//!   the two apart: both serve the [`Handoff`] and answer through the same inboxes.
//! * `health`: the Kafka health checker; `kafka`: the librdkafka defaults; `settings`: the
//!   `PUBLISHER_*` settings.
//!
//! Threads per Kafka publisher: ours (takes batches off the queue, hands each event to librdkafka)
//! and its poll thread (serves delivery callbacks the moment librdkafka queues them, so an ack
//! waits for no polling interval), plus librdkafka's internal threads. None of them is pinned:
//! the shards own their cores. The poll loop is ours rather than rdkafka's [`ThreadedProducer`](rdkafka::producer::ThreadedProducer)
//! so that the thread can hand its metrics over even when no delivery report arrives.
//!
//! Both threads record metrics into a thread-local [`LocalMetrics`]: delivery callbacks run on
//! whichever thread polls (the poll thread, or ours during the final flush).

mod classify;
mod dead_letter;
mod delivery;
pub mod health;
pub mod kafka;
mod log;
mod native;
mod producer;
mod record;
mod settings;
mod throttle;

pub use settings::{PublisherConfig, PublisherKind, RecordKey, Records};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rdkafka::config::ClientConfig;
use thiserror::Error;

use raccoon_core::handoff::{Batch, Handoff, ShardMsg};
use raccoon_core::health::Health;
use raccoon_core::topic::TopicPattern;
use raccoon_metrics::{tags, LocalMetrics, MetricId, MetricsFactory, Tag};

use producer::{Deadlines, ProducerSpec};

thread_local! {
    static METRICS: std::cell::RefCell<LocalMetrics> = std::cell::RefCell::new(LocalMetrics::disabled());
}

/// Runs `f` on this thread's metrics. Never panics: a re-entrant call (not expected) records
/// into a throwaway recorder instead.
fn with_metrics<R>(f: impl FnOnce(&mut LocalMetrics) -> R) -> R {
    METRICS.with(|m| match m.try_borrow_mut() {
        Ok(mut m) => f(&mut m),
        Err(_) => f(&mut LocalMetrics::disabled()),
    })
}

/// What a publisher thread does with its queue.
trait QueueServer {
    /// Publishes one batch, recording under the thread's `worker-N` tag.
    fn publish(&mut self, batch: Batch, worker: Tag);
    /// Called after every batch and at least every [`TICK`]: time-driven work.
    fn tick(&mut self) {}
}

/// How often an idle publisher thread looks up from its queue ([`QueueServer::tick`]): the
/// longest a batch waits past its deadline, or past the moment Kafka is known to be down,
/// before it is answered.
const TICK: Duration = Duration::from_millis(50);

/// A publisher thread's main loop, the same for every publisher kind: sets up the thread's
/// metrics, hands each batch of `queue` to `server` with the thread's `worker-N` tag, ticks it,
/// and about once a second records the queue's depth and hands the metrics over. Returns once
/// every sender is gone and the queue is empty; the caller then flushes what it holds.
fn serve_queue(index: usize, metrics: &MetricsFactory, queue: &Receiver<Batch>, server: &mut impl QueueServer) {
    with_metrics(|m| *m = metrics.local());
    let worker_tag = with_metrics(|m| m.tag(&format!("worker-{index}")));
    loop {
        match queue.recv_timeout(TICK) {
            Ok(batch) => server.publish(batch, worker_tag),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        server.tick();
        with_metrics(|m| {
            let now = Instant::now();
            if m.flush_due(now) {
                m.set(MetricId::PublisherQueue, tags([worker_tag]), queue.len() as f64);
                m.flush(now);
            }
        });
    }
}

/// Why the publishers could not start.
#[derive(Debug, Error)]
pub enum PublishError {
    /// librdkafka refused the configuration (the message names the property).
    #[error("cannot create Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    /// The OS refused a thread.
    #[error("cannot start publisher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The running publisher threads.
///
/// Lives on: the main thread.
pub struct Publishers {
    threads: Vec<JoinHandle<()>>,
    abandon: Arc<AtomicBool>,
    /// Fault drills asked for ([`Publishers::raise_fatal_error`]); each Kafka publisher keeps
    /// the count it has acted on.
    drills: Arc<AtomicU64>,
    flush_timeout: Duration,
}

impl Publishers {
    /// Starts the publisher threads `PUBLISHER_TYPE` asks for: Kafka producers (failing fast on
    /// a bad librdkafka property) or log publishers, each on one queue of the returned
    /// [`Handoff`]. `pattern` names each event's topic; `inboxes[k]` is shard k's inbox;
    /// `health` is where Kafka producers report every broker down, and what tells them Kafka is
    /// unreachable.
    pub fn start(
        config: &PublisherConfig,
        pattern: &TopicPattern,
        inboxes: Vec<async_channel::Sender<ShardMsg>>,
        metrics: &MetricsFactory,
        health: &Arc<Health>,
    ) -> Result<(Publishers, Handoff), PublishError> {
        let inboxes: Arc<[_]> = inboxes.into();
        let abandon = Arc::new(AtomicBool::new(false));
        let drills = Arc::new(AtomicU64::new(0));
        let (handoff, queues) = Handoff::channels(config.threads, config.queue_capacity);
        let threads = match config.kind {
            PublisherKind::Kafka => {
                let shared = KafkaShared { inboxes, metrics, health, abandon: &abandon, drills: &drills };
                start_kafka(config, pattern, queues, &shared)?
            }
            PublisherKind::Log => log::start(queues, inboxes, metrics)?,
        };
        Ok((Publishers { threads, abandon, drills, flush_timeout: config.flush_timeout }, handoff))
    }

    /// A fault drill: raises a fatal error on every Kafka producer (librdkafka's
    /// `rd_kafka_test_fatal_error`, as an idempotence failure would), which each publisher
    /// answers by building a new producer; the batches the old one held are answered "retry".
    /// Does nothing with the log publisher. Returns at once; the publishers act within a tick.
    pub fn raise_fatal_error(&self) {
        self.drills.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits for every publisher thread to drain its queue, flush and exit. Call after the
    /// shards (and so every clone of the [`Handoff`]) are gone.
    ///
    /// Batches still queued were already answered with `EVENT_ACK=0`, so the threads get
    /// `PUBLISHER_KAFKA_FLUSH_INTERVAL_MS` to hand them to librdkafka even if its queue is full
    /// (a slow broker); after that, events still waiting for room are failed (and logged as lost)
    /// instead of waited for, and each thread's final flush gets the same time again. Log
    /// publisher threads never wait on anything but their queue and finish on their own.
    pub fn shutdown(self) {
        let deadline = Instant::now() + self.flush_timeout;
        while Instant::now() < deadline && !self.threads.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.abandon.store(true, Ordering::Release);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a publisher thread panicked");
            }
        }
    }
}

/// What every Kafka publisher thread shares.
struct KafkaShared<'a> {
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    metrics: &'a MetricsFactory,
    health: &'a Arc<Health>,
    abandon: &'a Arc<AtomicBool>,
    drills: &'a Arc<AtomicU64>,
}

/// Creates one producer, poll thread and publisher thread per queue.
fn start_kafka(
    config: &PublisherConfig,
    pattern: &TopicPattern,
    queues: Vec<Receiver<Batch>>,
    shared: &KafkaShared<'_>,
) -> Result<Vec<JoinHandle<()>>, PublishError> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.kafka {
        client.set(key, value);
    }
    let deadlines = Deadlines { batch: config.batch_deadline, queue_full: config.queue_full_wait };
    let mut threads = Vec::with_capacity(queues.len());
    for (index, rx) in queues.into_iter().enumerate() {
        // Rejections a broker reports come back to the publisher thread to be dead-lettered.
        let (route, dead_letters) = match &config.records.dead_letter_topic {
            Some(topic) => {
                let (back, dead_letters) = crossbeam_channel::unbounded();
                (Some(dead_letter::Route { topic: Arc::from(topic.as_str()), back }), dead_letters)
            }
            None => (None, crossbeam_channel::never()),
        };
        let spec = ProducerSpec {
            index,
            client: client.clone(),
            inboxes: Arc::clone(&shared.inboxes),
            pattern: pattern.clone(),
            health: Arc::clone(shared.health),
            metrics: shared.metrics.clone(),
            records: config.records.clone(),
            dead_letters: route,
        };
        let (producer, poller) = spec.build()?;
        let worker = producer::Worker {
            spec,
            producer,
            poller,
            flush_timeout: config.flush_timeout,
            deadlines,
            abandon: Arc::clone(shared.abandon),
            drills: Arc::clone(shared.drills),
            drills_seen: 0,
            queue_full_since: std::cell::Cell::new(None),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("raccoon-pub-{index}"))
                .spawn(move || worker.run(rx, dead_letters))?,
        );
    }
    Ok(threads)
}
