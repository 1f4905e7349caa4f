//! `raccoon-cli`: a command-line client of the Raccoon server, on the `raccoon-client` library.
//!
//! `send` sends one batch over WebSocket, REST or gRPC and prints the reply. The subcommand
//! lives in `send.rs`; this file parses the command line and maps outcomes to exit codes.

mod send;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RACCOON_CLI_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match cli.command {
        Command::Send(args) => runtime.block_on(send::run(args)),
    }
}
