//! Connection identity across shards, the server-wide connection limit and keep-alive (spec
//! 1.3, 1.6, 1.7, 3.5; Raccoon's integration cases 11-13 and the limit, duplicate and release
//! cases of 5.3), against the real binary with two shards.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use raccoon_protocol::pb;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// Attempts per refusal case: enough that `SO_REUSEPORT` puts some on each shard (the test
/// checks in the log that it did).
const MAX_ATTEMPTS: usize = 24;

/// The shards (`shard=N` in the connection span) that logged `message`.
fn shards_that_logged(server: &TestServer, message: &str) -> Vec<String> {
    let mut shards: Vec<String> = server
        .log()
        .lines()
        .filter(|line| line.contains(message))
        .filter_map(|line| line.split("shard=").nth(1)?.split([' ', '}']).next().map(str::to_owned))
        .collect();
    shards.sort();
    shards.dedup();
    shards
}

/// Expects Raccoon's refusal: one binary reply with `code` and `reason` and no data, then close
/// 1008 with `close_reason`, then the end of the connection, all within a few seconds.
fn expect_refusal(client: &mut Client, code: pb::Code, reason: &str, close_reason: &str) {
    let started = Instant::now();
    let reply = client.reply();
    assert_eq!(reply.status(), pb::Status::Error, "{reply:?}");
    assert_eq!(reply.code(), code, "{reply:?}");
    assert_eq!(reply.reason, reason);
    assert!(reply.data.is_empty(), "{reply:?}");
    match client.next_within(Duration::from_secs(5)) {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert_eq!(frame.reason.as_str(), close_reason);
        }
        other => panic!("expected close 1008 {close_reason:?}, got {other:?}"),
    }
    // The server closes the TCP connection after its close frame.
    client.set_read_timeout(Duration::from_secs(5));
    loop {
        match client.ws.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("after the close: {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                panic!("the server did not close the connection within 5 s")
            }
            // Closed (or reset, or the client's close reply met a closed socket).
            Err(_) => break,
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "refusal took {:?}", started.elapsed());
}

/// An empty batch is answered at once with success: proof that a connection was admitted.
fn probe(client: &mut Client, guid: &str) {
    client.send_batch(&pb::SendEventRequest { req_guid: guid.into(), ..Default::default() });
    assert_success(&client.reply(), guid);
}

fn failures(group: &str, reason: &str) -> String {
    format!("user_connection_failure_total{{conn_group=\"{group}\",reason=\"{reason}\"}}")
}

fn server_with(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("SERVER_SHARDS", "2"),
        ("METRIC_PROMETHEUS_ENABLED", "true"),
        ("METRIC_PROMETHEUS_PORT", "0"),
        // Refusals of duplicates are logged at DEBUG; the test reads which shard refused.
        ("LOG_LEVEL", "info,raccoon_shard::websocket=debug"),
    ];
    env.extend_from_slice(extra);
    start_server(shared_kafka(), &env)
}

#[test]
fn max_conn_is_counted_across_shards() {
    let server = server_with(&[("SERVER_WEBSOCKET_MAX_CONN", "1")]);
    let mut first = server.connect(&[("X-User-ID", "first")]);
    probe(&mut first, "first");
    let mut attempts = 0;
    while attempts < MAX_ATTEMPTS && (attempts < 4 || shards_that_logged(&server, "connection refused").len() < 2) {
        attempts += 1;
        let mut other = server.connect(&[("X-User-ID", &format!("other-{attempts}"))]);
        expect_refusal(
            &mut other,
            pb::Code::MaxConnectionLimitReached,
            "max connection reached",
            "Max connection reached",
        );
    }
    assert_eq!(shards_that_logged(&server, "connection refused"), ["0", "1"], "both shards refused");
    scrape_until(&server, &[(failures("--default--", "serverlimit"), attempts as f64)], Duration::from_secs(10));

    // The slot is free as soon as the first connection's close handshake is done.
    first.close();
    let mut next = server.connect(&[("X-User-ID", "next")]);
    probe(&mut next, "next");
}

