//! Reading back what the server published: every record of a topic from its beginning, and the
//! assertion every end-to-end test makes, that a topic holds exactly what was sent. `kafka` is a
//! bootstrap list: one broker, or every node of a cluster.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::names::unique;

/// How long [`assert_topic_holds`] waits for the records it expects.
pub const CONSUME_LIMIT: Duration = Duration::from_secs(60);

/// Reads every record of partition 0 of `topic` from the beginning until `want` records were
/// seen or `limit` passed, then half a second more to catch duplicates. Test topics are
/// auto-created with one partition.
pub fn consume(kafka: &str, topic: &str, want: usize, limit: Duration) -> Vec<Vec<u8>> {
    consume_records(kafka, topic, want, limit).into_iter().map(|(payload, _)| payload).collect()
}

/// [`consume`], with each record's timestamp (milliseconds since the epoch).
pub fn consume_records(kafka: &str, topic: &str, want: usize, limit: Duration) -> Vec<(Vec<u8>, Option<i64>)> {
    consume_full(kafka, topic, want, limit).into_iter().map(|r| (r.payload, r.timestamp)).collect()
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The value.
    pub payload: Vec<u8>,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Name and value of each header, in order (a header without a value has an empty one).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value of the header `name` as text, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        let value = self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)?;
        Some(std::str::from_utf8(value).expect("header values are text"))
    }
}

/// [`consume`], with each record's timestamp, key and headers.
pub fn consume_full(kafka: &str, topic: &str, want: usize, limit: Duration) -> Vec<Record> {
    use rdkafka::message::Headers as _;
    let consumer = from_the_beginning(kafka, topic);
    let poll = |out: &mut Vec<Record>, wait: Duration| {
        // Errors (e.g. the topic is not there yet) are retried until the deadline.
        if let Some(Ok(m)) = consumer.poll(wait) {
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default();
            out.push(Record {
                payload: m.payload().unwrap_or_default().to_vec(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(<[u8]>::to_vec),
                headers,
            });
        }
    };
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    while out.len() < want && Instant::now() < deadline {
        poll(&mut out, Duration::from_millis(200));
    }
    // Anything beyond `want` would be a duplicate: give it a moment to show up.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        poll(&mut out, Duration::from_millis(100));
    }
    out
}

/// Every record of partition 0 of `topic`, from the beginning up to its high watermark as it is
/// when called: all that Kafka acknowledged to producers (with `acks=all`, a record is below the
/// high watermark before its producer hears of it), duplicates included, and nothing is waited
/// for beyond it. For topics whose expected count is not known in advance, e.g. where a failed
/// batch's events may or may not have been written. Panics if the end is not reached in `limit`.
pub fn consume_to_end(kafka: &str, topic: &str, limit: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let consumer = from_the_beginning(kafka, topic);
    let high = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok((_, high)) => break high,
            Err(e) => assert!(Instant::now() < deadline, "topic {topic}: no watermarks within {limit:?}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = Vec::new();
    let mut next = 0;
    while next < high {
        assert!(
            Instant::now() < deadline,
            "topic {topic}: read up to offset {next} of {high} within {limit:?} ({} records)",
            out.len()
        );
        // Errors (e.g. a leader moving) are retried until the deadline.
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.payload().unwrap_or_default().to_vec());
            next = m.offset() + 1;
        }
    }
    out
}

/// A consumer of partition 0 of `topic` from its first record, in a group of its own that
/// commits nothing.
fn from_the_beginning(kafka: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("raccoon-test"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).expect("partition 0 from the beginning");
    consumer.assign(&tpl).expect("assign the partition");
    consumer
}

/// Consumes `topic` and checks it holds exactly `want`, in any order: no loss, no duplicates.
pub fn assert_topic_holds(kafka: &str, topic: &str, want: &[Vec<u8>]) {
    let mut got = consume(kafka, topic, want.len(), CONSUME_LIMIT);
    let mut want = want.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "topic {topic}: got {} records, want {}", got.len(), want.len());
    assert_eq!(got, want, "topic {topic}: payloads differ");
}
