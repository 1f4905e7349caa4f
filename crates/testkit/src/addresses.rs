//! The server's addresses line: once it serves, `raccoon` prints one JSON object on stdout
//! (and with `--addresses-file PATH` writes it to PATH), e.g.
//! `{"raccoon":"listening","pid":123,"http":"127.0.0.1:40001","grpc":"127.0.0.1:40002","prometheus":null}`.
//! The binary's `announce` module writes it; this is its one reader. Harnesses learn the ports
//! here, never from the human log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the addresses line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The server's process id.
    pub pid: u32,
    /// The HTTP port's address (WebSocket, REST, `/ping`, health).
    pub http: SocketAddr,
    /// The gRPC port's address.
    pub grpc: SocketAddr,
    /// The Prometheus endpoint's address; `None` when it is off.
    pub prometheus: Option<SocketAddr>,
}

impl Addresses {
    /// Parses one line; the error says what is missing or malformed.
    pub fn parse(line: &str) -> Result<Addresses, String> {
        let json: serde_json::Value =
            serde_json::from_str(line.trim()).map_err(|e| format!("not a JSON object ({e}): {line:?}"))?;
        if json["raccoon"] != "listening" {
            return Err(format!("not the addresses line (no \"raccoon\":\"listening\"): {line:?}"));
        }
        let addr = |key: &str| -> Result<SocketAddr, String> {
            let text = json[key].as_str().ok_or_else(|| format!("no {key:?} address in {line:?}"))?;
            text.parse().map_err(|e| format!("{key:?} {text:?} is not host:port ({e})"))
        };
        let pid = json["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        Ok(Addresses {
            pid: pid.ok_or_else(|| format!("no \"pid\" in {line:?}"))?,
            http: addr("http")?,
            grpc: addr("grpc")?,
            prometheus: if json["prometheus"].is_null() { None } else { Some(addr("prometheus")?) },
        })
    }

    /// Polls for the file `--addresses-file` writes until it appears or `limit` passes. The server
    /// renames it into place whole, so a file that is there holds the whole line.
    pub fn wait_for_file(path: &Path, limit: Duration) -> Result<Addresses, String> {
        let deadline = Instant::now() + limit;
        loop {
            match std::fs::read_to_string(path) {
                Ok(text) => return Addresses::parse(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("{}: {e} (waited {limit:?})", path.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read() {
        let line = r#"{"raccoon":"listening","pid":123,"http":"127.0.0.1:40001","grpc":"[::]:40002","prometheus":"127.0.0.1:40003"}"#;
        let a = Addresses::parse(line).unwrap();
        assert_eq!(a.pid, 123);
        assert_eq!(a.http, "127.0.0.1:40001".parse().unwrap());
        assert_eq!(a.grpc, "[::]:40002".parse().unwrap());
        assert_eq!(a.prometheus, Some("127.0.0.1:40003".parse().unwrap()));
        let off = r#"{"raccoon":"listening","pid":1,"http":"127.0.0.1:1","grpc":"127.0.0.1:2","prometheus":null}"#;
        assert_eq!(Addresses::parse(off).unwrap().prometheus, None);
    }

    #[test]
    fn other_lines_are_refused_with_a_reason() {
        assert!(Addresses::parse("raccoon listening on 127.0.0.1:1").unwrap_err().contains("not a JSON object"));
        assert!(Addresses::parse(r#"{"pid":1}"#).unwrap_err().contains("not the addresses line"));
        let no_grpc = r#"{"raccoon":"listening","pid":1,"http":"127.0.0.1:1","prometheus":null}"#;
        assert!(Addresses::parse(no_grpc).unwrap_err().contains("\"grpc\""));
        let bad = r#"{"raccoon":"listening","pid":1,"http":"nowhere","grpc":"127.0.0.1:2","prometheus":null}"#;
        assert!(Addresses::parse(bad).unwrap_err().contains("not host:port"));
    }

    #[test]
    fn a_missing_file_is_waited_for_then_reported() {
        let path = std::env::temp_dir().join(format!("raccoon-testkit-none-{}", std::process::id()));
        let error = Addresses::wait_for_file(&path, Duration::from_millis(100)).unwrap_err();
        assert!(error.contains("waited"), "{error}");
    }
}
