//! The admin API's gRPC services: request validation (errors name the field), conversion
//! between protobuf and domain records, and calls into the store.

use crate::compile::{Keys, timestamp};
use crate::error::{Error, Result};
use crate::model::{self, *};
use crate::store::{NewApiKey, NewConnector, Store, TenantChange};
use base64::Engine as _;
use std::net::IpAddr;
use std::time::Duration;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::stored_header_aad;
use switchyard_common::{ConnectorName, KeyId, TenantSlug, apikey};
use switchyard_proto::admin::v1 as pb;
use tonic::{Request, Response, Status};

/// State shared by the admin services.
#[derive(Debug, Clone)]
pub struct Admin {
    pub store: Store,
    pub keys: Keys,
    pub guard: UpstreamGuard,
    /// The workers' heartbeats; `None` when no fleet is connected.
    pub fleet: Option<std::sync::Arc<dyn switchyard_bus::Fleet>>,
    /// The compute profiles tenants may name.
    pub profiles: crate::kube::Profiles,
    /// Why the isolated tier is unavailable, if it is.
    pub isolation_unavailable: Option<String>,
}

impl Admin {
    /// A tenant's tier from the request: unset is shared; isolated needs the reconciler.
    fn tier(&self, value: i32) -> Result<Tier> {
        match pb::TenantTier::try_from(value) {
            Ok(pb::TenantTier::Unspecified | pb::TenantTier::Shared) => Ok(Tier::Shared),
            Ok(pb::TenantTier::Isolated) => match &self.isolation_unavailable {
                Some(why) => Err(Error::FailedPrecondition(format!(
                    "tier: the isolated tier is not available: {why}"
                ))),
                None => Ok(Tier::Isolated),
            },
            Err(_) => Err(Error::invalid("tier", "must be shared or isolated")),
        }
    }

