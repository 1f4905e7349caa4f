//! `raccoon-cli`: the command line. Each subcommand is a module of the library (`lib.rs`),
//! which the throughput bench calls too.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raccoon_cli::{ceiling, handshakes, idle, load, send};

/// Command-line client for the Raccoon clickstream server.
#[derive(Parser, Debug)]
#[command(name = "raccoon-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send one batch of events and print the server's reply.
    ///
    /// Exit status: 0 on success, 1 when the server answered with an error or refused the
    /// connection, 2 on a usage error, 3 when the server could not be reached or did not answer.
    Send(send::SendArgs),
    /// Load the server: N connections, closed loop (K batches in flight each) or open loop (a
    /// target rate), for a bounded time; live progress on stderr, a report on stdout.
    ///
    /// Exit status: 0 when every batch was acknowledged, 1 on any error or no ack, 2 on a usage
    /// error, 3 when the runtime or the JSON file failed.
    Load(load::LoadArgs),
    /// Open and hold N WebSocket connections; report how many stay alive and the server's RSS
    /// per connection.
    ///
    /// Exit status: 0 when every connection opened and stayed alive, 1 otherwise, 2 on a usage error.
    Idle(idle::IdleArgs),
    /// A bare rdkafka producer with the server's librdkafka settings into the same broker: the
    /// ceiling every `load` result is compared with.
    ///
    /// Exit status: 0 when events were delivered and none failed, 1 otherwise, 2 on a usage error.
    Ceiling(ceiling::CeilingArgs),
    /// Full TLS handshakes against a TLS port for a bounded time: handshakes per second, their
    /// latency and the server's CPU per handshake; `--bare`: rustls alone, in memory, the ceiling.
    ///
    /// Exit status: 0 when it measured, 1 when it could not, 2 on a usage error.
    Handshakes(handshakes::HandshakesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RACCOON_CLI_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let command = match cli.command {
        Command::Send(args) => args,
        Command::Load(args) => return load::run(args),
        Command::Idle(args) => return idle::run(args),
        Command::Ceiling(args) => return ceiling::run(args),
        Command::Handshakes(args) => return handshakes::run(args),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(send::run(command))
}
