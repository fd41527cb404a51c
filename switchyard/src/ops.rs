//! Operator commands: thin gRPC clients of the admin API that print tables or JSON.

use crate::output::{self, Format};
use anyhow::{Context as _, anyhow, bail};
use std::path::PathBuf;
use switchyard_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Admin API address of the control plane.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Operator token [default: $SWITCHYARD_TOKEN, else <data-dir>/operator-token].
    #[arg(long, global = true, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        env = "SWITCHYARD_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: Format,
    /// Data directory of `switchyard dev`.
    #[arg(long, global = true, env = "SWITCHYARD_DATA_DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
}

type Auth = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Authed = InterceptedService<Channel, Auth>;

impl GlobalArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_owned());
        }
        let path = self.data_dir.join("operator-token");
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.trim().to_owned()),
            Err(_) => bail!(
                "no operator token: pass --token, set SWITCHYARD_TOKEN, or run `switchyard dev`, \
                 which writes one to {}",
                path.display()
            ),
        }
    }

    async fn channel(&self) -> anyhow::Result<Authed> {
        let token = self.token()?;
        let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
            anyhow!("the operator token contains characters not allowed in a header")
        })?;
        let channel = tonic::transport::Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {:?} is not a valid URL", self.server))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.server))?;
        let auth: Auth = Box::new(move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        });
        Ok(InterceptedService::new(channel, auth))
    }
}

/// Turns a gRPC error into the message the server gave, with its code.
fn server_error(status: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", status.code(), status.message())
}

#[derive(Debug, clap::Args)]
pub struct QuotaArgs {
    /// Sustained requests per second across the fleet.
    #[arg(long)]
    rps: Option<u32>,
    /// Requests allowed at once above the sustained rate.
    #[arg(long)]
    burst: Option<u32>,
    /// Concurrent requests.
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Concurrent MCP sessions.
    #[arg(long)]
    max_sessions: Option<u32>,
    /// Tool calls per calendar month (0 = unlimited).
    #[arg(long)]
    monthly_calls: Option<u64>,
    /// Connectors the tenant may have.
    #[arg(long)]
    max_connectors: Option<u32>,
}

