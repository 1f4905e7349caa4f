//! `raccoon-cli`: a command-line client of the Raccoon server, on the `raccoon-client` library.
//! The binary (`main.rs`) parses the command line; the commands are here, so that the
//! throughput bench (`benches/throughput.rs`) runs the same `load` and `ceiling` code.
//!
//! Subcommands, one module each: `send` (one batch, print the reply), `load` (many connections
//! for a bounded time, a latency and throughput report), `idle` (hold many WebSockets, RSS per
//! connection), `ceiling` (a bare rdkafka producer with the server's settings: the baseline), `handshakes`
//! (full TLS handshakes against a TLS port, or rustls alone in memory: its ceiling).
//! Shared by them: `workload.rs` (the events), `latency.rs` (HDR histograms), `procfs.rs` (CPU
//! and RSS of a process, the workspace's one reader of `/proc`), `limits.rs` (the open-file
//! limit), `tls.rs` (the TLS options). [`parse_args`] reads one command's options from strings, as the command line would.

pub mod ceiling;
pub mod handshakes;
pub mod idle;
mod latency;
mod limits;
pub mod load;
pub mod procfs;
pub mod send;
mod tls;
mod workload;

/// Parses `args` as the options of one command (`A`: [`load::LoadArgs`],
/// [`ceiling::CeilingArgs`], ...), with the command's defaults and checks of the command line;
/// `command` names it in error messages.
pub fn parse_args<A: clap::Args>(command: &str, args: &[&str]) -> Result<A, clap::Error> {
    #[derive(clap::Parser)]
    struct One<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    let argv = std::iter::once(command).chain(args.iter().copied());
    <One<A> as clap::Parser>::try_parse_from(argv).map(|one| one.args)
}

/// Writes a command's `--json` report to `path`, pretty-printed; on failure says so on stderr
/// and answers the exit status every command gives for it (3).
fn write_json_report(path: &std::path::Path, report: &serde_json::Value) -> Result<(), std::process::ExitCode> {
    std::fs::write(path, serde_json::to_string_pretty(report).unwrap_or_default() + "\n").map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        std::process::ExitCode::from(3)
    })
}
