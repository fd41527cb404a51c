//! `switchyard token ...`: the operator tokens of the admin API.

use super::*;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an operator token; it is shown once.
    Create {
        /// What it is for, e.g. ci or alice.
        #[arg(long)]
        name: String,
        /// Expiry, e.g. 30d, 12h or 90m.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List operator tokens.
    List {
        /// Include revoked and expired tokens.
        #[arg(long)]
        all: bool,
    },
    /// Revoke an operator token on every control-plane replica (not the last valid one).
    Revoke { id: String },
}

const TOKEN_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("CREATED", "created"),
    ("EXPIRES", "expires"),
    ("REVOKED", "revoked"),
];

fn token_json(t: &pb::OperatorToken) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "created": output::time(t.create_time.as_ref()),
        "expires": output::time(t.expire_time.as_ref()),
        "revoked": output::time(t.revoke_time.as_ref()),
    })
}

pub async fn token(global: &GlobalArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let mut client =
        pb::operator_token_service_client::OperatorTokenServiceClient::new(global.channel().await?);
    match cmd {
        TokenCommand::Create { name, expires_in } => {
            let expire_time = expire_time(expires_in.as_deref())?;
            let created = client
                .create_operator_token(pb::CreateOperatorTokenRequest { name, expire_time })
                .await
                .map_err(server_error)?
                .into_inner();
            let mut item = created.token.as_ref().map(token_json).unwrap_or_default();
            match global.output {
                Format::Json | Format::Csv => {
                    if let Some(obj) = item.as_object_mut() {
                        obj.insert("secret".into(), created.secret.into());
                    }
                    output::print_one(global.output, &item);
                }
                Format::Table => {
                    output::print_one(global.output, &item);
                    println!("\ntoken (shown once): {}", created.secret);
                }
            }
        }
        TokenCommand::List { all } => {
            let tokens = client
                .list_operator_tokens(pb::ListOperatorTokensRequest {
                    include_revoked: all,
                })
                .await
                .map_err(server_error)?
                .into_inner()
                .tokens;
            let items: Vec<_> = tokens.iter().map(token_json).collect();
            output::print_list(global.output, "tokens", &items, TOKEN_COLUMNS);
        }
        TokenCommand::Revoke { id } => {
            let revoked = client
                .revoke_operator_token(pb::RevokeOperatorTokenRequest { id })
                .await
                .map_err(server_error)?
                .into_inner();
            output::print_one(global.output, &token_json(&revoked));
        }
    }
    Ok(())
}