    /// A compute profile name from the request: empty (the default) or one defined.
    fn compute_profile(&self, name: &str) -> Result<String> {
        if !name.is_empty() && self.profiles.get(name).is_none() {
            return Err(Error::invalid(
                "compute_profile",
                format!(
                    "no profile {name:?}; this control plane defines: {}",
                    self.profiles.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(name.to_owned())
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

fn reply<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

// ---- field parsing ----

fn slug(field: &str, s: &str) -> Result<TenantSlug> {
    TenantSlug::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

fn connector_name(field: &str, s: &str) -> Result<ConnectorName> {
    ConnectorName::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

fn key_id(field: &str, s: &str) -> Result<KeyId> {
    KeyId::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

fn etag(s: &str) -> Result<Option<u64>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Error::invalid("etag", format!("{s:?} is not an etag this server issued")))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: T,
    min: T,
    max: T,
) -> Result<T> {
    if v < min || v > max {
        return Err(Error::invalid(
            field,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
    Ok(v)
}

fn text(field: &str, s: &str, max: usize) -> Result<String> {
    if s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// Validates the quota fields that are set.
fn quota_patch(p: Option<&pb::Quotas>) -> Result<QuotaPatch> {
    let Some(p) = p else {
        return Ok(QuotaPatch::default());
    };
    let field = |name: &str| format!("quotas.{name}");
    Ok(QuotaPatch {
        requests_per_second: p
            .requests_per_second
            .map(|v| in_range(&field("requests_per_second"), v, 1, 100_000))
            .transpose()?,
        burst: p
            .burst
            .map(|v| in_range(&field("burst"), v, 1, 1_000_000))
            .transpose()?,
        max_concurrent_requests: p
            .max_concurrent_requests
            .map(|v| in_range(&field("max_concurrent_requests"), v, 1, 100_000))
            .transpose()?,
        max_sessions: p
            .max_sessions
            .map(|v| in_range(&field("max_sessions"), v, 1, 1_000_000))
            .transpose()?,
        monthly_tool_calls: p
            .monthly_tool_calls
            .map(|v| in_range(&field("monthly_tool_calls"), v, 0, i64::MAX as u64))
            .transpose()?,
        max_connectors: p
            .max_connectors
            .map(|v| in_range(&field("max_connectors"), v, 0, 1000))
            .transpose()?,
    })
}

// ---- tenants ----

fn tenant_pb(t: Tenant) -> pb::Tenant {
    let q = t.quotas;
    pb::Tenant {
        slug: t.slug.to_string(),
        display_name: t.display_name,
        state: match t.status {
            TenantStatus::Active => pb::TenantState::Active,
            TenantStatus::Suspended => pb::TenantState::Suspended,
        } as i32,
        quotas: Some(pb::Quotas {
            requests_per_second: Some(q.requests_per_second),
            burst: Some(q.burst),
            max_concurrent_requests: Some(q.max_concurrent_requests),
            max_sessions: Some(q.max_sessions),
            monthly_tool_calls: Some(q.monthly_tool_calls),
            max_connectors: Some(q.max_connectors),
        }),
        policy_revision: t.policy_revision,
        create_time: Some(timestamp(t.created_at)),
        update_time: Some(timestamp(t.updated_at)),
        etag: t.revision.to_string(),
        suspend_reason: t.suspend_reason,
        status: None,
        tier: match t.placement.tier {
            Tier::Shared => pb::TenantTier::Shared,
            Tier::Isolated => pb::TenantTier::Isolated,
        } as i32,
        compute_profile: t.placement.compute_profile,
    }
}

fn isolation_pb(i: IsolationStatus, dedicated: bool) -> pb::Isolation {
    pb::Isolation {
        namespace: i.namespace,
        reconciled_revision: i.reconciled_revision,
        reconcile_time: i.reconciled_at.map(timestamp),
        reconcile_error: i.error,
        reconcile_error_time: i.error_at.map(timestamp),
        dedicated_workers_serving: dedicated,
    }
}

fn status_pb(s: PublishStatus) -> pb::TenantStatus {
    pb::TenantStatus {
        published_revision: s.published_revision,
        publish_time: s.published_at.map(timestamp),
        publish_error: s.error,
        publish_error_time: s.error_at.map(timestamp),
        isolation: None,
    }
}

const PAGE_TOKEN_PREFIX: &str = "after:";

fn encode_page_token(last: &TenantSlug) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{last}"))
}

fn decode_page_token(token: &str) -> Result<Option<TenantSlug>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token", "is not a token this server issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let slug = s.strip_prefix(PAGE_TOKEN_PREFIX).ok_or_else(bad)?;
    TenantSlug::parse(slug).map(Some).map_err(|_| bad())
}

#[tonic::async_trait]
impl pb::tenant_service_server::TenantService for Admin {
    async fn create_tenant(&self, req: Request<pb::CreateTenantRequest>) -> Reply<pb::Tenant> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let display_name = text("display_name", &r.display_name, 200)?;
                let quotas = quota_patch(r.quotas.as_ref())?.apply(Quotas::default());
                let placement = Placement {
                    tier: self.tier(r.tier)?,
                    compute_profile: self.compute_profile(&r.compute_profile)?,
                };
                let t = self
                    .store
                    .create_placed_tenant(&slug, &display_name, quotas, placement)
                    .await?;
                tracing::info!(tenant = %slug, revision = t.policy_revision, "tenant created");
                Ok(tenant_pb(t))
            }
            .await,
        )
    }

    async fn get_tenant(&self, req: Request<pb::GetTenantRequest>) -> Reply<pb::Tenant> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let t = self.store.get_tenant(&slug).await?;
                let dedicated = t.dedicated();
                let mut tenant = tenant_pb(t);
                let mut status = status_pb(self.store.publish_status(&slug).await?);
                status.isolation = self
                    .store
                    .isolation_status(&slug)
                    .await?
                    .map(|i| isolation_pb(i, dedicated));
                tenant.status = Some(status);
                Ok(tenant)
            }
            .await,
        )
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Reply<pb::ListTenantsResponse> {
        let r = req.into_inner();
        reply(
            async {
                let after = decode_page_token(&r.page_token)?;
                let size = match r.page_size {
                    0 => 50,
                    n => n.min(500),
                };
                // One extra row tells whether another page follows.
                let mut tenants = self
                    .store
                    .list_tenants(after.as_ref().map(TenantSlug::as_str), size + 1)
                    .await?;
                let next_page_token = if tenants.len() > size as usize {
                    tenants.truncate(size as usize);
                    tenants
                        .last()
                        .map(|t| encode_page_token(&t.slug))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                Ok(pb::ListTenantsResponse {
                    tenants: tenants.into_iter().map(tenant_pb).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_tenant(&self, req: Request<pb::UpdateTenantRequest>) -> Reply<pb::Tenant> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let etag = etag(&r.etag)?;
                let display_name = r
                    .display_name
                    .as_deref()
                    .map(|n| text("display_name", n, 200))
                    .transpose()?;
                let quotas = r
                    .quotas
                    .as_ref()
                    .map(|q| quota_patch(Some(q)))
                    .transpose()?;
                let tier = r.tier.map(|t| self.tier(t)).transpose()?;
                let compute_profile = r
                    .compute_profile
                    .as_deref()
                    .map(|p| self.compute_profile(p))
                    .transpose()?;
                if display_name.is_none()
                    && quotas.is_none()
                    && tier.is_none()
                    && compute_profile.is_none()
                {
                    return Err(Error::invalid(
                        "display_name",
                        "nothing to update: set display_name, quotas, tier and/or compute_profile",
                    ));
                }
                let change = TenantChange {
                    display_name,
                    quotas,
                    status: None,
                    tier,
                    compute_profile,
                };
                Ok(tenant_pb(
                    self.store.update_tenant(&slug, etag, change).await?,
                ))
            }
            .await,
        )
    }

    async fn suspend_tenant(&self, req: Request<pb::SuspendTenantRequest>) -> Reply<pb::Tenant> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let etag = etag(&r.etag)?;
                let reason = text("reason", &r.reason, 500)?;
                let change = TenantChange {
                    status: Some((TenantStatus::Suspended, reason)),
                    ..TenantChange::default()
                };
                let t = self.store.update_tenant(&slug, etag, change).await?;
                tracing::info!(tenant = %slug, revision = t.policy_revision, "tenant suspended");
                Ok(tenant_pb(t))
            }
            .await,
        )
    }

    async fn resume_tenant(&self, req: Request<pb::ResumeTenantRequest>) -> Reply<pb::Tenant> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let etag = etag(&r.etag)?;
                let change = TenantChange {
                    status: Some((TenantStatus::Active, String::new())),
                    ..TenantChange::default()
                };
                let t = self.store.update_tenant(&slug, etag, change).await?;
                tracing::info!(tenant = %slug, revision = t.policy_revision, "tenant resumed");
                Ok(tenant_pb(t))
            }
            .await,
        )
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Reply<pb::DeleteTenantResponse> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let etag = etag(&r.etag)?;
                self.store.delete_tenant(&slug, etag).await?;
                tracing::info!(tenant = %slug, "tenant deleted");
                Ok(pb::DeleteTenantResponse {})
            }
            .await,
        )
    }

    async fn get_tenant_usage(
        &self,
        req: Request<pb::GetTenantUsageRequest>,
    ) -> Reply<pb::TenantUsage> {
        let r = req.into_inner();
        reply(
            async {
                let slug = slug("slug", &r.slug)?;
                let u = self.store.usage(&slug).await?;
                Ok(pb::TenantUsage {
                    slug: slug.to_string(),
                    exhausted: u.exhausted(),
                    period: u.period,
                    tool_calls: u.tool_calls,
                    monthly_tool_calls: u.monthly_tool_calls,
                    resets_at: Some(timestamp(u.resets_at)),
                })
            }
            .await,
        )
    }
}

