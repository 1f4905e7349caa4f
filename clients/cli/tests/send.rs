//! `raccoon-cli send` end to end: the built binary against the real server and Kafka.

#[path = "../../rust/tests/common/mod.rs"]
mod common;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use common::*;

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raccoon-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raccoon-cli");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    // Every run has --timeout 10 and no retries, so it ends by itself.
    child.wait_with_output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {:?}, stderr {:?}", out.stdout, String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn send_over_every_transport_lands_in_kafka() {
    let prefix = unique("cli");
    let server = start_server(&[("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log"))]);
    let (http, grpc) = (server.addr.to_string(), server.grpc_addr.to_string());
    let cases = [
        ("ws", "proto", &http),
        ("ws", "json", &http),
        ("rest", "proto", &http),
        ("rest", "json", &http),
        ("grpc", "proto", &grpc),
    ];
    for (transport, encoding, addr) in cases {
        let event_type = format!("{transport}_{encoding}");
        let data = format!("hello over {transport} {encoding}");
        let out = cli(
            &[
                "send",
                "--transport",
                transport,
                "-e",
                encoding,
                "-a",
                addr,
                "-t",
                &event_type,
                "-d",
                &data,
                "--json",
                "--timeout",
                "10",
            ],
            None,
        );
        assert!(out.status.success(), "{transport}/{encoding}: {}", String::from_utf8_lossy(&out.stderr));
        let reply = json_of(&out);
        assert_eq!(reply["ok"], true);
        assert_eq!(reply["response"]["code"], 1);
        assert_eq!(reply["response"]["data"]["req_guid"], reply["req_guid"]);
        assert_topic_holds(&format!("{prefix}-{event_type}-log"), &[data.into_bytes()]);
    }
    // Stdin lines, a JSON event, a file, the readable output and a supplied req_guid.
    let file = std::env::temp_dir().join(format!("{}.bin", unique("cli-file")));
    std::fs::write(&file, [0u8, 1, 2, 255]).unwrap();
    let out =
        cli(&["send", "-a", &http, "-t", "stdin", "--req-guid", "cli-guid", "--timeout", "10"], Some("one\n\ntwo\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sent 2 event(s)") && text.contains("req_guid cli-guid: STATUS_SUCCESS, CODE_OK (1)"),
        "{text}"
    );
    assert_topic_holds(&format!("{prefix}-stdin-log"), &[b"one".to_vec(), b"two".to_vec()]);
    let args = ["send", "--transport", "rest", "-a", &http, "-t", "mixed", "--json-data", r#"{ "a": 1 }"#, "-f"];
    let out = cli(&[&args[..], &[file.to_str().unwrap(), "--timeout", "10"]].concat(), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_topic_holds(&format!("{prefix}-mixed-log"), &[br#"{"a":1}"#.to_vec(), vec![0, 1, 2, 255]]);
    let _ = std::fs::remove_file(file);
}

#[test]
fn error_replies_and_transport_failures_exit_non_zero() {
    let server = start_server(&[]);
    let http = server.addr.to_string();
    let out = cli(&["send", "-a", &http, "-t", "no spaces!", "-d", "x", "--json", "--timeout", "10"], None);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["code"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: the server refused batch"));

    let nobody = format!("127.0.0.1:{}", free_port());
    for transport in ["ws", "rest", "grpc"] {
        let out = cli(&["send", "--transport", transport, "-a", &nobody, "-d", "x", "--timeout", "5"], None);
        assert_eq!(out.status.code(), Some(3), "{transport}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{transport}");
    }
    let out = cli(&["send", "--transport", "grpc", "-e", "json", "-d", "x"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["send", "-a", &http], Some("\n\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no events"));
}
