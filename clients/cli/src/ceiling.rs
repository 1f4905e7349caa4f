//! `raccoon-cli ceiling`: a bare rdkafka producer with the server's librdkafka settings
//! (`raccoon_publish::kafka::client_properties`, the same defaults, `-X key=value` overrides)
//! producing `load`'s events into the same broker, the way a server publisher thread does: one
//! thread hands every event of a batch to librdkafka as fast as its queue takes them (waiting
//! 1 ms on a full queue), a second thread polls delivery reports. The figures - events/s
//! delivered, CPU per event, batch delivery latency (first event handed over to the last one's
//! report, what `EVENT_ACK=1` waits for) - are the baseline every `load` result is compared with.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::latency::Latencies;
use crate::procfs::{self, Pid};
use crate::workload::WorkloadArgs;

/// The server publisher's wait on a full librdkafka queue.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);
/// How long the final flush may take.
const FLUSH_LIMIT: Duration = Duration::from_secs(30);

/// `ceiling`'s options.
#[derive(Args, Debug)]
pub struct CeilingArgs {
    /// The broker(s), `bootstrap.servers`.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    brokers: String,
    /// A librdkafka property over the server's defaults, `key=value`; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Topic of each event type, `%s` standing for the type (the server's
    /// EVENT_DISTRIBUTION_PUBLISHER_PATTERN default).
    #[arg(long, default_value = "clickstream-%s-log")]
    topic_pattern: String,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of producing before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One batch in librdkafka: every one of its events carries a clone.
struct InFlight {
    handed_at: Instant,
    remaining: AtomicUsize,
}

/// Delivery counters and latencies, served on the poll thread.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
    measuring: AtomicBool,
    latency: Mutex<Latencies>,
    first_error: Mutex<Option<String>>,
}

impl Counting {
    fn settle(&self, batch: &InFlight, ok: bool, error: impl FnOnce() -> String) {
        if ok {
            self.delivered.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
            self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(error);
        }
        if batch.remaining.fetch_sub(1, Relaxed) == 1 && self.measuring.load(Relaxed) {
            self.latency.lock().unwrap_or_else(|e| e.into_inner()).record(batch.handed_at.elapsed());
        }
    }
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = Arc<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<InFlight>) {
        match result {
            Ok(_) => self.settle(&batch, true, String::new),
            Err((e, _)) => self.settle(&batch, false, || e.to_string()),
        }
    }
}

