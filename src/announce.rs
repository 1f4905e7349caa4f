//! The one machine-readable line the binary writes once it serves: its pid and bound addresses
//! as a JSON object on stdout and, with `--addresses-file`, in that file. Test harnesses and
//! scripts read it instead of the human log, so its shape is a contract (README.md, "Endpoints").

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

/// The line, without its newline: `{"raccoon":"listening","pid":…,"http":"…","grpc":"…",
/// "prometheus":"…"|null}`. A socket address never holds a character JSON would escape.
fn line(pid: u32, http: SocketAddr, grpc: SocketAddr, prometheus: Option<SocketAddr>) -> String {
    let prometheus = prometheus.map_or_else(|| "null".to_owned(), |addr| format!("\"{addr}\""));
    format!(r#"{{"raccoon":"listening","pid":{pid},"http":"{http}","grpc":"{grpc}","prometheus":{prometheus}}}"#)
}

/// Writes the line to stdout (flushed) and, if given, to `file`: written next to it under a
/// temporary name, then renamed over it, so that a reader sees the whole line or no file.
pub(crate) fn announce(
    http: SocketAddr,
    grpc: SocketAddr,
    prometheus: Option<SocketAddr>,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let text = line(std::process::id(), http, grpc, prometheus) + "\n";
    let mut stdout = std::io::stdout().lock();
    // A closed stdout is the operator's choice, not a reason to stop serving.
    if let Err(error) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        tracing::warn!(%error, "cannot write the addresses line to stdout");
    }
    if let Some(path) = file {
        let name = path.file_name().with_context(|| format!("--addresses-file {} names no file", path.display()))?;
        let mut temporary = name.to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = path.with_file_name(temporary);
        std::fs::write(&temporary, &text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .with_context(|| format!("cannot write --addresses-file {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_one_json_object_with_every_address() {
        let http: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let grpc: SocketAddr = "[::]:40002".parse().unwrap();
        let prometheus: SocketAddr = "127.0.0.1:40003".parse().unwrap();
        let text = line(123, http, grpc, Some(prometheus));
        assert_eq!(
            text,
            r#"{"raccoon":"listening","pid":123,"http":"127.0.0.1:40001","grpc":"[::]:40002","prometheus":"127.0.0.1:40003"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["grpc"], "[::]:40002");
        let without: serde_json::Value = serde_json::from_str(&line(1, http, grpc, None)).unwrap();
        assert!(without["prometheus"].is_null(), "{without}");
    }

    #[test]
    fn the_file_holds_the_line_and_no_temporary_is_left() {
        let dir = std::env::temp_dir().join(format!("raccoon-announce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("addresses.json");
        let http: SocketAddr = "127.0.0.1:1".parse().unwrap();
        announce(http, http, None, Some(&path)).unwrap();
        announce(http, http, None, Some(&path)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, line(std::process::id(), http, http, None) + "\n");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("addresses.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(announce(http, http, None, Some(&dir.join("missing/addresses.json"))).is_err());
    }
}