#[test]
fn a_duplicate_identifier_gets_code_5_on_every_shard() {
    let server = server_with(&[("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group")]);
    let mut a = server.connect(&[("X-User-ID", "1234")]);
    probe(&mut a, "a");
    let mut viewer = server.connect(&[("X-User-ID", "1234"), ("X-User-Group", "viewer")]);
    probe(&mut viewer, "viewer");
    let mut attempts = 0;
    while attempts < MAX_ATTEMPTS && (attempts < 4 || shards_that_logged(&server, "duplicated connection").len() < 2) {
        attempts += 1;
        let mut b = server.connect(&[("X-User-ID", "1234")]);
        expect_refusal(
            &mut b,
            pb::Code::MaxUserLimitReached,
            "duplicated connection: [--default--] 1234,",
            "duplicate connection: 1234",
        );
        // An empty group header means the default group.
        let mut b = server.connect(&[("X-User-ID", "1234"), ("X-User-Group", "")]);
        expect_refusal(
            &mut b,
            pb::Code::MaxUserLimitReached,
            "duplicated connection: [--default--] 1234,",
            "duplicate connection: 1234",
        );
        let mut v = server.connect(&[("X-User-ID", "1234"), ("X-User-Group", "viewer")]);
        expect_refusal(
            &mut v,
            pb::Code::MaxUserLimitReached,
            "duplicated connection: [viewer] 1234,",
            "duplicate connection: 1234",
        );
    }
    assert_eq!(shards_that_logged(&server, "duplicated connection"), ["0", "1"], "both shards refused");
    // The refusals did not disturb the connections holding the identifiers.
    probe(&mut a, "a-still");
    probe(&mut viewer, "viewer-still");
    scrape_until(
        &server,
        &[(failures("--default--", "exists"), (2 * attempts) as f64), (failures("viewer", "exists"), attempts as f64)],
        Duration::from_secs(10),
    );
}

#[test]
fn the_same_id_in_two_groups_stays_connected() {
    let server = server_with(&[("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group")]);
    let mut clients: Vec<Client> = ["viewer", "editor"]
        .iter()
        .map(|group| server.connect(&[("X-User-ID", "1234"), ("X-User-Group", group)]))
        .collect();
    let started = Instant::now();
    for client in &mut clients {
        let left = Duration::from_secs(3).saturating_sub(started.elapsed());
        // Nothing but pings (skipped) for the rest of the 3 s.
        assert_eq!(client.next_within(left.max(Duration::from_millis(1500))), None);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        probe(client, &format!("group-{i}"));
    }
}

#[test]
fn an_identifier_is_released_when_its_connection_closes() {
    let kafka = shared_kafka();
    let prefix = unique("release");
    let pattern = format!("{prefix}-%s-log");
    let server = server_with(&[("EVENT_ACK", "1"), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern)]);
    let mut sent = Vec::new();
    // Several rounds, so that the reconnect lands on the other shard too.
    for round in 0..6 {
        let mut a = server.connect(&[("X-User-ID", "again")]);
        let b = batch(&format!("round-{round}"), &prefix, &["x"], 2);
        a.send_batch(&b);
        assert_success(&a.reply(), &b.req_guid);
        sent.push(b);
        a.close();
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}

#[test]
fn connections_without_an_id_header_share_the_empty_id() {
    let server = server_with(&[]);
    let mut first = server.connect(&[]);
    probe(&mut first, "anonymous");
    let mut second = server.connect(&[]);
    expect_refusal(
        &mut second,
        pb::Code::MaxUserLimitReached,
        "duplicated connection: [--default--] ,",
        "duplicate connection: ",
    );
    scrape_until(&server, &[(failures("--default--", "exists"), 1.0)], Duration::from_secs(10));
}

