//! The REST transport (`POST /api/v1/events`) and the rest of the HTTP port, driven by a
//! third-party HTTP client (ureq) and raw sockets, against the real binary and the real Kafka:
//! every row of Raccoon's REST response table, both ack modes, the limits and timeouts, CORS.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;
use raccoon_protocol::pb;

/// Status, `Content-Type`, the named header and the body of a POST.
struct Answer {
    status: u16,
    content_type: String,
    header: Option<String>,
    body: Vec<u8>,
}

fn post(server: &TestServer, content_type: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    post_reading(server, content_type, headers, body, "access-control-allow-origin")
}

fn post_reading(
    server: &TestServer,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
    header: &str,
) -> Answer {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let mut request = agent.post(&format!("http://{}/api/v1/events", server.addr));
    if let Some(ct) = content_type {
        request = request.set("Content-Type", ct);
    }
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let response = match request.send_bytes(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST failed: {e}"),
    };
    let status = response.status();
    let content_type = response.header("content-type").unwrap_or("").to_owned();
    let header = response.header(header).map(str::to_owned);
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    Answer { status, content_type, header, body }
}

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", answer.body))
}

fn proto(answer: &Answer) -> pb::SendEventResponse {
    pb::SendEventResponse::decode(&answer.body[..]).expect("a SendEventResponse")
}

fn proto_body(req: &pb::SendEventRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// Spec 5.2 cases 4 and 5: no Content-Type, empty or garbage body: JSON, code 2, no data,
/// Raccoon's reason; the request's Content-Type is echoed, as Raccoon's handler does (with none,
/// the body's own type), and the detail is in X-Raccoon-Error-Detail.
#[test]
fn a_body_without_content_type_is_refused_in_json() {
    let server = start_server(shared_kafka(), &[]);
    for body in [&b""[..], &[0x01][..], b"{}"] {
        for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
            let answer = post_reading(&server, content_type, &[], body, "x-raccoon-error-detail");
            assert_eq!(answer.status, 400);
            assert_eq!(answer.content_type, content_type.unwrap_or("application/json"));
            let detail = answer.header.clone().expect("a detail header");
            match content_type {
                None => assert!(detail.starts_with("no Content-Type"), "{detail}"),
                Some(given) => assert!(detail.contains(&format!("{given:?}")), "{detail}"),
            }
            let value = json(&answer);
            assert_eq!(value["status"], 2);
            assert_eq!(value["code"], 2);
            assert_eq!(value["reason"], "invalid content type");
            assert!(value.get("data").is_none(), "{value}");
            assert!((value["sent_time"].as_i64().unwrap() - now_secs()).abs() < 60);
        }
    }
}

/// Spec 5.3: protobuf success, garbage and empty bodies; parameters in the Content-Type.
fn proto_batches_are_published(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("rest-ack{event_ack}"));
    let server = start_server(
        kafka,
        &[("EVENT_ACK", event_ack), ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))],
    );
    let mut sent = Vec::new();
    for (i, content_type) in
        ["application/proto", "application/proto; charset=binary", "application/x-protobuf"].into_iter().enumerate()
    {
        let req = batch(&format!("rest-{i}"), &prefix, &["type_a", "type_b"], 3);
        let answer = post(&server, Some(content_type), &[("X-User-ID", "1234")], &proto_body(&req));
        assert_eq!(answer.status, 200, "{content_type}");
        assert_eq!(answer.content_type, content_type, "the request's Content-Type is echoed");
        assert_success(&proto(&answer), &req.req_guid);
        sent.push(req);
    }
    let garbage = post_reading(&server, Some("application/proto"), &[], &[0x01], "x-raccoon-error-detail");
    assert_eq!(garbage.status, 400);
    let reply = proto(&garbage);
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::BadRequest));
    assert_eq!(reply.reason, "deserialization failure", "Raccoon's reason, exactly");
    let detail = garbage.header.expect("the decoder's detail in a header");
    assert!(detail.starts_with("cannot deserialize request: "), "{detail}");
    assert!(reply.data.is_empty(), "no data on a body that did not decode: {reply:?}");

    let empty = post(&server, Some("application/proto"), &[], b"");
    assert_eq!(empty.status, 200);
    assert_success(&proto(&empty), "");

    let bad_type = batch("bad-type", &prefix, &["not valid"], 1);
    let answer = post(&server, Some("application/proto"), &[], &proto_body(&bad_type));
    assert_eq!(answer.status, 400);
    let reply = proto(&answer);
    assert_eq!(reply.code(), pb::Code::BadRequest);
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("bad-type"));
    assert!(reply.reason.contains("index 0"), "{}", reply.reason);

    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}

