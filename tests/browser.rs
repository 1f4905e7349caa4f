//! Raccoon from a web page, in a real headless Chromium (Debian's, driven by playwright-core:
//! `tests/browser/drive.mjs`), against the real binary and the real Kafka, in both ack modes:
//! README's "From a browser" page exactly as written there; REST with CORS in JSON and protobuf,
//! and a refused body whose detail header the page can read; a WebSocket from an allowed origin
//! that names itself by subprotocol, with a JSON text frame and a binary frame; two more sockets
//! at once that name nothing (anonymous identities); and a page on a refused origin, whose socket
//! never opens. Every event is read back from Kafka.
//!
//! Chromium and playwright-core come from `scripts/browser.sh install`, which `.ci/run` runs as a
//! step of its own (failing CI when it cannot) and the test runs again (doing nothing when they
//! are there). Where they cannot be had, the test says it is skipped, unless `CI` is set. The
//! pages are served from 127.0.0.1 by the test itself.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;
use raccoon_protocol::pb;
use serde_json::Value;

/// The longest the browser run may take (it bounds each of its own waits to 15 s).
const DRIVER_LIMIT: Duration = Duration::from_secs(120);

/// The Chromium to drive, once `scripts/browser.sh install` has it and playwright-core; `None`
/// (outside CI) when they cannot be had here.
fn browser_tools() -> Option<String> {
    let output = Command::new("bash")
        .arg(project_dir().join("scripts/browser.sh"))
        .arg("install")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/browser.sh");
    if output.status.success() {
        return Some(String::from_utf8(output.stdout).unwrap().trim().to_owned());
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have Chromium and playwright-core (scripts/browser.sh install)");
    eprintln!("browser test skipped: scripts/browser.sh install could not provide Chromium and playwright-core");
    None
}

/// README's "From a browser" page, as written between its markers.
fn readme_page() -> String {
    let readme = std::fs::read_to_string(project_dir().join("README.md")).unwrap();
    let section = readme.split("<!-- browser-page:start -->").nth(1).expect("README has the browser page").to_owned();
    let section = section.split("<!-- browser-page:end -->").next().unwrap();
    let html = section.split("```html\n").nth(1).expect("the page is an html block");
    html.split("\n```").next().unwrap().to_owned()
}

/// Serves `/` (README's page, pointed at `server`) and `/blank` on `listener` from a thread that
/// ends with the test process.
fn serve_pages(listener: TcpListener, server: &str) {
    let readme = readme_page();
    assert!(readme.contains("'localhost:8080'"), "the page names the default port: {readme}");
    let readme = readme.replace("'localhost:8080'", &format!("'{server}'"));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let _ = answer_page(stream, &readme);
        }
    });
}

