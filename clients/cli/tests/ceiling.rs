//! `raccoon-cli ceiling` end to end: the bare producer for 2 s against the real Kafka.

#[path = "../../rust/tests/common/mod.rs"]
mod common;
mod run;

use std::time::Duration;

use common::*;
use run::{cli, cli_json, num};

#[test]
fn ceiling_delivers_with_the_servers_settings_and_overrides() {
    let kafka = shared_kafka();
    let prefix = unique("cli-ceiling");
    let pattern = format!("{prefix}-%s");
    let args = [
        "ceiling",
        "-b",
        kafka,
        "--topic-pattern",
        &pattern,
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--batch",
        "20",
        "--event-bytes",
        "100",
        "-X",
        "linger.ms=2",
    ];
    let (out, report) = cli_json(&args, Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(num(&report, "delivered_events") > 0.0, "{report:#}");
    assert_eq!(num(&report, "errors"), 0.0, "{report:#}");
    assert!(num(&report, "events_per_sec") > 0.0);
    let (p50, p99, max) = (
        num(&report, "delivery_latency.p50_ms"),
        num(&report, "delivery_latency.p99_ms"),
        num(&report, "delivery_latency.max_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{report:#}");
    assert!(num(&report, "client.cpu_us_per_event") > 0.0, "{report:#}");
    // The server's defaults, with the override on top.
    assert_eq!(report["properties"]["acks"], "-1");
    assert_eq!(report["properties"]["linger.ms"], "2");
    assert_eq!(report["properties"]["bootstrap.servers"], kafka);
    assert_eq!(report["flushed"], true);
    assert!(!consume(&format!("{prefix}-page"), 1, Duration::from_secs(30)).is_empty());

    let out = cli(&["ceiling", "-X", "nonsense", "--duration", "1"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not key=value"));
}