#[test]
fn proto_batches_are_published_when_acking_on_receipt() {
    proto_batches_are_published("0");
}

#[test]
fn proto_batches_are_published_when_acking_on_delivery() {
    proto_batches_are_published("1");
}

/// `EVENT_ACK=1` and no Kafka to take the batch: 503 with `Retry-After`, code 3, the reason
/// saying to retry, the req_guid (Raccoon: 500 after librdkafka's message timeout).
#[test]
fn a_batch_kafka_cannot_take_is_a_503_saying_when_to_retry() {
    let server = start_server("127.0.0.1:1", &[("EVENT_ACK", "1")]);
    server.wait_for_log("Kafka known down", |log| log.contains("every broker is down"));
    let req = batch("doomed", "x", &["a"], 2);
    let answer = post_reading(&server, Some("application/proto"), &[], &proto_body(&req), "retry-after");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header.as_deref(), Some("1"));
    let reply = proto(&answer);
    assert_eq!((reply.status(), reply.code()), (pb::Status::Error, pb::Code::InternalError));
    assert!(reply.reason.starts_with("cannot publish events: 2 of 2 events failed"), "{}", reply.reason);
    assert!(reply.reason.ends_with("(retry: none of the batch was published)"), "{}", reply.reason);
    assert_eq!(reply.data.get("req_guid").map(String::as_str), Some("doomed"));
}

/// Limits: a body over SERVER_HTTP_MAX_BODY_BYTES is 413 (by Content-Length and by chunks).
#[test]
fn oversized_bodies_are_413() {
    let server = start_server(shared_kafka(), &[("SERVER_HTTP_MAX_BODY_BYTES", "2048")]);
    let answer = post(&server, Some("application/proto"), &[], &vec![0u8; 4096]);
    assert_eq!(answer.status, 413);
    let reply = proto(&answer);
    assert_eq!(reply.code(), pb::Code::BadRequest);
    assert!(reply.reason.contains("exceeds max_body_bytes 2048"), "{}", reply.reason);
    // Chunked, so the size is known only while reading.
    let chunk = "a".repeat(1500);
    let request = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    let response = server.http(&request);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    // The server is fine for the next client.
    assert_eq!(server.get("/ping"), (200, "pong".to_owned()));
}

