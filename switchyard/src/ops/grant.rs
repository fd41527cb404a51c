//! `switchyard grant ...`: what clients that signed in with the built-in authorization
//! server were given.

use super::*;

#[derive(Debug, clap::Subcommand)]
pub enum GrantCommand {
    /// List a tenant's grants.
    List {
        #[arg(long)]
        tenant: String,
        /// Only this holder's: key:ID or user:SUBJECT.
        #[arg(long, default_value = "")]
        holder: String,
    },
    /// Revoke a grant: its refresh token at once, its access tokens on every worker.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Retire the tenant's signing keys at once (a key may have leaked): every access
    /// token it issued is refused, and clients refresh theirs.
    RotateKeys {
        #[arg(long)]
        tenant: String,
    },
}

pub(super) const GRANT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("CLIENT", "client_id"),
    ("HOLDER", "holder"),
    ("SCOPES", "scopes"),
    ("SIGNED IN", "created"),
    ("EXPIRES", "expires"),
];

pub async fn grant(global: &GlobalArgs, cmd: GrantCommand) -> anyhow::Result<()> {
    let mut client = pb::grant_service_client::GrantServiceClient::new(global.channel().await?);
    match cmd {
        GrantCommand::List { tenant, holder } => {
            let listed = client
                .list_grants(pb::ListGrantsRequest { tenant, holder })
                .await
                .map_err(server_error)?
                .into_inner();
            let items: Vec<_> = listed.grants.iter().map(output::grant).collect();
            output::print_list(global.output, "grants", &items, GRANT_COLUMNS);
            if listed.truncated {
                eprintln!("more grants match than are shown; narrow the list with --holder");
            }
        }
        GrantCommand::Revoke { tenant, id } => {
            let revoked = client
                .revoke_grant(pb::RevokeGrantRequest { tenant, id })
                .await
                .map_err(server_error)?
                .into_inner();
            output::print_one(global.output, &output::grant(&revoked));
        }
        GrantCommand::RotateKeys { tenant } => {
            let rotated = client
                .rotate_signing_keys(pb::RotateSigningKeysRequest { tenant })
                .await
                .map_err(server_error)?
                .into_inner();
            let at = output::time(rotated.not_before.as_ref());
            output::print_one(global.output, &serde_json::json!({ "not_before": at }));
        }
    }
    Ok(())
}
