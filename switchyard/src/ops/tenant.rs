//! `switchyard tenant ...`

use super::tenant_audit::AuditArgs;
use super::tenant_identity::IdentityArgs;
use super::*;

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
    /// Listings, completions, subscriptions, streams and notifications in flight at once.
    #[arg(long)]
    max_other: Option<u32>,
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
            max_concurrent_other_requests: self.max_other,
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
        #[command(flatten)]
        audit: AuditArgs,
        #[command(flatten)]
        identity: IdentityArgs,
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
    /// Change a tenant's display name, quotas, tier, compute profile, audit or identity
    /// settings.
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
        #[command(flatten)]
        audit: AuditArgs,
        #[command(flatten)]
        identity: IdentityArgs,
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
    /// Show a tenant's tool calls this month against its monthly quota; with `--daily`,
    /// its usage per UTC day (calls, failures, upstream time, refusals by reason).
    Usage {
        slug: String,
        /// One row per day from `--from` to `--to`.
        #[arg(long, requires_all = ["from", "to"])]
        daily: bool,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long, requires = "daily")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (UTC), included; at most 366 days after `--from`.
        #[arg(long, requires = "daily")]
        to: Option<String>,
    },
}

const DAY_COLUMNS: &[(&str, &str)] = &[
    ("DAY", "day"),
    ("CALLS", "calls"),
    ("TOOL CALLS", "tool_calls"),
    ("FAILED", "failed_calls"),
    ("UPSTREAM SECONDS", "upstream_seconds"),
    ("REFUSALS", "refusals"),
];

pub(super) const TENANT_COLUMNS: &[(&str, &str)] = &[
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
            audit,
            identity,
        } => {
            client
                .create_tenant(pb::CreateTenantRequest {
                    audit: audit.over(None),
                    identity: identity.over(None),
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
            audit,
            identity,
            etag,
        } => {
            // The settings are replaced as a whole: the flags given go over the current ones.
            let current = if audit.over(None).is_some() || identity.over(None).is_some() {
                client
                    .get_tenant(pb::GetTenantRequest { slug: slug.clone() })
                    .await
                    .map_err(server_error)?
                    .into_inner()
            } else {
                pb::Tenant::default()
            };
            client
                .update_tenant(pb::UpdateTenantRequest {
                    audit: audit.over(current.audit),
                    identity: identity.over(current.identity),
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
        TenantCommand::Usage {
            slug,
            daily: true,
            from,
            to,
        } => {
            let usage = client
                .get_daily_usage(pb::GetDailyUsageRequest {
                    slug,
                    from: from.unwrap_or_default(),
                    to: to.unwrap_or_default(),
                })
                .await
                .map_err(server_error)?
                .into_inner();
            let days: Vec<_> = usage.days.iter().map(output::usage_day).collect();
            output::print_list(global.output, "days", &days, DAY_COLUMNS);
            return Ok(());
        }
        TenantCommand::Usage { slug, .. } => {
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