/// The HTTP port's other answers, keep-alive and pipelining, and hyper's own limits.
#[test]
fn http_port_routes_pipelines_and_limits_heads() {
    let server = start_server(shared_kafka(), &[("SERVER_HTTP_MAX_HEADER_BYTES", "4096")]);
    assert_eq!(server.get("/ping"), (200, "pong".to_owned()));
    assert_eq!(server.get("/nope").0, 404);
    let put = server.http("PUT /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(put.starts_with("HTTP/1.1 405 "), "{put}");
    assert!(put.to_ascii_lowercase().contains("allow: get, post"), "{put}");
    // Two batches pipelined on one connection: two answers, in order.
    let one = proto_body(&batch("pipe-1", "p", &["a"], 1));
    let two = proto_body(&batch("pipe-2", "p", &["a"], 1));
    let mut raw = Vec::new();
    for (body, close) in [(&one, ""), (&two, "Connection: close\r\n")] {
        raw.extend_from_slice(
            format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\n{close}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(body);
    }
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(&raw).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let first = text.find("pipe-1").expect("first reply");
    let second = text.find("pipe-2").expect("second reply");
    assert!(first < second, "replies out of order: {text}");
    // A head over the limit is 431.
    let big = format!("GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(5000));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(big.as_bytes()).unwrap();
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).unwrap_or(0);
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 431 "), "{:?}", &head[..n]);
    let garbage = server.http("\x16\x03\x01garbage\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
}

/// A half-sent request holds its connection no longer than SERVER_HTTP_HEADER_TIMEOUT_MS, an
/// idle one no longer than SERVER_HTTP_IDLE_TIMEOUT_MS, and neither slows anyone else.
#[test]
fn half_sent_and_idle_connections_are_closed_in_time() {
    let (header_timeout, idle_timeout) = (Duration::from_millis(700), Duration::from_millis(1500));
    let server = start_server(
        shared_kafka(),
        &[
            ("SERVER_HTTP_HEADER_TIMEOUT_MS", &header_timeout.as_millis().to_string()),
            ("SERVER_HTTP_IDLE_TIMEOUT_MS", &idle_timeout.as_millis().to_string()),
        ],
    );
    // Each deadline runs from an event on the server (the half head's first byte, the idle
    // connection's accept), which comes after the instant taken here before it: closes are
    // timed from there, so none can look early, and a late timer has `margin`, which keeps the
    // two deadlines apart (the half-sent head is not given the idle timeout).
    let margin = Duration::from_millis(750);
    let half_sent = Instant::now();
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let idle_connected = Instant::now();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    // Meanwhile everybody else is served at once: before either is closed. A server that made
    // them wait behind the half-sent head would close that first.
    for _ in 0..20 {
        assert_eq!(server.get("/ping").0, 200);
    }
    for (name, stream) in [("half-sent", &half), ("idle", &idle)] {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let still_open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(still_open, "the {name} connection was closed before 20 pings were answered");
        stream.set_nonblocking(false).unwrap();
    }
    let closed_at = |stream: &mut TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "expected the server to close, got {:?}", &buf[..n]);
        Instant::now()
    };
    let half_held = closed_at(&mut half) - half_sent;
    assert!(
        half_held >= header_timeout && half_held <= header_timeout + margin,
        "half-sent head held for {half_held:?} (header timeout {header_timeout:?})"
    );
    let idle_held = closed_at(&mut idle) - idle_connected;
    assert!(
        idle_held >= idle_timeout && idle_held <= idle_timeout + margin,
        "idle connection held for {idle_held:?} (idle timeout {idle_timeout:?})"
    );
}

/// CORS as Raccoon's integration test configures it (spec 5.2 cases 14-17); without
/// SERVER_CORS_ENABLED no CORS header is sent.
#[test]
fn cors_headers_and_preflights() {
    let server = start_server(
        shared_kafka(),
        &[
            ("SERVER_CORS_ENABLED", "true"),
            ("SERVER_CORS_ALLOWED_ORIGIN", "http://localhost:3000,http://localhost:8080"),
            ("SERVER_CORS_ALLOWED_METHODS", "GET,HEAD,POST,OPTIONS"),
            ("SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS", "60"),
            ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group"),
            // The upgrade below comes from an allowed origin that is not the server's own.
            ("SERVER_WEBSOCKET_CHECK_ORIGIN", "false"),
        ],
    );
    let body = proto_body(&batch("cors", "cors", &["a"], 1));
    let allowed = post(&server, Some("application/proto"), &[("Origin", "http://localhost:3000")], &body);
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header.as_deref(), Some("http://localhost:3000"));
    let denied = post(&server, Some("application/proto"), &[("Origin", "http://localhost:5050")], &body);
    assert_eq!(denied.status, 200, "a request from another origin is still processed");
    assert_eq!(denied.header, None);
    assert_success(&proto(&denied), "cors");

    let preflight = |headers: &str| {
        server.http(&format!(
            "OPTIONS /api/v1/events HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {headers}\r\nConnection: close\r\n\r\n"
        ))
    };
    let ok = preflight("content-type,x-user-id");
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    assert!(ok.to_ascii_lowercase().contains("access-control-allow-origin: http://localhost:3000"), "{ok}");
    assert!(ok.to_ascii_lowercase().contains("access-control-max-age: 60"), "{ok}");
    let forbidden = preflight("content-type,x-user-id,fake-header");
    assert!(forbidden.starts_with("HTTP/1.1 403 "), "{forbidden}");
    assert!(!forbidden.to_ascii_lowercase().contains("access-control-allow-origin"), "{forbidden}");
    // Every endpoint carries them, /ping included.
    let ping =
        server.http("GET /ping HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:8080\r\nConnection: close\r\n\r\n");
    assert!(ping.to_ascii_lowercase().contains("access-control-allow-origin: http://localhost:8080"), "{ping}");
    // The 101 of an upgrade carries them too.
    let (upgrade, mut ws) = upgrade_by_hand(server.addr, &[("Origin", "http://localhost:3000")], &[], &[]);
    assert!(upgrade.starts_with("HTTP/1.1 101 "), "{upgrade}");
    assert!(upgrade.to_ascii_lowercase().contains("access-control-allow-origin: http://localhost:3000"), "{upgrade}");
    ws.close();

    let plain = start_server(shared_kafka(), &[]);
    let answer = post(&plain, Some("application/proto"), &[("Origin", "http://localhost:3000")], &body);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header, None, "CORS is off by default");
}

