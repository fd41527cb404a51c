//! The tenant service.

use super::audit_settings::audit_settings;
use super::identity_settings::identity_settings;
use super::*;
use crate::compile::timestamp;
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::TenantChange;
use base64::Engine as _;
use switchyard_common::TenantSlug;
use switchyard_proto::admin::v1 as pb;
use tonic::Request;

pub(super) fn tenant_pb(t: Tenant) -> pb::Tenant {
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
            max_concurrent_other_requests: Some(q.max_concurrent_other_requests),
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
        audit: Some(super::audit_settings::audit_pb(&t.audit)),
        identity: Some(super::identity_settings::identity_pb(&t.identity)),
    }
}

pub(super) fn isolation_pb(i: IsolationStatus, dedicated: bool) -> pb::Isolation {
    pb::Isolation {
        namespace: i.namespace,
        reconciled_revision: i.reconciled_revision,
        reconcile_time: i.reconciled_at.map(timestamp),
        reconcile_error: i.error,
        reconcile_error_time: i.error_at.map(timestamp),
        dedicated_workers_serving: dedicated,
    }
}

pub(super) fn status_pb(s: PublishStatus) -> pb::TenantStatus {
    pb::TenantStatus {
        published_revision: s.published_revision,
        publish_time: s.published_at.map(timestamp),
        publish_error: s.error,
        publish_error_time: s.error_at.map(timestamp),
        isolation: None,
    }
}

pub(super) const PAGE_TOKEN_PREFIX: &str = "after:";

pub(super) fn encode_page_token(last: &TenantSlug) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{last}"))
}

pub(super) fn decode_page_token(token: &str) -> Result<Option<TenantSlug>> {
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
                let audit = r
                    .audit
                    .as_ref()
                    .map(audit_settings)
                    .transpose()?
                    .unwrap_or_default();
                let identity = r
                    .identity
                    .as_ref()
                    .map(identity_settings)
                    .transpose()?
                    .unwrap_or_default();
                let t = self
                    .store
                    .create_placed_tenant(&slug, &display_name, quotas, placement, audit, identity)
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
                let audit = r.audit.as_ref().map(audit_settings).transpose()?;
                let identity = r.identity.as_ref().map(identity_settings).transpose()?;
                if display_name.is_none()
                    && quotas.is_none()
                    && tier.is_none()
                    && compute_profile.is_none()
                    && audit.is_none()
                    && identity.is_none()
                {
                    return Err(Error::invalid(
                        "display_name",
                        "nothing to update: set display_name, quotas, tier, compute_profile, audit and/or identity",
                    ));
                }
                let change = TenantChange {
                    display_name,
                    quotas,
                    status: None,
                    tier,
                    compute_profile,
                    audit,
                    identity,
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
                self.forget_grants(&slug).await;
                tracing::info!(tenant = %slug, "tenant deleted");
                Ok(pb::DeleteTenantResponse {})
            }
            .await,
        )
    }

    async fn get_daily_usage(
        &self,
        req: Request<pb::GetDailyUsageRequest>,
    ) -> Reply<pb::DailyUsage> {
        reply(self.daily_usage(req.into_inner()).await)
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
