//! `switchyard audit ...`

use super::*;
use serde_json::{Value, json};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List a tenant's audit records, newest first.
    List {
        /// The tenant; omit for the platform's own records (operator tokens).
        #[arg(long, default_value = "")]
        tenant: String,
        /// Only records by this actor (`operator:<token id>`, `system`).
        #[arg(long, default_value = "")]
        actor: String,
        /// Only records about this object (`tenant/acme`, `connector/acme/github`).
        #[arg(long, default_value = "")]
        object: String,
        /// At most this many records (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Records older than this page token (printed after a full page).
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Recompute a tenant's hash chain, check its signed checkpoints, and name the first
    /// record that does not match.
    Verify {
        /// The tenant; omit for the platform's own chain.
        #[arg(long, default_value = "")]
        tenant: String,
    },
    /// Print the public key audit checkpoints are signed with.
    SigningKey,
}

const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("SEQ", "seq"),
    ("TIME", "time"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("OBJECT", "object"),
    ("OUTCOME", "outcome"),
    ("DETAIL", "detail"),
];

fn event(e: &pb::AuditEvent) -> Value {
    json!({
        "tenant": e.tenant,
        "seq": e.seq,
        "id": e.id,
        "time": output::time(e.time.as_ref()),
        "kind": e.kind,
        "actor": e.actor,
        "action": e.action,
        "object": e.object,
        "outcome": e.outcome,
        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::String(e.detail.clone())),
        "trace_id": e.trace_id,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

pub async fn audit(global: &GlobalArgs, cmd: AuditCommand) -> anyhow::Result<()> {
    let mut client = pb::audit_service_client::AuditServiceClient::new(global.channel().await?);
    match cmd {
        AuditCommand::List {
            tenant,
            actor,
            object,
            limit,
            page_token,
        } => {
            let page = client
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant,
                    actor,
                    object,
                    page_size: limit,
                    page_token,
                    ..Default::default()
                })
                .await
                .map_err(server_error)?
                .into_inner();
            let items: Vec<_> = page.events.iter().map(event).collect();
            output::print_list(global.output, "events", &items, EVENT_COLUMNS);
            if !page.next_page_token.is_empty() && global.output == Format::Table {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        AuditCommand::Verify { tenant } => {
            let r = client
                .verify_audit_chain(pb::VerifyAuditChainRequest { tenant })
                .await
                .map_err(server_error)?
                .into_inner();
            let result = json!({
                "intact": r.intact,
                "records": r.records,
                "first_bad_seq": (!r.intact).then_some(r.first_bad_seq),
                "reason": r.reason,
                "checkpoints": r.checkpoints,
                "key_id": r.key_id,
            });
            output::print_one(global.output, &result);
            if !r.intact {
                bail!(
                    "the chain does not verify: record {}: {}",
                    r.first_bad_seq,
                    r.reason
                );
            }
        }
        AuditCommand::SigningKey => {
            let key = client
                .get_audit_signing_key(pb::GetAuditSigningKeyRequest {})
                .await
                .map_err(server_error)?
                .into_inner();
            let result = json!({ "public_key": key.public_key, "key_id": key.key_id });
            output::print_one(global.output, &result);
        }
    }
    Ok(())
}