// ---- fleet ----

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for Admin {
    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Reply<pb::ListWorkersResponse> {
        let Some(fleet) = &self.fleet else {
            return Err(Status::failed_precondition(
                "this control plane is not connected to the worker fleet (no nats-url)",
            ));
        };
        let mut members = fleet
            .members()
            .await
            .map_err(|e| Status::unavailable(format!("the fleet cannot be read now: {e}")))?;
        members.sort_by(|a, b| a.worker.cmp(&b.worker));
        let workers = members
            .into_iter()
            .map(|m| pb::Worker {
                id: m.worker,
                ready: m.ready,
                start_time: Some(timestamp(m.started_ms)),
                last_heartbeat: Some(timestamp(m.at_ms)),
                tenants: m.tenants,
                policy_revision: m.policy_revision,
                sessions: m.sessions.values().sum(),
                breakers: m
                    .breakers
                    .into_iter()
                    .map(|b| pb::Breaker {
                        tenant: b.tenant,
                        connector: b.connector,
                        state: b.state,
                        retry_time: Some(timestamp(b.retry_at_ms)),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }
}

// ---- connectors ----

/// Headers the worker sets itself or that would break the transport.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 8 * 1024;
const MAX_PATTERNS: usize = 100;

fn header_name(field: &str, name: &str) -> Result<String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::invalid(field, format!("{name:?} is not a valid HTTP header name")))?;
    let lower = parsed.as_str().to_owned();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(Error::invalid(
            field,
            format!("{name:?} is set by the worker and cannot be configured"),
        ));
    }
    Ok(lower)
}

fn header_value(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_HEADER_VALUE {
        return Err(Error::invalid(
            field,
            format!("must be 1-{MAX_HEADER_VALUE} bytes"),
        ));
    }
    // The value is a secret: say what is wrong without echoing it.
    http::HeaderValue::from_str(value)
        .map_err(|_| Error::invalid(field, "contains characters not allowed in a header"))?;
    Ok(())
}

/// Validates an upstream URL, including the private-range guard.
async fn upstream_url(field: &str, raw: &str, guard: &UpstreamGuard) -> Result<String> {
    let url = url::Url::parse(raw).map_err(|e| Error::invalid(field, format!("{raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(field, "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            field,
            "must not carry credentials; put them in a header, whose value is stored sealed",
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(field, "must not have a #fragment"));
    }
    let host = url
        .host()
        .ok_or_else(|| Error::invalid(field, "must name a host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(d)
            if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
        {
            vec![IpAddr::from([127, 0, 0, 1])]
        }
        url::Host::Domain(d) => {
            // Names that resolve now are checked now; workers check every connection again.
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((d.to_owned(), port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            }
        }
    };
    if let Some(ip) = addrs.into_iter().find(|ip| !guard.permits(*ip)) {
        return Err(Error::invalid(
            field,
            format!(
                "{ip} is in a private, loopback or link-local range; an operator can allow it \
                 with --upstream-allow"
            ),
        ));
    }
    Ok(url.to_string())
}

fn prefix(field: &str, p: &str) -> Result<String> {
    if p.len() > 32
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(
            field,
            "must be at most 32 characters of A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if p.contains("__") || p.ends_with('_') {
        return Err(Error::invalid(
            field,
            "must not contain \"__\" or end with '_': it is the separator before tool names",
        ));
    }
    Ok(p.to_owned())
}

fn patterns(field: &str, list: &[String]) -> Result<Vec<String>> {
    if list.len() > MAX_PATTERNS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_PATTERNS} patterns"),
        ));
    }
    for (i, p) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if p.is_empty() || p.len() > 256 {
            return Err(Error::invalid(f, "must be 1-256 characters"));
        }
        globset::Glob::new(p).map_err(|e| Error::invalid(f, format!("{p:?}: {e}")))?;
    }
    Ok(list.to_vec())
}

