//! Codec benchmarks: the per-frame work a shard does on its own core.
//!
//! * `decode`: our zero-copy `decode_batch` (payloads and types stay slices of the frame, types
//!   are checked against the topic pattern) next to prost's generated decoder for the same bytes,
//!   which is the baseline any protobuf server pays.
//! * `reply`: encoding the per-batch `SendEventResponse` as protobuf and as JSON.
//! * `topic`: rendering a topic name from the pattern into a reused buffer (once per event on the
//!   publisher thread).
//! * `dedup`: per-connection batch dedup, per batch: a new `req_guid` checked and recorded in a
//!   full window, and a duplicate found. Baseline: a set of owned guid strings (an allocation
//!   per batch), the way Raccoon keeps them.
//!
//! Run: `cargo bench --bench codec`. Record results in `perf-results/` as its README describes.

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prost::Message;
use raccoon::dedup::{Dedup, Verdict};
use raccoon::protocol::batch::decode_batch;
use raccoon::protocol::pb;
use raccoon::protocol::reply::Reply;
use raccoon::topic::TopicPattern;

/// A batch shaped like mobile clickstream traffic: `events` events of `size` bytes over a few types.
fn frame(events: usize, size: usize) -> Bytes {
    let types = ["page", "click", "impression", "session"];
    let request = pb::SendEventRequest {
        req_guid: "6f1c2a0e-8a3b-4c55-9d0e-2b7f3c1d4e5f".into(),
        sent_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        events: (0..events)
            .map(|i| pb::Event {
                event_bytes: Bytes::from(vec![(i % 251) as u8; size]),
                r#type: types[i % types.len()].into(),
            })
            .collect(),
    };
    Bytes::from(request.encode_to_vec())
}

fn decode(c: &mut Criterion) {
    let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
    let mut group = c.benchmark_group("decode");
    for (events, size) in [(1, 256), (20, 256), (200, 256), (20, 4096)] {
        let frame = frame(events, size);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        let id = format!("{events}x{size}B");
        group.bench_with_input(BenchmarkId::new("decode_batch", &id), &frame, |b, frame| {
            b.iter(|| decode_batch(black_box(frame.clone()), &pattern).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("prost_generated", &id), &frame, |b, frame| {
            b.iter(|| pb::SendEventRequest::decode(black_box(frame.clone())).unwrap())
        });
    }
    group.finish();
}

fn reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    let success = Reply::success("6f1c2a0e-8a3b-4c55-9d0e-2b7f3c1d4e5f".into());
    group.bench_function("encode_proto", |b| b.iter(|| black_box(&success).encode_proto(1_700_000_000)));
    group.bench_function("encode_json", |b| b.iter(|| black_box(&success).encode_json(1_700_000_000)));
    group.finish();
}

fn topic(c: &mut Criterion) {
    let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
    let mut out = String::with_capacity(64);
    c.bench_function("topic/render_into", |b| {
        b.iter(|| {
            let rendered = pattern.render_into(black_box(b"impression"), &mut out);
            black_box(rendered.len())
        })
    });
}

fn dedup(c: &mut Criterion) {
    const WINDOW: usize = 256;
    let guids: Vec<String> = (0..1u64 << 16).map(|i| format!("6f1c2a0e-8a3b-4c55-9d0e-{i:012x}")).collect();
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1));

    let mut window = Dedup::new(WINDOW);
    let mut next = 0;
    group.bench_function("new_guid", |b| {
        b.iter(|| {
            let guid = &guids[next % guids.len()];
            next += 1;
            match window.check(black_box(guid)) {
                Verdict::Publish(key) => window.published(key, true),
                other => panic!("{guid} is not new: {other:?}"),
            }
        })
    });
    let mut window = Dedup::new(WINDOW);
    for guid in &guids[..WINDOW] {
        if let Verdict::Publish(key) = window.check(guid) {
            window.published(key, true);
        }
    }
    let mut i = 0;
    group.bench_function("duplicate", |b| {
        b.iter(|| {
            i += 1;
            assert_eq!(window.check(black_box(&guids[i % WINDOW])), Verdict::AnsweredBefore);
        })
    });

    // Baseline, Raccoon's way: every guid owned in a set (std's SipHash), never evicted; here
    // over 65,536 distinct guids, so after the first pass each batch costs a clone, a lookup
    // and a free.
    let mut set = std::collections::HashSet::new();
    let mut next = 0;
    group.bench_function("string_set", |b| {
        b.iter(|| {
            let guid = &guids[next % guids.len()];
            next += 1;
            black_box(set.insert(black_box(guid).clone()))
        })
    });
    group.finish();
}

criterion_group!(benches, decode, reply, topic, dedup);
criterion_main!(benches);
