//! `switchyard connector ...`

use super::*;

/// Parses `--header 'Name: value'`.
pub(super) fn parse_header(s: &str) -> anyhow::Result<pb::Header> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("--header must look like 'Name: value'"))?;
    Ok(pb::Header {
        name: name.trim().to_owned(),
        value: Some(value.trim().to_owned()),
        value_set: false,
    })
}

#[derive(Debug, clap::Args)]
pub struct ConnectorSettingsArgs {
    /// Tool and prompt name prefix; '' for none [default: the connector name].
    #[arg(long)]
    prefix: Option<String>,
    /// Per-call timeout in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u32>,
    /// Glob of upstream tool names to expose (repeatable; none means all).
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// Glob of upstream tool names to hide (repeatable; wins over --allow).
    #[arg(long = "deny")]
    deny: Vec<String>,
    /// Attempts per safe call, including the first.
    #[arg(long)]
    retry_attempts: Option<u32>,
    /// Let tools annotated idempotent or read-only be retried.
    #[arg(long)]
    retry_idempotent_tools: Option<bool>,
    /// Consecutive failures that open the circuit breaker.
    #[arg(long)]
    breaker_failures: Option<u32>,
    /// How long the breaker stays open, in milliseconds.
    #[arg(long)]
    breaker_open_ms: Option<u32>,
    /// Approve changed tool definitions as they are seen instead of holding them.
    #[arg(long)]
    auto_approve_tools: Option<bool>,
}

impl ConnectorSettingsArgs {
    fn retry(&self) -> Option<pb::RetryPolicy> {
        (self.retry_attempts.is_some() || self.retry_idempotent_tools.is_some()).then(|| {
            pb::RetryPolicy {
                max_attempts: self.retry_attempts,
                retry_idempotent_tools: self.retry_idempotent_tools,
                ..Default::default()
            }
        })
    }