fn apply_retry(mut r: RetrySettings, p: Option<&pb::RetryPolicy>) -> Result<RetrySettings> {
    let Some(p) = p else { return Ok(r) };
    if let Some(v) = p.max_attempts {
        r.max_attempts = in_range("retry.max_attempts", v, 1, 10)?;
    }
    if let Some(v) = p.initial_backoff_ms {
        r.initial_backoff_ms = in_range("retry.initial_backoff_ms", v, 1, 60_000)?;
    }
    if let Some(v) = p.max_backoff_ms {
        r.max_backoff_ms = in_range("retry.max_backoff_ms", v, 1, 300_000)?;
    }
    if let Some(v) = p.retry_idempotent_tools {
        r.retry_idempotent_tools = v;
    }
    if r.max_backoff_ms < r.initial_backoff_ms {
        return Err(Error::invalid(
            "retry.max_backoff_ms",
            "must not be less than initial_backoff_ms",
        ));
    }
    Ok(r)
}

fn apply_breaker(mut b: BreakerSettings, p: Option<&pb::BreakerPolicy>) -> Result<BreakerSettings> {
    let Some(p) = p else { return Ok(b) };
    if let Some(v) = p.consecutive_failures {
        b.consecutive_failures = in_range("breaker.consecutive_failures", v, 1, 1000)?;
    }
    if let Some(v) = p.failure_rate_percent {
        b.failure_rate_percent = in_range("breaker.failure_rate_percent", v, 1, 100)?;
    }
    if let Some(v) = p.minimum_calls {
        b.minimum_calls = in_range("breaker.minimum_calls", v, 1, 100_000)?;
    }
    if let Some(v) = p.open_ms {
        b.open_ms = in_range("breaker.open_ms", v, 100, 3_600_000)?;
    }
    if let Some(v) = p.half_open_probes {
        b.half_open_probes = in_range("breaker.half_open_probes", v, 1, 100)?;
    }
    Ok(b)
}

