//! Metrics against the real server and broker: what `/metrics` and StatsD report matches what
//! was sent and what Kafka holds.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use raccoon_protocol::pb;

const GROUP: &str = "metrics-group";

/// Per event type: (events, bytes) in `batches`.
fn per_type(batches: &[pb::SendEventRequest]) -> HashMap<String, (u64, u64)> {
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for e in batches.iter().flat_map(|b| &b.events) {
        let entry = out.entry(e.r#type.clone()).or_default();
        entry.0 += 1;
        entry.1 += e.event_bytes.len() as u64;
    }
    out
}

#[test]
fn prometheus_counts_match_what_was_sent_and_what_kafka_holds() {
    let kafka = shared_kafka();
    let prefix = unique("metrics-prom");
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "1"),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
            ("METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS", "1000"),
            ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-Group"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut client = server.connect(&[("X-User-ID", "m"), ("X-Group", GROUP)]);
    let batches: Vec<_> = (0..5).map(|i| batch(&format!("m{i}"), &prefix, &["click", "view"], 6 + i)).collect();
    for b in &batches {
        client.send_batch(b);
        assert_success(&client.reply(), &b.req_guid);
    }
    client.send_raw(tungstenite::Message::Binary(bytes::Bytes::from_static(b"\xff\xff not protobuf")));
    assert_eq!(client.reply().code(), pb::Code::BadRequest);
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &batches));

    let g = format!("conn_group=\"{GROUP}\"");
    let mut want = vec![
        (format!("batches_read_total{{status=\"success\",reason=\"NA\",{g}}}"), 5.0),
        (format!("batches_read_total{{status=\"failed\",reason=\"serde\",{g}}}"), 1.0),
        (format!("user_connection_success_total{{{g}}}"), 1.0),
        (format!("connections_count_current{{{g}}}"), 1.0),
        ("event_rtt_ms_count".to_owned(), 5.0),
        ("kafka_delivery_latency_milliseconds_count".to_owned(), 5.0),
        (format!("event_processing_duration_milliseconds_count{{{g}}}"), 5.0),
        (format!("server_processing_latency_milliseconds_count{{{g}}}"), 5.0),
        ("kafka_producebulk_tt_ms_count".to_owned(), 5.0),
        ("batch_idle_in_channel_milliseconds_count{worker=\"worker-0\"}".to_owned(), 5.0),
    ];
    for (ty, (events, bytes)) in per_type(&batches) {
        let topic = format!("{prefix}-{ty}-log");
        want.push((format!("events_rx_total{{{g},event_type=\"{ty}\"}}"), events as f64));
        want.push((format!("events_rx_bytes_total{{{g},event_type=\"{ty}\"}}"), bytes as f64));
        // Every event Kafka holds (checked above, byte for byte) was counted as delivered.
        want.push((
            format!("kafka_messages_delivered_total{{topic=\"{topic}\",{g},event_type=\"{ty}\"}}"),
            events as f64,
        ));
    }
    let text = scrape_until(&server, &want, Duration::from_secs(15));
    assert!(!text.contains("kafka_messages_undelivered_total"), "{text}");
    assert!(text.contains("# TYPE event_rtt_ms histogram"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Every shard's rings were found and have moved (each shard runs at least its one-second
    // metrics timer through them). One shard per CPU here.
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
    for shard in 0..shards {
        let submitted = sample(&text, &format!("io_uring_submissions_total{{shard=\"{shard}\"}}"));
        let completed = sample(&text, &format!("io_uring_completions_total{{shard=\"{shard}\"}}"));
        assert!(submitted.is_some_and(|n| n > 0.0), "shard {shard}: {submitted:?} submissions\n{text}");
        assert!(completed.is_some_and(|n| n > 0.0), "shard {shard}: {completed:?} completions\n{text}");
    }
    for series in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "shard_busy_ratio{shard=\"0\"}",
        "shard_timer_lag_milliseconds{shard=\"0\"}",
        "shard_inbox_depth{shard=\"0\"}",
        "publisher_queue_depth{worker=\"worker-0\"}",
    ] {
        assert!(sample(&text, series).is_some(), "no {series} in:\n{text}");
    }

    // Percentiles appear once a window (1 s here) has closed with values in it.
    let quantile = "latency_quantile_milliseconds{metric=\"event_rtt_ms\",quantile=\"0.99\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&get_from(server.prometheus_addr(), "/metrics").1, quantile).is_none() {
        assert!(Instant::now() < deadline, "no {quantile}");
        // Keep values flowing so a window closes with some.
        let b = batch(&format!("q{}", Instant::now().elapsed().as_nanos()), &prefix, &["click"], 1);
        client.send_batch(&b);
        assert_success(&client.reply(), &b.req_guid);
        std::thread::sleep(Duration::from_millis(300));
    }

    // Closing the connection: the gauge drops, the session is measured, the end is counted.
    client.close();
    scrape_until(
        &server,
        &[
            (format!("connections_count_current{{{g}}}"), 0.0),
            (format!("user_session_duration_milliseconds_count{{{g}}}"), 1.0),
            (format!("batches_read_total{{status=\"failed\",reason=\"closeerror\",{g}}}"), 1.0),
        ],
        Duration::from_secs(10),
    );

    // Other paths on the metrics port are not found.
    assert_eq!(get_from(server.prometheus_addr(), "/other").0, 404);
}

