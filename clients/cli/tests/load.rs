//! `raccoon-cli load` end to end: 4 connections for 2 s over each transport against the real
//! server (`EVENT_ACK=1`) and Kafka, asserting on the JSON report.

#[path = "../../rust/tests/common/mod.rs"]
mod common;
mod run;

use std::time::Duration;

use common::*;
use run::{cli_json, num};

fn assert_sane(report: &serde_json::Value, what: &str, stderr: &str) {
    assert!(num(report, "acked_events") > 0.0, "{what}: nothing acked: {report:#}\n{stderr}");
    assert_eq!(num(report, "errors"), 0.0, "{what}: errors: {report:#}\n{stderr}");
    assert_eq!(num(report, "total.sent_events"), num(report, "total.acked_events"), "{what}: {report:#}");
    let (p50, p90, p99, p999, max) = (
        num(report, "ack_latency.p50_ms"),
        num(report, "ack_latency.p90_ms"),
        num(report, "ack_latency.p99_ms"),
        num(report, "ack_latency.p999_ms"),
        num(report, "ack_latency.max_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "{what}: {report:#}");
    assert!(num(report, "ack_latency.count") > 0.0);
    // Given --server-pid: the server's CPU over the window and its memory.
    assert!(num(report, "server.cpu_seconds") > 0.0, "{what}: {report:#}");
    assert!(num(report, "server.rss_bytes") > 1_000_000.0, "{what}: {report:#}");
    assert!(num(report, "client.cpu_seconds") > 0.0, "{what}: {report:#}");
}

#[test]
fn load_over_every_transport_reports_acks_and_ordered_latencies() {
    let prefix = unique("cli-load");
    let server = start_server(&[("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s")), ("EVENT_ACK", "1")]);
    let pid = server.pid().to_string();
    let (http, grpc) = (server.addr.to_string(), server.grpc_addr.to_string());
    let cases = [
        ("ws", "proto", &http, "4"),
        ("ws", "json", &http, "2"),
        ("rest", "proto", &http, "4"),
        ("grpc", "proto", &grpc, "4"),
    ];
    for (transport, encoding, addr, in_flight) in cases {
        let what = format!("{transport}/{encoding}");
        let args = [
            "load",
            "--transport",
            transport,
            "-e",
            encoding,
            "-a",
            addr,
            "-c",
            "4",
            "-k",
            in_flight,
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--batch",
            "5",
            "--event-bytes",
            "100",
            "--types",
            "a,b",
            "--timeout",
            "10",
            "--server-pid",
            &pid,
        ];
        let (out, report) = cli_json(&args, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: exit {:?}\n{stderr}", out.status);
        assert_sane(&report, &what, &stderr);
        assert_eq!(report["transport"], transport);
        assert_eq!(report["connections_opened"], 4);
        assert_eq!(report["mode"], "closed");
        // Live progress once a second, on stderr.
        assert!(stderr.contains("measure] sent"), "{what}: {stderr}");
    }
    // Both types reached their topics.
    assert!(!consume(&format!("{prefix}-a"), 1, Duration::from_secs(30)).is_empty());
    assert!(!consume(&format!("{prefix}-b"), 1, Duration::from_secs(30)).is_empty());
}

#[test]
fn open_loop_holds_the_rate_and_refusals_are_counted_by_code() {
    let server = start_server(&[("EVENT_ACK", "1")]);
    let (pid, http) = (server.pid().to_string(), server.addr.to_string());
    // 2,000 events/s in batches of 10 over 4 connections: 50 batches/s each.
    let args = [
        "load",
        "-a",
        &http,
        "-c",
        "4",
        "--rate",
        "2000",
        "--batch",
        "10",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--source-ips",
        "2",
        "--server-pid",
        &pid,
    ];
    let (out, report) = cli_json(&args, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_sane(&report, "open loop", &stderr);
    assert_eq!(report["mode"], "open");
    let rate = num(&report, "sent_events_per_sec");
    assert!((1500.0..=2500.0).contains(&rate), "open loop sent {rate} events/s, asked 2000: {report:#}");

    // A type that cannot be a topic name: every batch is refused with CODE_BAD_REQUEST.
    let args = ["load", "-a", &http, "-c", "2", "--types", "no spaces!", "--duration", "1", "--warmup", "0"];
    let (out, report) = cli_json(&args, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(num(&report, "acked_events"), 0.0);
    assert!(num(&report, "errors") > 0.0);
    assert!(num(&report, "errors_by_kind.CODE_BAD_REQUEST") > 0.0, "{report:#}");
}