fn timeout_ms(field: &str, v: u32) -> Result<u32> {
    if v == 0 {
        return Ok(model::DEFAULT_TIMEOUT_MS);
    }
    in_range(field, v, 1, 600_000)
}

/// Header names and values to seal, validated. `existing` supplies values for headers
/// given without one (update keeps the stored value).
fn headers_in(
    field: &str,
    headers: &[pb::Header],
    existing: &[SealedHeader],
) -> Result<Vec<(String, HeaderValue)>> {
    if headers.len() > MAX_HEADERS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out: Vec<(String, HeaderValue)> = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let name = header_name(&format!("{field}[{i}].name"), &h.name)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Error::invalid(
                format!("{field}[{i}].name"),
                format!("header {name:?} is given twice"),
            ));
        }
        let value = match &h.value {
            Some(v) => {
                header_value(&format!("{field}[{i}].value"), v)?;
                HeaderValue::New(v.clone())
            }
            None => match existing.iter().find(|e| e.name == name) {
                Some(e) => HeaderValue::Keep(e.sealed_value.clone()),
                None => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].value"),
                        format!("header {name:?} has no stored value to keep; give one"),
                    ));
                }
            },
        };
        out.push((name, value));
    }
    Ok(out)
}

enum HeaderValue {
    New(String),
    Keep(Vec<u8>),
}

fn seal_headers(
    keys: &Keys,
    tenant_id: &str,
    connector_id: &str,
    headers: Vec<(String, HeaderValue)>,
) -> Vec<SealedHeader> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let sealed_value = match value {
                HeaderValue::New(v) => keys.master.seal(
                    &stored_header_aad(tenant_id, connector_id, &name),
                    v.as_bytes(),
                ),
                HeaderValue::Keep(sealed) => sealed,
            };
            SealedHeader { name, sealed_value }
        })
        .collect()
}

fn connector_pb(c: Connector) -> pb::Connector {
    let s = c.settings;
    let kind = match s.kind {
        ConnectorKind::Mcp { url } => pb::connector::Kind::Mcp(pb::McpConnector {
            url,
            headers: c
                .headers
                .into_iter()
                .map(|h| pb::Header {
                    name: h.name,
                    value: None,
                    value_set: true,
                })
                .collect(),
        }),
    };
    pb::Connector {
        tenant: c.tenant.to_string(),
        name: c.name.to_string(),
        kind: Some(kind),
        enabled: c.enabled,
        prefix: s.prefix,
        timeout_ms: s.timeout_ms,
        allow_tools: s.allow_tools,
        deny_tools: s.deny_tools,
        retry: Some(pb::RetryPolicy {
            max_attempts: Some(s.retry.max_attempts),
            initial_backoff_ms: Some(s.retry.initial_backoff_ms),
            max_backoff_ms: Some(s.retry.max_backoff_ms),
            retry_idempotent_tools: Some(s.retry.retry_idempotent_tools),
        }),
        breaker: Some(pb::BreakerPolicy {
            consecutive_failures: Some(s.breaker.consecutive_failures),
            failure_rate_percent: Some(s.breaker.failure_rate_percent),
            minimum_calls: Some(s.breaker.minimum_calls),
            open_ms: Some(s.breaker.open_ms),
            half_open_probes: Some(s.breaker.half_open_probes),
        }),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: c.revision.to_string(),
    }
}