/// One StatsD line: `name,k=v,...:value|type[|@rate]`, checked for shape.
fn parse_statsd(line: &str) -> (String, f64, String, f64) {
    let (bucket, rest) = line.rsplit_once(':').unwrap_or_else(|| panic!("no ':' in {line:?}"));
    let mut parts = rest.split('|');
    let value: f64 = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
    let kind = parts.next().unwrap_or_else(|| panic!("no type in {line:?}")).to_owned();
    assert!(["c", "g", "ms"].contains(&kind.as_str()), "{line:?}");
    let rate = match parts.next() {
        Some(r) => r.strip_prefix('@').unwrap().parse().unwrap(),
        None => 1.0,
    };
    let mut tags = bucket.split(',');
    let name = tags.next().unwrap();
    assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{line:?}");
    for tag in tags {
        let (k, v) = tag.split_once('=').unwrap_or_else(|| panic!("tag without '=' in {line:?}"));
        assert!(!k.is_empty() && !v.is_empty(), "empty tag in {line:?}");
    }
    (bucket.to_owned(), value, kind, rate)
}

#[test]
fn statsd_packets_carry_raccoon_names_and_clean_tags() {
    let kafka = shared_kafka();
    let prefix = unique("metrics-statsd");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let address = udp.local_addr().unwrap().to_string();
    let server = start_server(
        kafka,
        &[
            ("EVENT_ACK", "1"),
            ("METRIC_STATSD_ENABLED", "true"),
            ("METRIC_STATSD_ADDRESS", &address),
            ("METRIC_STATSD_FLUSH_PERIOD_MS", "200"),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
        ],
    );
    let mut client = server.connect(&[("X-User-ID", "s")]);
    let batches: Vec<_> = (0..3).map(|i| batch(&format!("s{i}"), &prefix, &["click"], 4)).collect();
    for b in &batches {
        client.send_batch(b);
        assert_success(&client.reply(), &b.req_guid);
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &batches));

    let g = "conn_group=--default--";
    let rx = format!("events_rx_total,{g},event_type=click");
    let delivered = format!("kafka_messages_delivered_total,topic={prefix}-click-log,{g},event_type=click");
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut lines_seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 65536];
    let done = |sums: &HashMap<String, f64>| {
        sums.get(&rx) == Some(&12.0) && sums.get(&delivered) == Some(&12.0) && sums.get("event_rtt_ms") == Some(&3.0)
    };
    while !done(&sums) {
        assert!(Instant::now() < deadline, "after 20 s: {sums:#?}\n{}", server.log());
        let Ok(n) = udp.recv(&mut buf) else { continue };
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            lines_seen += 1;
            let (bucket, value, kind, rate) = parse_statsd(line);
            match kind.as_str() {
                // Counters are increases: they add up. Timings count values (1/rate each).
                "c" => *sums.entry(bucket).or_default() += value,
                "ms" => *sums.entry(bucket).or_default() += (1.0 / rate).round(),
                _ => {
                    sums.insert(bucket, value);
                }
            }
        }
    }
    assert!(lines_seen > 0);
    assert_eq!(sums.get(&format!("user_connection_success_total,{g}")), Some(&1.0), "{sums:#?}");
    assert_eq!(sums.get(&format!("connections_count_current,{g}")), Some(&1.0), "{sums:#?}");
    assert_eq!(sums.get(&format!("batches_read_total,status=success,reason=NA,{g}")), Some(&3.0), "{sums:#?}");
}

