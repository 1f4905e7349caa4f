//! The addresses line against the real binary: on stdout and in `--addresses-file`, the same
//! line, naming this process and addresses that answer.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn stdout_and_the_addresses_file_name_the_bound_ports() {
    let dir = std::env::temp_dir().join(unique("raccoon-addresses"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("addresses.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_raccoon"))
        .arg("--addresses-file")
        .arg(&file)
        .env_clear()
        .env("SERVER_BIND_ADDRESS", "127.0.0.1")
        .env("SERVER_WEBSOCKET_PORT", "0")
        .env("SERVER_GRPC_PORT", "0")
        .env("METRIC_PROMETHEUS_ENABLED", "true")
        .env("METRIC_PROMETHEUS_PORT", "0")
        .env("PUBLISHER_TYPE", "log")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn raccoon");
    let from_file = Addresses::wait_for_file(&file, Duration::from_secs(30));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let addresses = from_file.unwrap();
    assert_eq!(text, line, "the file holds the stdout line");
    assert!(line.ends_with("}\n") && line.matches('\n').count() == 1, "one line: {line:?}");
    assert_eq!(Addresses::parse(&line).unwrap(), addresses);
    assert_eq!(names, [std::ffi::OsString::from("addresses.json")], "no temporary file is left");
    assert_eq!(addresses.pid, child.id());
    assert!(addresses.http.port() != 0 && addresses.grpc.port() != 0);
    assert!(addresses.prometheus.is_some_and(|p| p.port() != 0), "{line}");
}

#[test]
fn every_address_of_the_line_answers_and_prometheus_is_null_when_off() {
    let server = start_server(NO_BROKER, &[("PUBLISHER_TYPE", "log")]);
    assert_eq!(server.addresses.prometheus, None);
    assert_eq!(server.get("/ping"), (200, "pong".to_owned()));
    assert!(TcpStream::connect(server.grpc_addr).is_ok(), "gRPC port {}", server.grpc_addr);

    let server = start_server(
        NO_BROKER,
        &[("PUBLISHER_TYPE", "log"), ("METRIC_PROMETHEUS_ENABLED", "true"), ("METRIC_PROMETHEUS_PORT", "0")],
    );
    let (status, text) = get_from(server.prometheus_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    assert_eq!(server.addresses.pid, server.pid());
}

/// Where no broker listens: the log publisher needs none.
const NO_BROKER: &str = "127.0.0.1:1";