#[tonic::async_trait]
impl pb::connector_service_server::ConnectorService for Admin {
    async fn create_connector(
        &self,
        req: Request<pb::CreateConnectorRequest>,
    ) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let c = r
                    .connector
                    .ok_or_else(|| Error::invalid("connector", "is required"))?;
                let tenant = slug("connector.tenant", &c.tenant)?;
                let name = connector_name("connector.name", &c.name)?;
                let (kind, headers) = match &c.kind {
                    Some(pb::connector::Kind::Mcp(m)) => {
                        let url = upstream_url("connector.mcp.url", &m.url, &self.guard).await?;
                        let headers = headers_in("connector.mcp.headers", &m.headers, &[])?;
                        (ConnectorKind::Mcp { url }, headers)
                    }
                    None => {
                        return Err(Error::invalid(
                            "connector.kind",
                            "is required: set connector.mcp",
                        ));
                    }
                };
                let settings = ConnectorSettings {
                    kind,
                    prefix: c
                        .prefix
                        .as_deref()
                        .map(|p| prefix("connector.prefix", p))
                        .transpose()?,
                    timeout_ms: timeout_ms("connector.timeout_ms", c.timeout_ms)?,
                    allow_tools: patterns("connector.allow_tools", &c.allow_tools)?,
                    deny_tools: patterns("connector.deny_tools", &c.deny_tools)?,
                    retry: apply_retry(RetrySettings::default(), c.retry.as_ref())
                        .map_err(|e| nest("connector", e))?,
                    breaker: apply_breaker(BreakerSettings::default(), c.breaker.as_ref())
                        .map_err(|e| nest("connector", e))?,
                };
                let keys = &self.keys;
                let created = self
                    .store
                    .create_connector(
                        &tenant,
                        NewConnector {
                            name,
                            enabled: r.enabled.unwrap_or(true),
                            settings,
                            seal_headers: |tenant_id: &str, connector_id: &str| {
                                Ok(seal_headers(keys, tenant_id, connector_id, headers))
                            },
                        },
                    )
                    .await?;
                tracing::info!(
                    tenant = %tenant,
                    connector = %created.name,
                    revision = created.revision,
                    "connector created"
                );
                Ok(connector_pb(created))
            }
            .await,
        )
    }

    async fn get_connector(&self, req: Request<pb::GetConnectorRequest>) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                Ok(connector_pb(
                    self.store.get_connector(&tenant, &name).await?,
                ))
            }
            .await,
        )
    }

    async fn list_connectors(
        &self,
        req: Request<pb::ListConnectorsRequest>,
    ) -> Reply<pb::ListConnectorsResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let connectors = self.store.list_connectors(&tenant).await?;
                Ok(pb::ListConnectorsResponse {
                    connectors: connectors.into_iter().map(connector_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn update_connector(
        &self,
        req: Request<pb::UpdateConnectorRequest>,
    ) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                let etag = etag(&r.etag)?;
                // Validate everything that needs no stored state before the transaction.
                let url = match &r.kind {
                    Some(pb::update_connector_request::Kind::Mcp(m)) => {
                        Some(upstream_url("mcp.url", &m.url, &self.guard).await?)
                    }
                    None => None,
                };
                let new_prefix = match (&r.prefix, r.reset_prefix) {
                    (Some(_), true) => {
                        return Err(Error::invalid(
                            "reset_prefix",
                            "cannot be combined with prefix",
                        ));
                    }
                    (Some(p), false) => Some(Some(prefix("prefix", p)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                };
                let timeout = r
                    .timeout_ms
                    .map(|t| timeout_ms("timeout_ms", t))
                    .transpose()?;
                let allow = r
                    .allow_tools
                    .as_ref()
                    .map(|l| patterns("allow_tools.patterns", &l.patterns))
                    .transpose()?;
                let deny = r
                    .deny_tools
                    .as_ref()
                    .map(|l| patterns("deny_tools.patterns", &l.patterns))
                    .transpose()?;
                let keys = &self.keys;
                let updated = self
                    .store
                    .update_connector(&tenant, &name, etag, |tenant_id, c| {
                        if let (Some(url), Some(pb::update_connector_request::Kind::Mcp(m))) =
                            (url, &r.kind)
                        {
                            let headers = headers_in("mcp.headers", &m.headers, &c.headers)?;
                            c.headers = seal_headers(keys, tenant_id, &c.id, headers);
                            c.settings.kind = ConnectorKind::Mcp { url };
                        }
                        if let Some(enabled) = r.enabled {
                            c.enabled = enabled;
                        }
                        if let Some(p) = new_prefix {
                            c.settings.prefix = p;
                        }
                        if let Some(t) = timeout {
                            c.settings.timeout_ms = t;
                        }
                        if let Some(a) = allow {
                            c.settings.allow_tools = a;
                        }
                        if let Some(d) = deny {
                            c.settings.deny_tools = d;
                        }
                        c.settings.retry = apply_retry(c.settings.retry, r.retry.as_ref())?;
                        c.settings.breaker = apply_breaker(c.settings.breaker, r.breaker.as_ref())?;
                        Ok(())
                    })
                    .await?;
                tracing::info!(
                    tenant = %tenant,
                    connector = %name,
                    revision = updated.revision,
                    "connector updated"
                );
                Ok(connector_pb(updated))
            }
            .await,
        )
    }

    async fn delete_connector(
        &self,
        req: Request<pb::DeleteConnectorRequest>,
    ) -> Reply<pb::DeleteConnectorResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                let etag = etag(&r.etag)?;
                self.store.delete_connector(&tenant, &name, etag).await?;
                tracing::info!(tenant = %tenant, connector = %name, "connector deleted");
                Ok(pb::DeleteConnectorResponse {})
            }
            .await,
        )
    }
}

