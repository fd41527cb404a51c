//! `switchyard fleet ...`

use super::*;

#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// List the live workers, with their circuit breakers that are not closed.
    List,
}

pub(super) const WORKER_COLUMNS: &[(&str, &str)] = &[
    ("WORKER", "id"),
    ("READY", "ready"),
    ("TENANTS", "tenants"),
    ("SESSIONS", "sessions"),
    ("REVISION", "policy_revision"),
    ("LAST HEARTBEAT", "last_heartbeat"),
    ("BREAKERS", "breakers_summary"),
];

pub async fn fleet(global: &GlobalArgs, cmd: FleetCommand) -> anyhow::Result<()> {
    let mut client = pb::fleet_service_client::FleetServiceClient::new(global.channel().await?);
    match cmd {
        FleetCommand::List => {
            let workers = client
                .list_workers(pb::ListWorkersRequest {})
                .await
                .map_err(server_error)?
                .into_inner()
                .workers;
            let items: Vec<_> = workers.iter().map(output::worker).collect();
            output::print_list(global.output, "workers", &items, WORKER_COLUMNS);
        }
    }
    Ok(())
}