    fn breaker(&self) -> Option<pb::BreakerPolicy> {
        (self.breaker_failures.is_some() || self.breaker_open_ms.is_some()).then(|| {
            pb::BreakerPolicy {
                consecutive_failures: self.breaker_failures,
                open_ms: self.breaker_open_ms,
                ..Default::default()
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Mcp,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConnectorCommand {
    /// Add a connector to a tenant.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "mcp")]
        kind: Kind,
        /// URL of the upstream MCP endpoint.
        #[arg(long)]
        url: String,
        /// Header sent upstream, 'Name: value' (repeatable). Values are stored sealed.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        settings: ConnectorSettingsArgs,
    },
    /// Show a connector.
    Get {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
    /// List a tenant's connectors.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Change a connector. Headers not named keep their stored values.
    Update {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: Option<String>,
        /// Header to add or replace, 'Name: value' (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Header to remove (repeatable).
        #[arg(long = "remove-header")]
        remove_headers: Vec<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Use the connector name as prefix again.
        #[arg(long, conflicts_with = "prefix")]
        reset_prefix: bool,
        /// Remove all --allow patterns.
        #[arg(long)]
        clear_allow: bool,
        /// Remove all --deny patterns.
        #[arg(long)]
        clear_deny: bool,
        #[arg(long, default_value = "")]
        etag: String,
        #[command(flatten)]
        settings: ConnectorSettingsArgs,
    },
    /// Show the connector's tools as pinned, and changed definitions held for approval
    /// (with a diff); `tools approve` approves them.
    Tools(super::connector_tools::ToolsArgs),
    /// Remove a connector.
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        etag: String,
    },
}

pub(super) const CONNECTOR_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("KIND", "kind"),
    ("URL", "url"),
    ("ENABLED", "enabled"),
    ("PREFIX", "prefix"),
    ("HEADERS", "headers"),
    ("TIMEOUT MS", "timeout_ms"),
    ("ALLOW", "allow_tools"),
    ("DENY", "deny_tools"),
];

pub async fn connector(global: &GlobalArgs, cmd: ConnectorCommand) -> anyhow::Result<()> {
    let mut client =
        pb::connector_service_client::ConnectorServiceClient::new(global.channel().await?);
    let one = match cmd {
        ConnectorCommand::Add {
            tenant,
            name,
            kind: Kind::Mcp,
            url,
            headers,
            disabled,
            settings,
        } => {
            let headers = headers
                .iter()
                .map(|h| parse_header(h))
                .collect::<anyhow::Result<Vec<_>>>()?;
            client
                .create_connector(pb::CreateConnectorRequest {
                    connector: Some(pb::Connector {
                        tenant,
                        name,
                        kind: Some(pb::connector::Kind::Mcp(pb::McpConnector { url, headers })),
                        prefix: settings.prefix.clone(),
                        timeout_ms: settings.timeout_ms.unwrap_or(0),
                        allow_tools: settings.allow.clone(),
                        deny_tools: settings.deny.clone(),
                        retry: settings.retry(),
                        breaker: settings.breaker(),
                        auto_approve_tools: settings.auto_approve_tools.unwrap_or(false),
                        ..Default::default()
                    }),
                    enabled: Some(!disabled),
                })
                .await
        }
        ConnectorCommand::Get { tenant, name } => {
            client
                .get_connector(pb::GetConnectorRequest { tenant, name })
                .await
        }
        ConnectorCommand::List { tenant } => {
            let list = client
                .list_connectors(pb::ListConnectorsRequest { tenant })
                .await
                .map_err(server_error)?
                .into_inner();
            let items: Vec<_> = list.connectors.iter().map(output::connector).collect();
            output::print_list(global.output, "connectors", &items, CONNECTOR_COLUMNS);
            return Ok(());
        }
        ConnectorCommand::Update {
            tenant,
            name,
            url,
            headers,
            remove_headers,
            enable,
            disable,
            reset_prefix,
            clear_allow,
            clear_deny,
            etag,
            settings,
        } => {
            let mut req = pb::UpdateConnectorRequest {
                tenant: tenant.clone(),
                name: name.clone(),
                etag,
                enabled: (enable || disable).then_some(enable),
                prefix: settings.prefix.clone(),
                reset_prefix,
                timeout_ms: settings.timeout_ms,
                allow_tools: (clear_allow || !settings.allow.is_empty()).then(|| pb::PatternList {
                    patterns: settings.allow.clone(),
                }),
                deny_tools: (clear_deny || !settings.deny.is_empty()).then(|| pb::PatternList {
                    patterns: settings.deny.clone(),
                }),
                retry: settings.retry(),
                breaker: settings.breaker(),
                auto_approve_tools: settings.auto_approve_tools,
                kind: None,
            };
            // Read first: the update applies to what was read (its etag), so a concurrent
            // change is refused rather than silently overwritten.
            let current = client
                .get_connector(pb::GetConnectorRequest {
                    tenant: tenant.clone(),
                    name: name.clone(),
                })
                .await
                .map_err(server_error)?
                .into_inner();
            if req.etag.is_empty() {
                req.etag = current.etag.clone();
            }
            if url.is_some() || !headers.is_empty() || !remove_headers.is_empty() {
                // The API replaces the whole header list; start from the stored names
                // (values kept server-side) and apply this command's changes.
                let Some(pb::connector::Kind::Mcp(mcp)) = current.kind else {
                    bail!("connector {name} is not of kind mcp");
                };
                let given = headers
                    .iter()
                    .map(|h| parse_header(h))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut list: Vec<pb::Header> = mcp
                    .headers
                    .into_iter()
                    .filter(|h| {
                        !remove_headers
                            .iter()
                            .any(|r| r.eq_ignore_ascii_case(&h.name))
                            && !given.iter().any(|g| g.name.eq_ignore_ascii_case(&h.name))
                    })
                    .map(|h| pb::Header {
                        name: h.name,
                        value: None,
                        value_set: false,
                    })
                    .collect();
                list.extend(given);
                req.kind = Some(pb::update_connector_request::Kind::Mcp(pb::McpConnector {
                    url: url.unwrap_or(mcp.url),
                    headers: list,
                }));
            }
            let updated = client.update_connector(req).await;
            if let Ok(u) = &updated
                && !u.get_ref().dropped_headers.is_empty()
            {
                eprintln!(
                    "note: the URL moved to another origin, so the stored values of these headers \
                     were dropped: {}. Give them again with --header.",
                    u.get_ref().dropped_headers.join(", ")
                );
            }
            updated
        }
        ConnectorCommand::Tools(args) => return super::connector_tools::tools(global, args).await,
        ConnectorCommand::Remove { tenant, name, etag } => {
            client
                .delete_connector(pb::DeleteConnectorRequest {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    etag,
                })
                .await
                .map_err(server_error)?;
            print_done(
                global.output,
                &format!("connector {name} of tenant {tenant} removed"),
            );
            return Ok(());
        }
    };
    output::print_one(
        global.output,
        &output::connector(&one.map_err(server_error)?.into_inner()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = parse_header("Authorization: Bearer abc:def").unwrap();
        assert_eq!(h.name, "Authorization");
        assert_eq!(h.value.as_deref(), Some("Bearer abc:def"));
        assert!(parse_header("no colon").is_err());
    }
}
