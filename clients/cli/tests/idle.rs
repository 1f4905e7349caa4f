//! `raccoon-cli idle` end to end: WebSockets held against the real server, also after a burst.

#[path = "../../rust/tests/common/mod.rs"]
mod common;
mod run;

use std::time::Duration;

use common::*;
use run::{cli, cli_json, num};

#[test]
fn idle_connections_stay_alive_and_rss_per_connection_is_reported() {
    // Server pings every 500 ms: the client must answer them to stay alive over the 3 s hold.
    let server = start_server(&[
        ("SERVER_WEBSOCKET_PING_INTERVAL_MS", "500"),
        ("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "1500"),
    ]);
    let (pid, http) = (server.pid().to_string(), server.addr.to_string());
    let args = [
        "idle",
        "-a",
        &http,
        "-c",
        "50",
        "--hold",
        "3",
        "--ping-interval",
        "30",
        "--source-ips",
        "3",
        "--server-pid",
        &pid,
    ];
    let (out, report) = cli_json(&args, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", server.log());
    assert_eq!(num(&report, "opened"), 50.0, "{report:#}");
    assert_eq!(num(&report, "alive_at_end"), 50.0, "{report:#}");
    assert_eq!(num(&report, "min_alive"), 50.0, "{report:#}");
    assert!(num(&report, "server_rss_held_bytes") > 0.0);
    // A figure, positive or not (the allocator may reuse freed memory); present and finite.
    assert!(num(&report, "server_rss_per_connection_bytes").is_finite(), "{report:#}");
    assert!(num(&report, "open_file_limit") >= 50.0);

    // Nobody listening: every connection fails, exit 1, the failures reported.
    let nobody = format!("127.0.0.1:{}", free_port());
    let (out, report) =
        cli_json(&["idle", "-a", &nobody, "-c", "3", "--hold", "0.5", "--timeout", "5"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(num(&report, "failed_to_open"), 3.0, "{report:#}");
}

#[test]
fn a_burst_before_the_hold_is_answered_and_lands_in_kafka() {
    let prefix = unique("idle-burst");
    let pattern = format!("{prefix}-%s");
    let server = start_server(&[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern)]);
    let (pid, http) = (server.pid().to_string(), server.addr.to_string());
    let args = ["idle", "-a", &http, "-c", "10", "--burst", "4", "--hold", "1", "--server-pid", &pid];
    let (out, report) = cli_json(&args, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", server.log());
    assert_eq!(num(&report, "burst"), 4.0, "{report:#}");
    assert_eq!(num(&report, "burst_batches_failed"), 0.0, "{report:#}");
    assert_eq!(num(&report, "alive_at_end"), 10.0, "{report:#}");
    assert!(stderr.contains("burst: 40 batch(es) of 4 per connection answered"), "{stderr}");
    // Every event of the burst (one per batch, 100 zero bytes, type "idle") is in Kafka, once.
    let records = consume(&format!("{prefix}-idle"), 40, Duration::from_secs(30));
    assert_eq!(records.len(), 40, "records in Kafka");
    assert!(records.iter().all(|r| r == &vec![0u8; 100]), "a record is not the burst's event");

    // More than the flag allows is a usage error.
    let out = cli(&["idle", "-a", &http, "-c", "1", "--burst", "1025"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--burst 1025 is more than 1024"));
    let out = cli(&["idle", "-a", &http, "-c", "2000", "--burst", "1000"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2000000 batches at once, more than 1000000"));
}