fn answer_page(mut stream: TcpStream, readme: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, body) = match request_line.split_whitespace().nth(1) {
        Some("/") => ("200 OK", readme),
        Some("/blank") => ("200 OK", "<!doctype html><title>blank</title>"),
        _ => ("404 Not Found", ""),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Runs the driver; what the browser saw.
fn drive(chromium: &str, env: &[(&str, String)]) -> Value {
    let dir = project_dir().join("tests/browser");
    let mut child = Command::new("node")
        .arg("drive.mjs")
        .current_dir(&dir)
        .env("CHROMIUM", chromium)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node tests/browser/drive.mjs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DRIVER_LIMIT {
            let _ = child.kill();
            panic!("the browser run took more than {DRIVER_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A reply the page read as a text frame or a REST body: JSON in Raccoon's shape.
fn json_reply(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON reply ({e}): {text}"))
}

fn assert_json_success(reply: &Value, req_guid: &str) {
    assert_eq!((reply["status"].as_i64(), reply["code"].as_i64()), (Some(1), Some(1)), "{reply}");
    assert_eq!(reply["data"]["req_guid"], req_guid, "{reply}");
}

/// Bytes the page handed over as an array of numbers.
fn byte_array(value: &Value) -> Vec<u8> {
    value.as_array().unwrap_or_else(|| panic!("not bytes: {value}")).iter().map(|b| b.as_u64().unwrap() as u8).collect()
}

fn sorted(mut items: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    items.sort();
    items
}

fn a_web_page_publishes(event_ack: &str) {
    let Some(chromium) = browser_tools() else { return };
    let kafka = shared_kafka();
    let prefix = unique(&format!("browser-ack{event_ack}"));
    // The pages' origins: the allowed one is the page server as localhost, the refused one the
    // same server as 127.0.0.1.
    let page_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let pages = page_listener.local_addr().unwrap().port();
    let allowed_origin = format!("http://localhost:{pages}");
    let server = start_server(
        kafka,
        &[
            // Chromium may resolve localhost to ::1 or to 127.0.0.1: both families.
            ("SERVER_BIND_ADDRESS", ""),
            ("EVENT_ACK", event_ack),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("SERVER_CORS_ENABLED", "true"),
            ("SERVER_CORS_ALLOWED_ORIGIN", &allowed_origin),
            ("SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED", "true"),
            ("SERVER_WEBSOCKET_CONN_ID_ANONYMOUS", "true"),
            // The connection spans (who each socket is) are at DEBUG.
            ("LOG_LEVEL", "info,raccoon_shard=debug"),
        ],
    );
    let server_name = format!("localhost:{}", server.addr.port());
    serve_pages(page_listener, &server_name);
    let seen = drive(
        &chromium,
        &[
            ("SERVER", server_name),
            ("README_PAGE", format!("http://localhost:{pages}/")),
            ("ALLOWED_PAGE", format!("http://localhost:{pages}/blank")),
            ("REFUSED_PAGE", format!("http://127.0.0.1:{pages}/blank")),
            ("PREFIX", prefix.clone()),
        ],
    );

    // README's page: both answers are successes.
    let lines: Vec<&str> = seen["readme"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for transport in ["WebSocket: ", "REST: "] {
        let line = lines.iter().find(|l| l.starts_with(transport)).unwrap_or_else(|| panic!("{transport}{lines:?}"));
        let reply = json_reply(&line[transport.len()..]);
        assert_eq!((reply["status"].as_i64(), reply["code"].as_i64()), (Some(1), Some(1)), "{line}");
    }

    let allowed = &seen["allowed"];
    let rest_json = &allowed["restJson"];
    assert_eq!(rest_json["status"], 200, "{rest_json}");
    assert_json_success(
        &json_reply(&String::from_utf8(byte_array(&rest_json["body"])).unwrap()),
        &format!("{prefix}-rest-json"),
    );
    let rest_proto = &allowed["restProto"];
    assert_eq!(
        (rest_proto["status"].as_i64(), rest_proto["contentType"].as_str()),
        (Some(200), Some("application/proto"))
    );
    let reply = pb::SendEventResponse::decode(&byte_array(&rest_proto["body"])[..]).unwrap();
    assert_success(&reply, &format!("{prefix}-rest-proto"));
    let rest_bad = &allowed["restBad"];
    assert_eq!(rest_bad["status"], 400, "{rest_bad}");
    let reply = json_reply(&String::from_utf8(byte_array(&rest_bad["body"])).unwrap());
    assert_eq!(reply["reason"], "deserialization failure", "{reply}");
    let detail = rest_bad["detail"].as_str().expect("CORS exposes the detail header to the page");
    assert!(detail.starts_with("cannot deserialize request: "), "{detail}");

    assert_eq!(allowed["protocol"], "raccoon", "the 101 names the fixed protocol");
    assert_json_success(
        &json_reply(allowed["wsJson"]["text"].as_str().expect("a text frame")),
        &format!("{prefix}-ws-json"),
    );
    let binary = pb::SendEventResponse::decode(&byte_array(&allowed["wsBinary"]["binary"])[..]).unwrap();
    assert_success(&binary, &format!("{prefix}-ws-binary"));
    for (i, tab) in allowed["tabs"].as_array().unwrap().iter().enumerate() {
        assert_json_success(&json_reply(tab["text"].as_str().expect("a text frame")), &format!("{prefix}-tab-{i}"));
    }
    assert_eq!(allowed["stillOpen"], serde_json::json!([true, true, true]), "no socket was refused");

    let refused = &seen["refused"];
    assert_eq!(refused["opened"], false, "a page on another origin cannot open a socket: {refused}");
    assert_eq!((refused["closeCode"].as_i64(), refused["timedOut"].as_bool()), (Some(1006), Some(false)), "{refused}");

    let topic = |t: &str| format!("{prefix}-{t}-log");
    let limit = Duration::from_secs(30);
    let expect = |items: &[&str]| sorted(items.iter().map(|s| s.as_bytes().to_vec()).collect());
    assert_eq!(sorted(consume(kafka, &topic("rest"), 2, limit)), expect(&["rest json", "rest proto"]));
    assert_eq!(sorted(consume(kafka, &topic("ws"), 2, limit)), expect(&["ws json", "ws binary"]));
    assert_eq!(sorted(consume(kafka, &topic("tab"), 2, limit)), expect(&["tab 0", "tab 1"]));
    assert_eq!(
        sorted(consume(kafka, &topic("page"), 2, limit)),
        expect(&["hello over REST", "hello over a WebSocket"]),
        "README's page's events"
    );
    // The socket named by its subprotocol.
    server.assert_logged("user=page user@1 group=web");
}

#[test]
fn a_web_page_publishes_when_acking_on_receipt() {
    a_web_page_publishes("0");
}

#[test]
fn a_web_page_publishes_when_acking_on_delivery() {
    a_web_page_publishes("1");
}