impl QuotaArgs {
    fn to_pb(&self) -> Option<pb::Quotas> {
        let q = pb::Quotas {
            requests_per_second: self.rps,
            burst: self.burst,
            max_concurrent_requests: self.max_concurrent,
            max_sessions: self.max_sessions,
            monthly_tool_calls: self.monthly_calls,
            max_connectors: self.max_connectors,
        };
        (q != pb::Quotas::default()).then_some(q)
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TierArg {
    Shared,
    Isolated,
}

impl TierArg {
    fn to_pb(self) -> i32 {
        let tier = match self {
            Self::Shared => pb::TenantTier::Shared,
            Self::Isolated => pb::TenantTier::Isolated,
        };
        tier as i32
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        slug: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[command(flatten)]
        quotas: QuotaArgs,
        /// Shared workers, or a dedicated pool in the tenant's own namespace.
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        /// A compute profile the control plane defines [default: its default profile].
        #[arg(long, default_value = "")]
        compute_profile: String,
    },
    /// Show a tenant.
    Get { slug: String },
    /// List tenants.
    List {
        /// Fetch only this many (one page) instead of all.
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after a previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Change a tenant's display name, quotas, tier or compute profile.
    Update {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        quotas: QuotaArgs,
        /// Move the tenant to another tier (make before break).
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        #[arg(long)]
        compute_profile: Option<String>,
        /// Fail if the tenant changed since this etag was read.
        #[arg(long, default_value = "")]
        etag: String,
    },
    /// Suspend a tenant: its endpoint answers 403 until resumed.
    Suspend {
        slug: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "")]
        etag: String,
    },
    /// Resume a suspended tenant.
    Resume {
        slug: String,
        #[arg(long, default_value = "")]
        etag: String,
    },
    /// Delete a tenant with its connectors and keys.
    Delete {
        slug: String,
        #[arg(long, default_value = "")]
        etag: String,
    },
    /// Show a tenant's tool calls this month against its monthly quota.
    Usage { slug: String },
}

const TENANT_COLUMNS: &[(&str, &str)] = &[
    ("SLUG", "slug"),
    ("STATE", "state"),
    ("RPS", "quotas.requests_per_second"),
    ("BURST", "quotas.burst"),
    ("MAX CONCURRENT", "quotas.max_concurrent_requests"),
    ("MAX SESSIONS", "quotas.max_sessions"),
    ("MONTHLY CALLS", "quotas.monthly_tool_calls"),
    ("MAX CONNECTORS", "quotas.max_connectors"),
    ("REVISION", "policy_revision"),
    ("CREATED", "created"),
];

pub async fn tenant(global: &GlobalArgs, cmd: TenantCommand) -> anyhow::Result<()> {
    let mut client = pb::tenant_service_client::TenantServiceClient::new(global.channel().await?);
    let one = match cmd {
        TenantCommand::Create {
            slug,
            display_name,
            quotas,
            tier,
            compute_profile,
        } => {
            client
                .create_tenant(pb::CreateTenantRequest {
                    slug,
                    display_name,
                    quotas: quotas.to_pb(),
                    tier: tier.map_or(0, TierArg::to_pb),
                    compute_profile,
                })
                .await
        }
        TenantCommand::Get { slug } => client.get_tenant(pb::GetTenantRequest { slug }).await,
        TenantCommand::List { limit, page_token } => {
            let mut tenants = Vec::new();
            let mut token = page_token;
            let next = loop {
                let page = client
                    .list_tenants(pb::ListTenantsRequest {
                        page_size: limit.unwrap_or(500),
                        page_token: token,
                    })
                    .await
                    .map_err(server_error)?
                    .into_inner();
                tenants.extend(page.tenants.iter().map(output::tenant));
                if limit.is_some() || page.next_page_token.is_empty() {
                    break page.next_page_token;
                }
                token = page.next_page_token;
            };
            output::print_list(global.output, "tenants", &tenants, TENANT_COLUMNS);
            if !next.is_empty() && global.output == Format::Table {
                eprintln!("more: --page-token {next}");
            }
            return Ok(());
        }
        TenantCommand::Update {
            slug,
            display_name,
            quotas,
            tier,
            compute_profile,
            etag,
        } => {
            client
                .update_tenant(pb::UpdateTenantRequest {
                    slug,
                    etag,
                    display_name,
                    quotas: quotas.to_pb(),
                    tier: tier.map(TierArg::to_pb),
                    compute_profile,
                })
                .await
        }
        TenantCommand::Suspend { slug, reason, etag } => {
            client
                .suspend_tenant(pb::SuspendTenantRequest { slug, etag, reason })
                .await
        }
        TenantCommand::Resume { slug, etag } => {
            client
                .resume_tenant(pb::ResumeTenantRequest { slug, etag })
                .await
        }
        TenantCommand::Delete { slug, etag } => {
            client
                .delete_tenant(pb::DeleteTenantRequest {
                    slug: slug.clone(),
                    etag,
                })
                .await
                .map_err(server_error)?;
            print_done(global.output, &format!("tenant {slug} deleted"));
            return Ok(());
        }
        TenantCommand::Usage { slug } => {
            let usage = client
                .get_tenant_usage(pb::GetTenantUsageRequest { slug })
                .await
                .map_err(server_error)?
                .into_inner();
            output::print_one(global.output, &output::usage(&usage));
            return Ok(());
        }
    };
    output::print_one(
        global.output,
        &output::tenant(&one.map_err(server_error)?.into_inner()),
    );
    Ok(())
}

fn print_done(format: Format, message: &str) {
    match format {
        Format::Json => println!("{}", serde_json::json!({ "ok": true, "message": message })),
        Format::Table => println!("{message}"),
    }
}

/// Parses `--header 'Name: value'`.
fn parse_header(s: &str) -> anyhow::Result<pb::Header> {
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

const CONNECTOR_COLUMNS: &[(&str, &str)] = &[
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
                kind: None,
            };
            if url.is_some() || !headers.is_empty() || !remove_headers.is_empty() {
                // The API replaces the whole header list; start from the stored names
                // (values kept server-side) and apply this command's changes.
                let current = client
                    .get_connector(pb::GetConnectorRequest {
                        tenant: tenant.clone(),
                        name: name.clone(),
                    })
                    .await
                    .map_err(server_error)?
                    .into_inner();
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
            client.update_connector(req).await
        }
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

const KEY_COLUMNS: &[(&str, &str)] = &[
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
fn parse_duration(s: &str) -> anyhow::Result<i64> {
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
            let expire_time = expires_in
                .map(|e| -> anyhow::Result<_> {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs() as i64;
                    Ok(prost_types::Timestamp {
                        seconds: now + parse_duration(&e)?,
                        nanos: 0,
                    })
                })
                .transpose()?;
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
                Format::Json => {
                    if let Some(obj) = item.as_object_mut() {
                        obj.insert("secret".into(), created.secret.into());
                    }
                    println!("{item}");
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

    #[test]
    fn headers() {
        let h = parse_header("Authorization: Bearer abc:def").unwrap();
        assert_eq!(h.name, "Authorization");
        assert_eq!(h.value.as_deref(), Some("Bearer abc:def"));
        assert!(parse_header("no colon").is_err());
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// List the live workers, with their circuit breakers that are not closed.
    List,
}

const WORKER_COLUMNS: &[(&str, &str)] = &[
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
