//! Codec benchmarks: the per-frame work a shard does on its own core.
//!
//! * `decode`: our zero-copy `decode_batch` (payloads and types stay slices of the frame, types
//!   are checked against the topic pattern) next to prost's generated decoder for the same bytes,
//!   which is the baseline any protobuf server pays.
//! * `json`: `decode_json_batch` (serde over serde_json) on Raccoon-shaped JSON batches, next to
//!   the same serde visitors over sonic-rs (the alternative parser weighed for it) and, for scale,
//!   `decode_batch` on the protobuf encoding of the same events.
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
use raccoon_core::topic::TopicPattern;
use raccoon_protocol::batch::decode_batch;
use raccoon_protocol::json::{decode_json_batch, decode_json_batch_from};
use raccoon_protocol::pb;
use raccoon_protocol::reply::Reply;
use raccoon_shard::dedup::{Dedup, Verdict};

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

/// Standard padded base64, as Go's encoding/json writes `[]byte`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for k in 0..4 {
            out.push(if k <= chunk.len() { ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

/// The batch of [`frame`] as a Raccoon client sends it in a text frame: Go's encoding/json shape,
/// `event_bytes` as base64 or (the JS client) as an array of byte numbers.
fn json_body(events: usize, size: usize, byte_arrays: bool) -> Vec<u8> {
    let request = pb::SendEventRequest::decode(frame(events, size)).unwrap();
    let time = request.sent_time.unwrap();
    let events: Vec<_> = request
        .events
        .iter()
        .map(|e| {
            let bytes = if byte_arrays {
                serde_json::json!(e.event_bytes.to_vec())
            } else {
                serde_json::json!(base64(&e.event_bytes))
            };
            serde_json::json!({ "event_bytes": bytes, "type": e.r#type })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "req_guid": request.req_guid,
        "sent_time": { "seconds": time.seconds, "nanos": time.nanos },
        "events": events,
    }))
    .unwrap()
}

fn json(c: &mut Criterion) {
    let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
    let mut group = c.benchmark_group("json");
    for (events, size, byte_arrays) in [(20, 100, false), (20, 1024, false), (20, 100, true)] {
        let body = json_body(events, size, byte_arrays);
        let id = format!("{events}x{size}B{}", if byte_arrays { "-bytearray" } else { "" });
        // Both parsers must agree before they are timed.
        let mut de = sonic_rs::Deserializer::from_slice(&body);
        let via_sonic = decode_json_batch_from(&mut de, body.len(), &pattern).unwrap();
        de.end().unwrap();
        assert_eq!(decode_json_batch(&body, &pattern).unwrap(), via_sonic);
        assert_eq!(via_sonic, decode_batch(frame(events, size), &pattern).unwrap());

        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("serde_json", &id), &body, |b, body| {
            b.iter(|| decode_json_batch(black_box(body), &pattern).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("sonic_rs", &id), &body, |b, body| {
            b.iter(|| {
                let mut de = sonic_rs::Deserializer::from_slice(black_box(body));
                let batch = decode_json_batch_from(&mut de, body.len(), &pattern).unwrap();
                de.end().unwrap();
                batch
            })
        });
        if !byte_arrays {
            let frame = frame(events, size);
            group.bench_with_input(BenchmarkId::new("protobuf_decode_batch", &id), &frame, |b, frame| {
                b.iter(|| decode_batch(black_box(frame.clone()), &pattern).unwrap())
            });
        }
    }
    group.finish();
}

fn reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    let success = Reply::success("6f1c2a0e-8a3b-4c55-9d0e-2b7f3c1d4e5f".into());
    group.bench_function("encode_proto", |b| b.iter(|| black_box(&success).encode_proto(1_700_000_000)));
    // The baseline: the generated message and its `data` map, built per reply (the encoding
    // before encode_proto_into; the same bytes, see reply.rs's tests).
    group.bench_function("encode_proto_prost_message", |b| {
        b.iter(|| {
            let reply = black_box(&success);
            let data =
                std::collections::HashMap::from([("req_guid".to_owned(), reply.req_guid.clone().unwrap_or_default())]);
            raccoon_protocol::pb::SendEventResponse {
                status: reply.status as i32,
                code: reply.code as i32,
                sent_time: 1_700_000_000,
                reason: reply.reason.clone(),
                data,
            }
            .encode_to_vec()
        })
    });
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

criterion_group!(benches, decode, json, reply, topic, dedup);
criterion_main!(benches);
