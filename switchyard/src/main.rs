//! The `switchyard` binary: parses arguments, sets up logging and hands over to the library.

use clap::Parser as _;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    switchyard_allocator::configure();
    // One TLS crypto provider for every client in the process (upstream MCP servers).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = switchyard::Cli::parse();
    let telemetry = switchyard::init_tracing(&cli);
    let code = match switchyard::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
