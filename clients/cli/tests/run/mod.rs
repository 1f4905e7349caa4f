//! Running the built `raccoon-cli` with a deadline and reading its `--json` report.

#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `raccoon-cli args`, killing it if it outlives `limit`.
pub fn cli(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raccoon-cli"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raccoon-cli");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("raccoon-cli {args:?} ran over {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// [`cli`] with `--json FILE` added; returns the output and the JSON report from the file.
pub fn cli_json(args: &[&str], limit: Duration) -> (Output, serde_json::Value) {
    let file = std::env::temp_dir().join(format!("{}.json", super::common::unique("raccoon-cli-report")));
    let path = file.to_str().expect("a UTF-8 temp dir");
    let out = cli(&[args, &["--json", path]].concat(), limit);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{}", String::from_utf8_lossy(&out.stderr)));
    let _ = std::fs::remove_file(&file);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out, json)
}

/// The figure at `path` (`a.b`) as a number.
pub fn num(json: &serde_json::Value, path: &str) -> f64 {
    path.split('.').fold(json, |v, k| &v[k]).as_f64().unwrap_or_else(|| panic!("no number at {path} in {json:#}"))
}
