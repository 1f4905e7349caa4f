//! What metrics cost per batch, on against off, on the paths that record them:
//!
//! * `shard`: what a shard records for one decoded batch (batch count, events and bytes per
//!   type, client-clock latency) and for its reply (receive-to-ack latency);
//! * `delivery`: what a poll thread records per event (delivered, by topic, group and type) and
//!   per batch (receive-to-Kafka latency).
//!
//! "off" is the same code with no exporter configured (what `METRIC_*_ENABLED=false` gives).
//! For scale, the same run measures `decode_batch` on the same frame: the work the shard does
//! anyway. Run: `cargo bench --bench metrics`.

#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use prost::Message;
use raccoon_core::topic::TopicPattern;
use raccoon_metrics::{count_events, tags, LocalMetrics, MetricId, Registry};
use raccoon_protocol::batch::{decode_batch, DecodedBatch};
use raccoon_protocol::pb;

fn frame(events: usize) -> Bytes {
    let types = ["page", "click", "impression", "session"];
    let request = pb::SendEventRequest {
        req_guid: "6f1c2a0e-8a3b-4c55-9d0e-2b7f3c1d4e5f".into(),
        sent_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        // Runs of one type, as clients batch them.
        events: (0..events)
            .map(|i| pb::Event { event_bytes: Bytes::from(vec![7u8; 256]), r#type: types[i * 4 / events].into() })
            .collect(),
    };
    Bytes::from(request.encode_to_vec())
}

fn shard_side(m: &mut LocalMetrics, batch: &DecodedBatch) {
    let (group, ok, na) = (m.client_tag("mobile"), m.tag("success"), m.tag("NA"));
    m.add(MetricId::BatchesRead, tags([ok, na, group]), 1);
    count_events(m, group, batch.events.iter().map(|e| (&e.event_type[..], e.payload.len())));
    m.record(MetricId::EventProcessing, tags([group]), Duration::from_micros(1500));
    m.record(MetricId::EventRtt, tags([]), Duration::from_micros(900));
}

fn delivery_side(m: &mut LocalMetrics, pattern: &TopicPattern, batch: &DecodedBatch, topic: &mut String) {
    for event in &batch.events {
        let topic = pattern.render_into(&event.event_type, topic);
        let (t, g) = (m.client_tag(topic), m.client_tag("mobile"));
        let ty = m.client_tag(pattern.event_type_of(topic));
        m.add(MetricId::Delivered, tags([t, g, ty]), 1);
    }
    m.record(MetricId::DeliveryLatency, tags([]), Duration::from_micros(2500));
    let group = m.client_tag("mobile");
    m.record(MetricId::ServerProcessing, tags([group]), Duration::from_micros(120));
}

fn bench(c: &mut Criterion) {
    let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
    let registry = Registry::new(1000, Duration::from_secs(10));
    for events in [20usize, 200] {
        let frame = frame(events);
        let batch = decode_batch(frame.clone(), &pattern).unwrap();
        let mut group = c.benchmark_group(format!("metrics/{events}x256B"));
        group.bench_function("decode_batch (for scale)", |b| {
            b.iter(|| decode_batch(black_box(frame.clone()), &pattern).unwrap())
        });
        for (label, mut m) in [("on", registry.local()), ("off", LocalMetrics::disabled())] {
            group
                .bench_function(BenchmarkId::new("shard", label), |b| b.iter(|| shard_side(&mut m, black_box(&batch))));
            let mut topic = String::new();
            group.bench_function(BenchmarkId::new("delivery", label), |b| {
                b.iter(|| delivery_side(&mut m, &pattern, black_box(&batch), &mut topic))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