impl CeilingArgs {
    /// The server's defaults with the broker and the `-X` overrides applied.
    fn properties(&self) -> Result<Vec<(String, String)>, String> {
        let mut overrides = vec![("bootstrap.servers".to_owned(), self.brokers.clone())];
        for p in &self.properties {
            let Some((k, v)) = p.split_once('=') else { return Err(format!("-X {p:?} is not key=value")) };
            overrides.push((k.trim().to_owned(), v.to_owned()));
        }
        // client_properties takes the part after PUBLISHER_KAFKA_CLIENT_; a dotted name maps to itself.
        let merged = raccoon_publish::kafka::client_properties(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(merged.into_iter().collect())
    }
}

/// What a run found: the report as text (stdout) and as JSON (`--json`), and whether it passed.
struct Outcome {
    text: String,
    report: serde_json::Value,
    ok: bool,
}

/// Runs `ceiling`; bounded by warm-up + duration + the final flush. The report goes to stdout
/// and, with `--json`, to a file; the exit status as `raccoon-cli ceiling --help` describes it.
pub fn run(args: CeilingArgs) -> ExitCode {
    let json = args.json.clone();
    let outcome = match outcome(args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    print!("{}", outcome.text);
    if let Some(path) = &json {
        if let Err(code) = crate::write_json_report(path, &outcome.report) {
            return code;
        }
    }
    if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs `ceiling` as [`run`] does (progress on stderr) and returns the report `--json` would
/// write, printing nothing on stdout; `Err` is the exit status of a usage error (2).
pub fn measure(args: CeilingArgs) -> Result<serde_json::Value, ExitCode> {
    outcome(args).map(|o| o.report)
}

fn outcome(args: CeilingArgs) -> Result<Outcome, ExitCode> {
    let usage = |why: String| {
        eprintln!("error: {why}");
        Err(ExitCode::from(2))
    };
    if let Err(why) = args.workload.check() {
        return usage(why);
    }
    let in_range = |v: f64, lo: f64, hi: f64| v >= lo && v <= hi;
    if !in_range(args.duration, f64::MIN_POSITIVE, 86_400.0) || !in_range(args.warmup, 0.0, 3_600.0) {
        return usage(format!("--duration {} / --warmup {} out of range", args.duration, args.warmup));
    }
    if !args.topic_pattern.contains("%s") {
        return usage(format!("--topic-pattern {:?} has no %s", args.topic_pattern));
    }
    let properties = match args.properties() {
        Ok(p) => p,
        Err(why) => return usage(why),
    };
    let mut config = ClientConfig::new();
    for (k, v) in &properties {
        config.set(k, v);
    }
    let producer: Arc<BaseProducer<Counting>> = match config.create_with_context(Counting::default()) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: cannot create the producer: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                producer.poll(Duration::from_millis(100));
            }
        })
    };
    let sender = {
        let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
        let events = args.workload.events();
        let topics: Vec<String> = events.iter().map(|e| args.topic_pattern.replace("%s", &e.event_type)).collect();
        std::thread::spawn(move || produce(&producer, &events, &topics, &stop))
    };
    eprintln!(
        "ceiling: producing {} x {} B events per batch to {} ({}) for {} s after {} s warm-up",
        args.workload.batch, args.workload.event_bytes, args.brokers, args.topic_pattern, args.duration, args.warmup
    );
    let counting = producer.context();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    counting.measuring.store(true, Relaxed);
    let (start, start_count, own_before) =
        (Instant::now(), counting.delivered.load(Relaxed), procfs::sample(Pid::Own).ok());
    let mut last = (Instant::now(), start_count);
    let end = start + Duration::from_secs_f64(args.duration);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())));
        let now = (Instant::now(), counting.delivered.load(Relaxed));
        eprintln!(
            "[{:>4.0}s] delivered {:>9.0} ev/s  failed {}  in librdkafka {}",
            start.elapsed().as_secs_f64(),
            (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(1e-9),
            counting.failed.load(Relaxed),
            producer.in_flight_count()
        );
        last = now;
    }
    let (elapsed, delivered) = (start.elapsed().as_secs_f64(), counting.delivered.load(Relaxed) - start_count);
    let own_after = procfs::sample(Pid::Own).ok();
    counting.measuring.store(false, Relaxed);
    stop.store(true, Relaxed);
    let _ = sender.join();
    let flushed = producer.flush(FLUSH_LIMIT).is_ok();
    let _ = poller.join();
    let own = own_before.zip(own_after).map(|(b, a)| procfs::Usage::between(&b, &a));
    let latency = counting.latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failed = counting.failed.load(Relaxed);
    let first_error = counting.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let rate = delivered as f64 / elapsed.max(1e-9);
    let mut text = format!(
        "ceiling: {rate:.0} events/s delivered ({delivered} in {elapsed:.1} s), failed {failed}{}\n",
        first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    text += &format!("batch delivery latency ({} batches): {}\n", latency.count(), latency.line());
    if let Some(u) = &own {
        let per = if delivered > 0 { u.cpu_seconds * 1e6 / delivered as f64 } else { 0.0 };
        text += &format!("producer process: CPU {:.1}% of a core, {per:.2} µs CPU per event\n", u.cpu_percent);
    }
    if !flushed {
        eprintln!("warning: the final flush did not finish within {FLUSH_LIMIT:?}");
    }
    let report = serde_json::json!({
        "command": "ceiling",
        "brokers": args.brokers,
        "topic_pattern": args.topic_pattern,
        "properties": properties.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "workload": args.workload.json(),
        "warmup_s": args.warmup,
        "duration_s": elapsed,
        "delivered_events": delivered,
        "events_per_sec": rate,
        "errors": failed,
        "first_error": first_error,
        "delivery_latency": latency.json(),
        "client": own.map(|u| u.json(delivered)),
        "flushed": flushed,
    });
    Ok(Outcome { text, report, ok: failed == 0 && delivered > 0 })
}

/// The sender thread: batch after batch until `stop`, as the server's publisher hands events
/// over; an event librdkafka refuses outright counts as failed.
fn produce(producer: &BaseProducer<Counting>, events: &[raccoon_client::Event], topics: &[String], stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        let batch = Arc::new(InFlight { handed_at: Instant::now(), remaining: AtomicUsize::new(events.len()) });
        for (event, topic) in events.iter().zip(topics) {
            let mut record = BaseRecord::<(), [u8], Arc<InFlight>>::with_opaque_to(topic, Arc::clone(&batch))
                .payload(&event.data[..]);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        if stop.load(Relaxed) {
                            // The run is over: this batch is never finished, so it is not measured.
                            return;
                        }
                        record = returned;
                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    Err((error, returned)) => {
                        drop(returned);
                        producer.context().settle(&batch, false, || error.to_string());
                        break;
                    }
                }
            }
        }
    }
}