/// Prefixes the field of an InvalidArgument error with its parent message's name.
fn nest(parent: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field: format!("{parent}.{field}"),
            reason,
        },
        other => other,
    }
}

// ---- API keys ----

fn key_pb(k: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        prefix: apikey::display_prefix(&k.id),
        id: k.id.to_string(),
        tenant: k.tenant.to_string(),
        role: match k.role {
            Role::Viewer => pb::ApiKeyRole::Viewer,
            Role::Editor => pb::ApiKeyRole::Editor,
            Role::Admin => pb::ApiKeyRole::Admin,
        } as i32,
        description: k.description,
        requests_per_second: k.requests_per_second,
        burst: k.burst,
        create_time: Some(timestamp(k.created_at)),
        expire_time: k.expires_at.map(timestamp),
        last_used_time: k.last_used_at.map(timestamp),
        revoke_time: k.revoked_at.map(timestamp),
    }
}

fn millis_of(field: &str, t: &prost_types::Timestamp) -> Result<Millis> {
    if !(0..1_000_000_000).contains(&t.nanos) || t.seconds < 0 || t.seconds > 253_402_300_799 {
        return Err(Error::invalid(field, "is not a valid timestamp"));
    }
    Ok(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for Admin {
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let role = match pb::ApiKeyRole::try_from(r.role) {
                    Ok(pb::ApiKeyRole::Unspecified) | Ok(pb::ApiKeyRole::Editor) => Role::Editor,
                    Ok(pb::ApiKeyRole::Viewer) => Role::Viewer,
                    Ok(pb::ApiKeyRole::Admin) => Role::Admin,
                    Err(_) => {
                        return Err(Error::invalid("role", format!("unknown role {}", r.role)));
                    }
                };
                let description = text("description", &r.description, 200)?;
                let rps = r
                    .requests_per_second
                    .map(|v| in_range("requests_per_second", v, 1, 100_000))
                    .transpose()?;
                let burst = r
                    .burst
                    .map(|v| in_range("burst", v, 1, 1_000_000))
                    .transpose()?;
                if burst.is_some() && rps.is_none() {
                    return Err(Error::invalid(
                        "burst",
                        "needs requests_per_second: a key's burst applies to its own rate",
                    ));
                }
                let expires_at = r
                    .expire_time
                    .as_ref()
                    .map(|t| millis_of("expire_time", t))
                    .transpose()?;
                if expires_at.is_some_and(|e| e <= now_millis()) {
                    return Err(Error::invalid("expire_time", "must lie in the future"));
                }
                // Fail fast on an unknown tenant before spending argon2 work.
                self.store.get_tenant(&tenant).await?;
                let generated = tokio::task::spawn_blocking(apikey::generate)
                    .await
                    .map_err(|e| Error::Internal(format!("key generation task: {e}")))?
                    .map_err(|e| Error::Internal(format!("key generation: {e}")))?;
                let key = self
                    .store
                    .create_api_key(
                        &tenant,
                        NewApiKey {
                            id: generated.id.clone(),
                            role,
                            description,
                            requests_per_second: rps,
                            burst,
                            verifier: generated.verifier,
                            expires_at,
                        },
                    )
                    .await?;
                tracing::info!(tenant = %tenant, key = %key.id, role = key.role.as_str(), "API key created");
                Ok(pb::CreateApiKeyResponse {
                    key: Some(key_pb(key)),
                    secret: generated.credential.to_string(),
                })
            }
            .await,
        )
    }

    async fn get_api_key(&self, req: Request<pb::GetApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let id = key_id("id", &r.id)?;
                Ok(key_pb(self.store.get_api_key(&tenant, &id).await?))
            }
            .await,
        )
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let keys = self.store.list_api_keys(&tenant, r.include_revoked).await?;
                Ok(pb::ListApiKeysResponse {
                    keys: keys.into_iter().map(key_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let id = key_id("id", &r.id)?;
                let key = self.store.revoke_api_key(&tenant, &id).await?;
                tracing::info!(tenant = %tenant, key = %id, "API key revoked");
                Ok(key_pb(key))
            }
            .await,
        )
    }
}
