//! The `switchyard` command line: server roles (`control-plane`, `migrate`, `dev`) and the
//! operator commands that talk to a control plane's admin API.

mod config;
mod dev;
mod health;
mod ops;
mod output;
pub mod telemetry;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Hosted MCP endpoints for many tenants"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: ops::GlobalArgs,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: admin API on PostgreSQL.
    ControlPlane(config::ControlPlaneArgs),
    /// Run a worker: serves tenants' MCP endpoints from policies on NATS.
    Worker(config::WorkerArgs),
    /// Apply database migrations and exit.
    Migrate(config::MigrateArgs),
    /// Run everything in one process on an embedded store, for a first try.
    Dev(dev::DevArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(ops::TenantCommand),
    /// Manage a tenant's connectors.
    #[command(subcommand)]
    Connector(ops::ConnectorCommand),
    /// Manage a tenant's API keys.
    #[command(subcommand)]
    Key(ops::KeyCommand),
    /// List and revoke what clients that signed in were granted.
    #[command(subcommand)]
    Grant(ops::GrantCommand),
    /// Inspect the worker fleet.
    #[command(subcommand)]
    Fleet(ops::FleetCommand),
    /// Manage the admin API's operator tokens.
    #[command(subcommand)]
    Token(ops::TokenCommand),
    /// Read and verify the audit trail.
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Check that admin APIs serve and readiness URLs answer 200.
    Health(health::HealthArgs),
}

/// Sets up logs and traces (see `telemetry`): servers log at `info` and export spans
/// when `--otlp-endpoint` is set; operator commands log at `warn` and export nothing.
pub fn init_tracing(cli: &Cli) -> telemetry::Telemetry {
    let service = match cli.command {
        Command::ControlPlane(_) => Some("switchyard-control-plane"),
        Command::Worker(_) => Some("switchyard-worker"),
        Command::Dev(_) => Some("switchyard-dev"),
        Command::Migrate(_) => None,
        _ => return telemetry::init("warn", "switchyard", None),
    };
    let otlp = service.and(cli.telemetry.otlp_endpoint.as_ref());
    telemetry::init("info,sqlx=warn", service.unwrap_or("switchyard"), otlp)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ControlPlane(args) => config::run_control_plane(args).await,
        Command::Worker(args) => config::run_worker(args).await,
        Command::Migrate(args) => config::run_migrate(args).await,
        Command::Dev(args) => dev::run(args, &cli.global.data_dir).await,
        Command::Tenant(cmd) => ops::tenant(&cli.global, cmd).await,
        Command::Connector(cmd) => ops::connector(&cli.global, cmd).await,
        Command::Key(cmd) => ops::key(&cli.global, cmd).await,
        Command::Grant(cmd) => ops::grant(&cli.global, cmd).await,
        Command::Fleet(cmd) => ops::fleet(&cli.global, cmd).await,
        Command::Token(cmd) => ops::token(&cli.global, cmd).await,
        Command::Audit(cmd) => ops::audit(&cli.global, cmd).await,
        Command::Health(args) => health::run(args).await,
    }
}

/// Where `dev` keeps its state and where operator commands look for a token.
fn default_data_dir() -> PathBuf {
    PathBuf::from("./.switchyard")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