#[test]
fn readiness_and_liveness_on_the_http_port() {
    let kafka = shared_kafka();
    let server = start_server(kafka, &[]);
    assert_eq!(server.get("/health/live"), (200, "live".to_owned()));
    assert_eq!(server.wait_for_status("/health/ready", 200, Duration::from_secs(10)), "ready");
    assert_eq!(server.get("/ping"), (200, "pong".to_owned()));
    assert_eq!(
        server.http("POST /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").split_whitespace().nth(1),
        Some("405")
    );
}

#[test]
fn pongs_are_answered_and_a_pong_that_cannot_be_written_is_counted() {
    let kafka = shared_kafka();
    let group = "pong-group";
    let server = start_server(
        kafka,
        &[
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
            ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-Group"),
        ],
    );
    // A ping is answered with a pong carrying its payload.
    let mut live = server.connect(&[("X-User-ID", "p"), ("X-Group", group)]);
    live.send_raw(tungstenite::Message::Ping(bytes::Bytes::from_static(b"are you there")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no pong within 10 s");
        match live.ws.read().expect("read pong") {
            tungstenite::Message::Pong(payload) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            other => assert!(other.is_ping(), "unexpected {other:?}"),
        }
    }
    live.close();

    // A client that pings and resets the connection at once: the server reads the ping, and
    // its pong meets a reset socket. (A few tries, in case a reset overtakes its ping.)
    let series = format!("server_pong_failure_total{{conn_group=\"{group}\"}}");
    let (mut failures, mut resets) = (None, 0);
    for attempt in 0..5 {
        resets += 1;
        let mut client = server.connect(&[("X-User-ID", &format!("r{attempt}")), ("X-Group", group)]);
        client.send_raw(tungstenite::Message::Ping(bytes::Bytes::from_static(b"bye")));
        socket2::SockRef::from(client.ws.get_ref()).set_linger(Some(Duration::ZERO)).unwrap();
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            failures = sample(&get_from(server.prometheus_addr(), "/metrics").1, &series);
            if failures.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if failures.is_some() {
            break;
        }
    }
    let failures = failures.unwrap_or_else(|| panic!("no {series} after 5 resets:\n{}", server.log()));
    // At most one per reset connection: the live connection's pong, written before its clean
    // close, is not counted.
    assert!((1.0..=f64::from(resets)).contains(&failures), "{failures} pong failures after {resets} resets");
}

/// Scrapes are served concurrently: clients that connect to the Prometheus port and send
/// nothing, or half a request, delay no scrape, and are closed after the header deadline.
#[test]
fn idle_scrapers_delay_no_scrape() {
    use std::io::{Read, Write};
    let server =
        start_server(shared_kafka(), &[("METRIC_PROMETHEUS_ENABLED", "true"), ("METRIC_PROMETHEUS_PORT", "0")]);
    let addr = server.prometheus_addr();
    let idle = std::net::TcpStream::connect(addr).unwrap();
    let mut half = std::net::TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, text) = get_from(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(text.contains("# EOF"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1), "a scrape took {:?}", started.elapsed());
    }
    assert_eq!(get_from(addr, "/nope").0, 404);
    // The half-sent request is dropped at the 5 s header deadline.
    half.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(half.read(&mut buf).unwrap_or(0), 0, "expected a close");
    assert!(started.elapsed() < Duration::from_secs(8), "held for {:?}", started.elapsed());
    drop(idle);
}