/// A body cut off by the client (it half-closes after part of it): 500, code 3, Raccoon's
/// "deserialization failure", the detail in X-Raccoon-Error-Detail.
#[test]
fn a_body_cut_off_is_a_500() {
    let server = start_server(shared_kafka(), &[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
    let body = &out[text.find("\r\n\r\n").unwrap() + 4..];
    let reply = pb::SendEventResponse::decode(body).unwrap();
    assert_eq!(reply.code(), pb::Code::InternalError);
    assert_eq!(reply.reason, "deserialization failure");
    let head = text[..text.find("\r\n\r\n").unwrap()].to_ascii_lowercase();
    assert!(head.contains("\r\nx-raccoon-error-detail: cannot read the request body: "), "{head}");
}

/// Too many headers is 431; the WebSocket upgrade refuses a foreign Origin with 403 while
/// SERVER_WEBSOCKET_CHECK_ORIGIN is on (the default), accepts it when it is off, and accepts the
/// origins SERVER_WEBSOCKET_ALLOWED_ORIGINS lists.
#[test]
fn header_count_and_websocket_origin() {
    let server = start_server(shared_kafka(), &[("SERVER_HTTP_MAX_HEADERS", "8")]);
    let many: String = (0..12).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = server.http(&format!("GET /ping HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"));
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

    // The first bytes of the answer (a 101 keeps the connection open).
    let upgrade = |server: &TestServer, origin: &str| {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).unwrap_or(0);
        String::from_utf8_lossy(&head[..n]).into_owned()
    };
    let foreign = upgrade(&server, "http://evil.test");
    assert!(foreign.starts_with("HTTP/1.1 403 "), "{foreign}");
    let own = upgrade(&server, &format!("http://{}", server.addr));
    assert!(own.starts_with("HTTP/1.1 101 "), "{own}");
    let open = start_server(shared_kafka(), &[("SERVER_WEBSOCKET_CHECK_ORIGIN", "false")]);
    let foreign = upgrade(&open, "http://evil.test");
    assert!(foreign.starts_with("HTTP/1.1 101 "), "{foreign}");

    // A list of its own, with a wildcard; the whole origin counts.
    let listed = start_server(
        shared_kafka(),
        &[("SERVER_WEBSOCKET_ALLOWED_ORIGINS", "https://*.shop.test, http://localhost:3000")],
    );
    for (origin, status) in [
        ("https://www.shop.test", "101"),
        ("https://a.b.shop.test:443", "101"),
        ("http://localhost:3000", "101"),
        ("https://shop.test", "403"),
        ("http://www.shop.test", "403"),
        ("http://localhost:3001", "403"),
        ("http://evil.test", "403"),
    ] {
        let answer = upgrade(&listed, origin);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{origin}: {answer}");
    }
    let own = upgrade(&listed, &format!("http://{}", listed.addr));
    assert!(own.starts_with("HTTP/1.1 101 "), "the same origin still may: {own}");
}

/// SIGTERM ends the server promptly (exit 0) although HTTP keep-alive and gRPC connections are
/// open and idle: they are closed, not waited for until their idle deadline.
#[test]
fn shutdown_closes_idle_http_and_grpc_connections() {
    let mut server = start_server(shared_kafka(), &[("SERVER_HTTP_IDLE_TIMEOUT_MS", "60000")]);
    let mut http = TcpStream::connect(server.addr).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = http.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("pong"), "{:?}", &buf[..n]);
    let mut grpc = TcpStream::connect(server.grpc_addr).unwrap();
    grpc.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    grpc.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    // The server's first frame (its SETTINGS) says it is serving the connection.
    let mut head = [0u8; 9];
    grpc.read_exact(&mut head).expect("the server's first HTTP/2 frame");
    assert_eq!(head[3], 0x4, "a SETTINGS frame first: {head:?}");

    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(started.elapsed() < Duration::from_secs(8), "shutdown took {:?}", started.elapsed());
    // Both connections were closed by the server.
    assert_eq!(http.read(&mut buf).unwrap_or(0), 0);
    let mut rest = Vec::new();
    let _ = grpc.read_to_end(&mut rest);
}