/// Upgrades a raw TCP connection by hand and returns it; nothing on it ever answers a ping.
fn raw_upgrade(server: &TestServer, id: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-User-ID: {id}\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    stream
}

/// With pings every `ping` and a pong wait `pong_wait`: a client that answers stays for 6 s (and
/// at least 6 s / `ping` - 1 pings) and is answered; one that never answers, and one that stops
/// answering, are dropped in time.
fn keep_alive(ping: Duration, pong_wait: Duration) {
    let server = server_with(&[
        ("SERVER_WEBSOCKET_PING_INTERVAL_MS", &ping.as_millis().to_string()),
        ("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", &pong_wait.as_millis().to_string()),
    ]);
    let margin = Duration::from_millis(800);
    std::thread::scope(|scope| {
        // Answers every ping: tungstenite does so while the client keeps reading.
        let answering = scope.spawn(|| {
            let mut client = server.connect(&[("X-User-ID", "answers")]);
            client.set_read_timeout(Duration::from_millis(200));
            let started = Instant::now();
            let mut pings = 0;
            // At least 6 s, and until it answered a ping every interval but one of them. Each
            // ping is due an interval after the one before was sent, so on a busy machine the
            // server's late timers make them come later, not fewer: up to twice the 6 s for them.
            let expected = (6_000 / ping.as_millis() - 1) as usize;
            while started.elapsed() < Duration::from_secs(6) || pings < expected {
                assert!(started.elapsed() < Duration::from_secs(12), "only {pings} pings in 12 s at {ping:?}");
                match client.ws.read() {
                    Ok(Message::Ping(payload)) => {
                        assert_eq!(&payload[..], b"--ping--");
                        pings += 1;
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(error) => panic!("dropped after {:?} and {pings} pings: {error}", started.elapsed()),
                }
            }
            client.set_read_timeout(REPLY_LIMIT);
            probe(&mut client, "still-here");
            pings
        });
        // Never answers: upgraded by hand, never read. Its keep-alive clock starts as the server
        // writes the 101: after the request was sent, and about when the 101 is read here. The
        // first bounds the drop from below, exactly; the second from above, however late this
        // thread got to read the 101.
        let raw = scope.spawn(|| {
            let requested = Instant::now();
            let stream = raw_upgrade(&server, "raw-silent");
            let upgraded = Instant::now();
            let gone = hangup_within(&stream, Duration::from_secs(15));
            gone.map(|at| (at - requested, at - upgraded))
        });
        // Answers pings for a while, then stops reading.
        let stops = scope.spawn(|| {
            let mut client = server.connect(&[("X-User-ID", "stops")]);
            client.set_read_timeout(Duration::from_millis(50));
            let started = Instant::now();
            // When the last read returned: any ping after it goes unanswered.
            let mut last_read = started;
            while last_read - started < 2 * pong_wait {
                let read = client.ws.read();
                last_read = Instant::now();
                match read {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(error) => panic!("dropped while answering pings: {error}"),
                }
            }
            // Make sure the last pong is on the wire, then go quiet.
            client.ws.flush().unwrap();
            hangup_within(client.ws.get_ref(), Duration::from_secs(15)).map(|at| at - last_read)
        });

        let pings = answering.join().unwrap();
        let (raw, stops) = (raw.join().unwrap(), stops.join().unwrap());
        eprintln!("ping {ping:?}, pong wait {pong_wait:?}: {pings} pings answered; raw client dropped {raw:?} after its request and its 101, the one that stopped reading {stops:?} after it stopped");
        // A silent client's first ping comes one interval after the upgrade; pong_wait later it
        // goes: not before (counted from the request, sent before the upgrade), and not much
        // later (counted from the moment the 101 was read).
        let (since_request, since_upgrade) = raw.expect("the raw client was never dropped");
        assert!(
            since_request >= ping + pong_wait && since_upgrade <= ping + pong_wait + margin,
            "raw client dropped {since_request:?} after its request, {since_upgrade:?} after its 101"
        );
        // It stopped reading when its last read returned: the first ping after that goes
        // unanswered, and pong_wait later the client goes (50 ms allowed for the gap between the
        // read's end and the clock read after it); at most ping + pong_wait later.
        let stops = stops.expect("the client that stopped answering was never dropped");
        assert!(
            stops >= pong_wait.saturating_sub(Duration::from_millis(50)) && stops <= ping + pong_wait + margin,
            "client that stopped reading dropped {stops:?} later"
        );
    });
}

#[test]
fn keep_alive_with_ping_interval_equal_to_pong_wait() {
    keep_alive(Duration::from_millis(1000), Duration::from_millis(1000));
}

#[test]
fn keep_alive_with_pings_more_often_than_the_pong_wait() {
    keep_alive(Duration::from_millis(500), Duration::from_millis(1500));
}

#[test]
fn a_connection_paused_by_backpressure_is_not_dropped_as_silent() {
    let kafka = shared_kafka();
    let prefix = unique("paused");
    let pattern = format!("{prefix}-%s-log");
    // One batch in flight at a time, each held 2.5 s by librdkafka: while the second waits for
    // the first's reply the server reads nothing from the client, pongs included, for longer
    // than pong wait + ping interval (1 s).
    let server = server_with(&[
        ("EVENT_ACK", "1"),
        ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &pattern),
        ("SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES", "1"),
        ("PUBLISHER_KAFKA_CLIENT_LINGER_MS", "2500"),
        ("SERVER_WEBSOCKET_PING_INTERVAL_MS", "500"),
        ("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "500"),
    ]);
    let mut client = server.connect(&[("X-User-ID", "paused")]);
    let batches: Vec<_> = (0..3).map(|i| batch(&format!("paused-{i}"), &prefix, &["p"], 1)).collect();
    let started = Instant::now();
    for b in &batches {
        client.send_batch(b);
    }
    for b in &batches {
        assert_success(&client.reply(), &b.req_guid);
    }
    assert!(started.elapsed() >= Duration::from_secs(5), "the batches were not held: {:?}", started.elapsed());
    probe(&mut client, "after-pause");
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &batches));
}

