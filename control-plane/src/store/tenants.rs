//! Tenants: create, read, list, update (quotas merged inside the transaction), delete.

use super::*;
use crate::audit::{Change, snapshot};

/// What a tenant update may change. `None` leaves a field as it is. The quota patch is
/// applied to the stored quotas inside the transaction, so concurrent changes to other
/// fields are not overwritten.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    pub display_name: Option<String>,
    pub quotas: Option<QuotaPatch>,
    pub status: Option<(TenantStatus, String)>,
    pub tier: Option<Tier>,
    pub compute_profile: Option<String>,
    pub audit: Option<AuditSettings>,
    pub identity: Option<IdentitySettings>,
}

pub(super) fn tenant_from_row(row: &AnyRow) -> Result<Tenant> {
    let slug: String = row.try_get("slug")?;
    let status: String = row.try_get("status")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?,
        display_name: row.try_get("display_name")?,
        status: TenantStatus::parse(&status).ok_or_else(|| corrupt("tenant status"))?,
        suspend_reason: row.try_get("suspend_reason")?,
        quotas: Quotas {
            requests_per_second: u32_col(row, "requests_per_second")?,
            burst: u32_col(row, "burst")?,
            max_concurrent_requests: u32_col(row, "max_concurrent_requests")?,
            max_sessions: u32_col(row, "max_sessions")?,
            max_concurrent_other_requests: u32_col(row, "max_concurrent_other_requests")?,
            monthly_tool_calls: row.try_get::<i64, _>("monthly_tool_calls")? as u64,
            max_connectors: u32_col(row, "max_connectors")?,
        },
        placement: Placement {
            tier: Tier::parse(&row.try_get::<String, _>("tier")?)
                .ok_or_else(|| corrupt("tenant tier"))?,
            compute_profile: row.try_get("compute_profile")?,
        },
        pool_ready: row.try_get::<i64, _>("pool_ready")? != 0,
        audit: serde_json::from_str(&row.try_get::<String, _>("audit")?)
            .map_err(|_| corrupt("tenant audit settings"))?,
        identity: serde_json::from_str(&row.try_get::<String, _>("identity")?)
            .map_err(|_| corrupt("tenant identity settings"))?,
        revision: row.try_get::<i64, _>("revision")? as u64,
        policy_revision: row.try_get::<i64, _>("policy_revision")? as u64,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// `settings` as stored in a JSON column.
pub(super) fn json_column(settings: &impl serde::Serialize) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        display_name: &str,
        quotas: Quotas,
    ) -> Result<Tenant> {
        self.create_placed_tenant(
            slug,
            display_name,
            quotas,
            Placement::default(),
            AuditSettings::default(),
            IdentitySettings::default(),
        )
        .await
    }

    pub async fn create_placed_tenant(
        &self,
        slug: &TenantSlug,
        display_name: &str,
        quotas: Quotas,
        placement: Placement,
        audit: AuditSettings,
        identity: IdentitySettings,
    ) -> Result<Tenant> {
        let (mut tx, rev) = self.begin_change().await?;
        let now = now_millis();
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, slug, display_name, status, suspend_reason, \
             requests_per_second, burst, max_concurrent_requests, max_sessions, \
             monthly_tool_calls, max_connectors, revision, policy_revision, created_at, updated_at, \
             tier, compute_profile, pool_ready, max_concurrent_other_requests, audit, identity) \
             VALUES ($1, $2, $3, 'active', '', $4, $5, $6, $7, $8, $9, $10, $10, $11, $11, $12, $13, 0, $14, $15, $16)",
        )
        .bind(&id)
        .bind(slug.as_str())
        .bind(display_name)
        .bind(i64::from(quotas.requests_per_second))
        .bind(i64::from(quotas.burst))
        .bind(i64::from(quotas.max_concurrent_requests))
        .bind(i64::from(quotas.max_sessions))
        .bind(quotas.monthly_tool_calls as i64)
        .bind(i64::from(quotas.max_connectors))
        .bind(rev as i64)
        .bind(now)
        .bind(placement.tier.as_str())
        .bind(&placement.compute_profile)
        .bind(i64::from(quotas.max_concurrent_other_requests))
        .bind(json_column(&audit))
        .bind(json_column(&identity))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists(format!("tenant {slug}")));
            }
            other => other?,
        };
        let created = Self::tenant_in(&mut tx, slug).await?;
        let change = Change::new(
            "CreateTenant",
            format!("tenant/{slug}"),
            None,
            Some(snapshot::tenant(&created)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_tenant(slug).await
    }

    pub(super) async fn tenant_in(
        tx: &mut Transaction<'static, Any>,
        slug: &TenantSlug,
    ) -> Result<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug = $1"
        ))
        .bind(slug.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenant {slug}")))?;
        tenant_from_row(&row)
    }

    pub async fn get_tenant(&self, slug: &TenantSlug) -> Result<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug = $1"
        ))
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenant {slug}")))?;
        tenant_from_row(&row)
    }

    /// Tenants ordered by slug, starting after `after`.
    pub async fn list_tenants(&self, after: Option<&str>, limit: u32) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug > $1 ORDER BY slug LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Applies `change` if `etag` (the tenant's revision) still matches.
    pub async fn update_tenant(
        &self,
        slug: &TenantSlug,
        etag: Option<u64>,
        change: TenantChange,
    ) -> Result<Tenant> {
        let (mut tx, rev) = self.begin_change().await?;
        let mut tenant = Self::tenant_in(&mut tx, slug).await?;
        check_etag(&format!("tenant {slug}"), etag, tenant.revision)?;
        let before = snapshot::tenant(&tenant);
        if let Some(name) = change.display_name {
            tenant.display_name = name;
        }
        if let Some(patch) = change.quotas {
            let quotas = patch.apply(tenant.quotas);
            let connectors: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM connectors WHERE tenant_id = $1")
                    .bind(&tenant.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if connectors > i64::from(quotas.max_connectors) {
                return Err(Error::FailedPrecondition(format!(
                    "tenant {slug} has {connectors} connectors, more than the new \
                     max_connectors {}; delete some first",
                    quotas.max_connectors
                )));
            }
            tenant.quotas = quotas;
        }
        if let Some((status, reason)) = change.status {
            tenant.status = status;
            tenant.suspend_reason = reason;
        }
        if let Some(tier) = change.tier
            && tier != tenant.placement.tier
        {
            // The pool of the new tier has to become ready before it serves.
            tenant.placement.tier = tier;
            tenant.pool_ready = false;
        }
        if let Some(profile) = change.compute_profile {
            tenant.placement.compute_profile = profile;
        }
        if let Some(audit) = change.audit {
            tenant.audit = audit;
        }
        if let Some(identity) = change.identity {
            // Revocations are not settings: they stay whatever the settings become.
            let revoked = std::mem::take(&mut tenant.identity.revoked_grants);
            let not_before = tenant.identity.signing_keys_not_before;
            tenant.identity = identity;
            tenant.identity.revoked_grants = revoked;
            tenant.identity.signing_keys_not_before = not_before;
        }
        let q = tenant.quotas;
        sqlx::query(
            "UPDATE tenants SET display_name = $1, status = $2, suspend_reason = $3, \
             requests_per_second = $4, burst = $5, max_concurrent_requests = $6, \
             max_sessions = $7, monthly_tool_calls = $8, max_connectors = $9, revision = $10, \
             updated_at = $11, tier = $13, compute_profile = $14, pool_ready = $15, \
             max_concurrent_other_requests = $16, audit = $17, identity = $18 WHERE id = $12",
        )
        .bind(&tenant.display_name)
        .bind(tenant.status.as_str())
        .bind(&tenant.suspend_reason)
        .bind(i64::from(q.requests_per_second))
        .bind(i64::from(q.burst))
        .bind(i64::from(q.max_concurrent_requests))
        .bind(i64::from(q.max_sessions))
        .bind(q.monthly_tool_calls as i64)
        .bind(i64::from(q.max_connectors))
        .bind(rev as i64)
        .bind(now_millis())
        .bind(&tenant.id)
        .bind(tenant.placement.tier.as_str())
        .bind(&tenant.placement.compute_profile)
        .bind(i64::from(tenant.pool_ready))
        .bind(i64::from(q.max_concurrent_other_requests))
        .bind(json_column(&tenant.audit))
        .bind(json_column(&tenant.identity))
        .execute(&mut *tx)
        .await?;
        let change = Change::new(
            "UpdateTenant",
            format!("tenant/{slug}"),
            Some(before),
            Some(snapshot::tenant(&tenant)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_tenant(slug).await
    }

    /// Deletes a tenant with its connectors and keys.
    pub async fn delete_tenant(&self, slug: &TenantSlug, etag: Option<u64>) -> Result<()> {
        let (mut tx, rev) = self.begin_change().await?;
        let tenant = Self::tenant_in(&mut tx, slug).await?;
        check_etag(&format!("tenant {slug}"), etag, tenant.revision)?;
        for sql in [
            "DELETE FROM connector_headers WHERE connector_id IN \
             (SELECT id FROM connectors WHERE tenant_id = $1)",
            "DELETE FROM connectors WHERE tenant_id = $1",
            "DELETE FROM api_keys WHERE tenant_id = $1",
            "DELETE FROM tenants WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&tenant.id).execute(&mut *tx).await?;
        }
        let change = Change::new(
            "DeleteTenant",
            format!("tenant/{slug}"),
            Some(snapshot::tenant(&tenant)),
            None,
        );
        self.commit_audited(tx, slug, rev, false, change).await
    }
}
