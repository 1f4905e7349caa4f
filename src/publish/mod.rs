//! Publisher threads: each owns one bounded crossbeam queue of [`Batch`]es and, with
//! `PUBLISHER_TYPE=kafka`, one librdkafka producer. Shards `try_send` into the queues (never
//! blocking); delivery outcomes travel back to the owning shard's inbox as
//! [`Ack`](crate::types::Ack)s.
//!
//! * `producer.rs`, `delivery.rs`: the Kafka publisher; `native.rs`: librdkafka's batch produce
//!   call, which rust-rdkafka does not wrap.
//! * `log.rs`: the log publisher (`PUBLISHER_TYPE=log`), which logs each event instead and needs
//!   no broker; [`crate::protocol::rawproto`] renders its protobuf payloads. Shards cannot tell the two apart:
//!   both serve [`PublishQueues`] and answer through the same inboxes.
//!
//! Threads per Kafka publisher: ours (takes batches off the queue, hands each event to librdkafka)
//! and its poll thread (serves delivery callbacks the moment librdkafka queues them, so an ack
//! waits for no polling interval), plus librdkafka's internal threads. None of them is pinned:
//! the shards own their cores. The poll loop is ours rather than rdkafka's `ThreadedProducer`
//! so that the thread can hand its metrics over even when no delivery report arrives.
//!
//! Both threads record metrics into a thread-local [`LocalMetrics`]: delivery callbacks run on
//! whichever thread polls (the poll thread, or ours during the final flush).

mod delivery;
mod log;
mod native;
mod producer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rdkafka::config::ClientConfig;
use rdkafka::producer::BaseProducer;
use thiserror::Error;

use crate::config::{Config, PublisherKind};
use crate::metrics::local::FLUSH_PERIOD;
use crate::metrics::{tags, LocalMetrics, MetricId, MetricsFactory, Tag};
use crate::types::{Batch, ConnId, ShardId, ShardMsg};

use delivery::DeliveryContext;

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

/// Started publisher threads and the sending sides of their queues, index-aligned.
type Started = (Vec<JoinHandle<()>>, Vec<Sender<Batch>>);

/// A publisher thread's main loop, the same for every publisher kind: sets up the thread's
/// metrics, hands each batch of `queue` to `publish` with the thread's `worker-N` tag, and about
/// once a second records the queue's depth and hands the metrics over. Returns once every sender
/// is gone and the queue is empty; the caller then flushes what it holds.
fn serve_queue(index: usize, metrics: &MetricsFactory, queue: &Receiver<Batch>, mut publish: impl FnMut(Batch, Tag)) {
    with_metrics(|m| *m = metrics.local());
    let worker_tag = with_metrics(|m| m.tag(&format!("worker-{index}")));
    loop {
        match queue.recv_timeout(FLUSH_PERIOD) {
            Ok(batch) => publish(batch, worker_tag),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
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

/// The shards' handle on the publisher queues.
///
/// Crosses threads (Send + Clone): every shard holds a clone. When the last clone is dropped
/// the publisher threads see their queues disconnect, flush and exit.
#[derive(Clone)]
pub struct PublishQueues {
    senders: Arc<[Sender<Batch>]>,
}

impl PublishQueues {
    /// Offers a batch to the publisher that serves `(shard, conn)`. Never blocks; a full queue
    /// hands the batch back, and the shard stops reading from that connection until it fits.
    pub fn try_send(&self, shard: ShardId, conn: ConnId, batch: Batch) -> Result<(), TrySendError<Batch>> {
        // A connection always uses the same publisher, so its batches reach librdkafka in order.
        let index = (conn.0 as usize).wrapping_add(usize::from(shard.0)) % self.senders.len();
        self.senders[index].try_send(batch)
    }
}

/// The running publisher threads.
///
/// Lives on: the main thread.
pub struct Publishers {
    threads: Vec<JoinHandle<()>>,
    abandon: Arc<AtomicBool>,
    flush_timeout: Duration,
}

impl Publishers {
    /// Starts the publisher threads `PUBLISHER_TYPE` asks for: Kafka producers (failing fast on
    /// a bad librdkafka property) or log publishers. `inboxes[k]` is shard k's inbox.
    pub fn start(
        config: &Config,
        inboxes: Vec<async_channel::Sender<ShardMsg>>,
        metrics: &MetricsFactory,
    ) -> Result<(Publishers, PublishQueues), PublishError> {
        let inboxes: Arc<[_]> = inboxes.into();
        let abandon = Arc::new(AtomicBool::new(false));
        let (threads, senders) = match config.publisher.kind {
            PublisherKind::Kafka => start_kafka(config, inboxes, metrics, &abandon)?,
            PublisherKind::Log => {
                log::start(config.publisher.threads, config.publisher.queue_capacity, inboxes, metrics)?
            }
        };
        let queues = PublishQueues { senders: senders.into() };
        Ok((Publishers { threads, abandon, flush_timeout: config.publisher.flush_timeout }, queues))
    }

    /// Waits for every publisher thread to drain its queue, flush and exit. Call after the
    /// shards (and so every [`PublishQueues`]) are gone.
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

/// Creates one producer, poll thread and publisher thread per `PUBLISHER_KAFKA_PRODUCER_THREADS`.
fn start_kafka(
    config: &Config,
    inboxes: Arc<[async_channel::Sender<ShardMsg>]>,
    metrics: &MetricsFactory,
    abandon: &Arc<AtomicBool>,
) -> Result<Started, PublishError> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.publisher.kafka {
        client.set(key, value);
    }
    let mut senders = Vec::with_capacity(config.publisher.threads);
    let mut threads = Vec::with_capacity(config.publisher.threads);
    for index in 0..config.publisher.threads {
        let context = DeliveryContext::new(Arc::clone(&inboxes), config.topic_pattern.clone());
        let producer: BaseProducer<DeliveryContext> = client.create_with_context(context)?;
        let producer = Arc::new(producer);
        let poller = producer::Poller::start(index, &producer, metrics)?;
        let (tx, rx) = crossbeam_channel::bounded(config.publisher.queue_capacity);
        let worker = producer::Worker {
            index,
            producer,
            pattern: config.topic_pattern.clone(),
            flush_timeout: config.publisher.flush_timeout,
            abandon: Arc::clone(abandon),
            metrics: metrics.clone(),
            poller,
        };
        threads.push(std::thread::Builder::new().name(format!("raccoon-pub-{index}")).spawn(move || worker.run(rx))?);
        senders.push(tx);
    }
    Ok((threads, senders))
}