/// For browsers, which cannot set headers on a WebSocket: the id and group from query
/// parameters (URL-decoded), or from offered subprotocols (the 101 answers `raccoon`, never the
/// value), each only when enabled; the header still comes first. The identifiers they name are
/// Raccoon's: a second connection with the same one gets code 5.
#[test]
fn browsers_name_their_connection_in_the_query_or_the_subprotocols() {
    let server = server_with(&[
        ("SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM", "user_id"),
        ("SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM", "group"),
        ("SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED", "true"),
        ("LOG_LEVEL", "info,raccoon_shard=debug"),
    ]);
    let (mut by_query, answer) = Client::connect_to(server.addr, "/api/v1/events?user_id=J%C3%BCrgen+1&group=web", &[]);
    assert!(!answer.contains_key("sec-websocket-protocol"), "nothing offered, nothing answered");
    probe(&mut by_query, "query");
    let (mut again, _) = Client::connect_to(server.addr, "/api/v1/events?group=web&user_id=J%C3%BCrgen%201", &[]);
    expect_refusal(
        &mut again,
        pb::Code::MaxUserLimitReached,
        "duplicated connection: [web] Jürgen 1,",
        "duplicate connection: Jürgen 1",
    );

    let offered = [("Sec-WebSocket-Protocol", "raccoon, raccoon.id.u%40shop, raccoon.group.web")];
    let (mut by_protocol, answer) = Client::connect_to(server.addr, "/api/v1/events", &offered);
    assert_eq!(answer.get("sec-websocket-protocol").map(|v| v.to_str().unwrap()), Some("raccoon"));
    probe(&mut by_protocol, "protocol");
    let (mut again, _) = Client::connect_to(server.addr, "/api/v1/events?user_id=u%40shop&group=web", &[]);
    expect_refusal(
        &mut again,
        pb::Code::MaxUserLimitReached,
        "duplicated connection: [web] u@shop,",
        "duplicate connection: u@shop",
    );

    // An upgrade hyper reads (sent in pieces) is answered the same.
    let split = [("Sec-WebSocket-Protocol", "raccoon"), ("Sec-WebSocket-Protocol", "raccoon.id.split")];
    let (head, mut by_hyper) = upgrade_by_hand(server.addr, &split, &[30], &[]);
    assert!(head.to_ascii_lowercase().contains("\r\nsec-websocket-protocol: raccoon\r\n"), "{head}");
    probe(&mut by_hyper, "split");

    // The header wins over both.
    let (mut by_header, _) =
        Client::connect_to(server.addr, "/api/v1/events?user_id=u%40shop&group=web", &[("X-User-ID", "h1")]);
    probe(&mut by_header, "header");
    server.assert_logged("user=h1 group=web");

    // Off by default: the query and the offered protocols are ignored (none is answered, as
    // Raccoon's), and the connection has Raccoon's empty id.
    let plain = server_with(&[]);
    let (head, mut first) = upgrade_by_hand(plain.addr, &offered, &[], &[]);
    assert!(
        head.starts_with("HTTP/1.1 101 ") && !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    probe(&mut first, "plain");
    let (mut second, _) = Client::connect_to(plain.addr, "/api/v1/events?user_id=b", &[]);
    expect_refusal(
        &mut second,
        pb::Code::MaxUserLimitReached,
        "duplicated connection: [--default--] ,",
        "duplicate connection: ",
    );
}

/// With `SERVER_WEBSOCKET_CONN_ID_ANONYMOUS`, connections that name no id each get their own
/// identity (so several browser tabs connect at once), and still count against the limit.
#[test]
fn anonymous_connections_each_get_an_identity_and_count_against_the_limit() {
    let server = server_with(&[
        ("SERVER_WEBSOCKET_CONN_ID_ANONYMOUS", "true"),
        ("SERVER_WEBSOCKET_MAX_CONN", "3"),
        ("LOG_LEVEL", "info,raccoon_shard=debug"),
    ]);
    let mut anonymous: Vec<Client> = (0..2).map(|_| server.connect(&[])).collect();
    for (i, client) in anonymous.iter_mut().enumerate() {
        probe(client, &format!("anonymous-{i}"));
    }
    let mut named = server.connect(&[("X-User-ID", "named")]);
    probe(&mut named, "named");
    let mut over = server.connect(&[]);
    expect_refusal(&mut over, pb::Code::MaxConnectionLimitReached, "max connection reached", "Max connection reached");
    let anonymous_names = |log: &str| -> std::collections::BTreeSet<String> {
        let names = log.split("user=").skip(1).filter_map(|rest| rest.split([' ', ',', '}']).next());
        names.filter(|u| u.starts_with("anon-")).map(str::to_owned).collect()
    };
    server.wait_for_log("two anonymous names, each its own", |log| anonymous_names(log).len() >= 2);
    // A freed slot is taken by the next anonymous connection.
    anonymous.pop().unwrap().close();
    let mut next = connect_until_admitted(&server);
    probe(&mut next, "next");
}

/// Connects without an id until the server admits the connection (a slot frees as soon as the
/// server has the client's close, which may be just after the client saw the close).
fn connect_until_admitted(server: &TestServer) -> Client {
    for _ in 0..50 {
        let mut client = server.connect(&[]);
        client.send_batch(&pb::SendEventRequest { req_guid: "try".into(), ..Default::default() });
        let reply = client.reply();
        if reply.code() == pb::Code::Ok {
            return client;
        }
        assert_eq!(reply.code(), pb::Code::MaxConnectionLimitReached, "{reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no slot freed within a second");
}
