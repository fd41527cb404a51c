//! `switchyard key ...`

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
    Admin,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create an API key; its secret is shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value = "editor")]
        role: RoleArg,
        #[arg(long, default_value = "")]
        description: String,
        /// The key's own rate limit, requests per second.
        #[arg(long)]
        rps: Option<u32>,
        /// The key's own burst (needs --rps).
        #[arg(long)]
        burst: Option<u32>,
        /// Expiry, e.g. 30d, 12h or 90m.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Show a key.
    Get {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// List a tenant's keys.
    List {
        #[arg(long)]
        tenant: String,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key on every worker.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

pub(super) const KEY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("PREFIX", "prefix"),
    ("ROLE", "role"),
    ("RPS", "requests_per_second"),
    ("CREATED", "created"),
    ("EXPIRES", "expires"),
    ("LAST USED", "last_used"),
    ("REVOKED", "revoked"),
    ("DESCRIPTION", "description"),
];

/// Parses `30d`, `12h`, `90m` or `45s` into seconds.
pub(super) fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("--expires-in {s:?}: use a number followed by d, h, m or s (e.g. 30d)");
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(mult).ok_or_else(bad)
}

pub async fn key(global: &GlobalArgs, cmd: KeyCommand) -> anyhow::Result<()> {
    let mut client = pb::api_key_service_client::ApiKeyServiceClient::new(global.channel().await?);
    let one = match cmd {
        KeyCommand::Create {
            tenant,
            role,
            description,
            rps,
            burst,
            expires_in,
        } => {
            let expire_time = expire_time(expires_in.as_deref())?;
            let created = client
                .create_api_key(pb::CreateApiKeyRequest {
                    tenant,
                    role: match role {
                        RoleArg::Viewer => pb::ApiKeyRole::Viewer,
                        RoleArg::Editor => pb::ApiKeyRole::Editor,
                        RoleArg::Admin => pb::ApiKeyRole::Admin,
                    } as i32,
                    description,
                    requests_per_second: rps,
                    burst,
                    expire_time,
                })
                .await
                .map_err(server_error)?
                .into_inner();
            let mut item = created.key.as_ref().map(output::key).unwrap_or_default();
            match global.output {
                Format::Json | Format::Csv => {
                    if let Some(obj) = item.as_object_mut() {
                        obj.insert("secret".into(), created.secret.into());
                    }
                    output::print_one(global.output, &item);
                }
                Format::Table => {
                    output::print_one(Format::Table, &item);
                    println!(
                        "\nsecret: {}\nThis is the only time the secret is shown. Clients send it \
                         as `Authorization: Bearer <secret>`.",
                        created.secret
                    );
                }
            }
            return Ok(());
        }
        KeyCommand::Get { tenant, id } => {
            client
                .get_api_key(pb::GetApiKeyRequest { tenant, id })
                .await
        }
        KeyCommand::List { tenant, all } => {
            let list = client
                .list_api_keys(pb::ListApiKeysRequest {
                    tenant,
                    include_revoked: all,
                })
                .await
                .map_err(server_error)?
                .into_inner();
            let items: Vec<_> = list.keys.iter().map(output::key).collect();
            output::print_list(global.output, "keys", &items, KEY_COLUMNS);
            return Ok(());
        }
        KeyCommand::Revoke { tenant, id } => {
            client
                .revoke_api_key(pb::RevokeApiKeyRequest { tenant, id })
                .await
        }
    };
    output::print_one(
        global.output,
        &output::key(&one.map_err(server_error)?.into_inner()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        for bad in ["", "d", "10", "10y", "-1d", "0h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
