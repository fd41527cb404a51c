//! What the namespace reconciler records: each tenant's namespace and how far it got, and
//! whether a tenant's dedicated workers are ready to serve it.

use super::{Store, corrupt};
use crate::audit::Change;
use crate::error::Result;
use crate::model::{IsolationStatus, Millis, now_millis};
use sqlx::Row;
use switchyard_common::TenantSlug;

/// Longest reconcile error kept; the rest is cut.
const ERROR_MAX: usize = 1000;

/// A tenant as the reconciler sees it: its policy revision and how far its namespace got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileState {
    pub slug: TenantSlug,
    pub policy_revision: u64,
    pub reconciled_revision: u64,
}

impl Store {
    /// Records that `tenant`'s namespace is up to date with `revision`; clears its error.
    pub async fn record_reconciled(
        &self,
        tenant: &TenantSlug,
        namespace: &str,
        revision: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_isolation \
             (tenant_id, namespace, reconciled_revision, reconciled_at, last_error, last_error_at) \
             SELECT id, $2, $3, $4, '', NULL FROM tenants WHERE slug = $1 \
             ON CONFLICT (tenant_id) DO UPDATE SET namespace = excluded.namespace, \
             reconciled_revision = excluded.reconciled_revision, \
             reconciled_at = excluded.reconciled_at, last_error = '', last_error_at = NULL",
        )
        .bind(tenant.as_str())
        .bind(namespace)
        .bind(revision as i64)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records why reconciling `tenant`'s namespace failed.
    pub async fn record_reconcile_error(
        &self,
        tenant: &TenantSlug,
        namespace: &str,
        error: &str,
    ) -> Result<()> {
        let error: String = error.chars().take(ERROR_MAX).collect();
        sqlx::query(
            "INSERT INTO tenant_isolation \
             (tenant_id, namespace, reconciled_revision, reconciled_at, last_error, last_error_at) \
             SELECT id, $2, 0, NULL, $3, $4 FROM tenants WHERE slug = $1 \
             ON CONFLICT (tenant_id) DO UPDATE SET namespace = excluded.namespace, \
             last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        )
        .bind(tenant.as_str())
        .bind(namespace)
        .bind(error)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `tenant`'s isolation status, if the reconciler ever recorded one.
    pub async fn isolation_status(&self, tenant: &TenantSlug) -> Result<Option<IsolationStatus>> {
        let row = sqlx::query(
            "SELECT i.namespace, i.reconciled_revision, i.reconciled_at, i.last_error, \
             i.last_error_at FROM tenant_isolation i JOIN tenants t ON t.id = i.tenant_id \
             WHERE t.slug = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(IsolationStatus {
                namespace: row.try_get(0)?,
                reconciled_revision: row.try_get::<i64, _>(1)?.max(0) as u64,
                reconciled_at: row.try_get::<Option<Millis>, _>(2)?,
                error: row.try_get(3)?,
                error_at: row.try_get::<Option<Millis>, _>(4)?,
            })
        })
        .transpose()
    }

    /// Every tenant with its policy revision and the revision its namespace last reached.
    pub async fn reconcile_states(&self) -> Result<Vec<ReconcileState>> {
        let rows = sqlx::query(
            "SELECT t.slug, t.policy_revision, COALESCE(i.reconciled_revision, 0) \
             FROM tenants t LEFT JOIN tenant_isolation i ON i.tenant_id = t.id ORDER BY t.slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let slug: String = r.try_get(0)?;
                Ok(ReconcileState {
                    slug: TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?,
                    policy_revision: r.try_get::<i64, _>(1)?.max(0) as u64,
                    reconciled_revision: r.try_get::<i64, _>(2)?.max(0) as u64,
                })
            })
            .collect()
    }

    /// Records whether `tenant`'s dedicated workers serve it. A change of its policy (it
    /// tells shared workers to hand the tenant over, or to take it back), so it takes a
    /// revision; nothing happens if it already holds.
    pub async fn set_pool_ready(&self, tenant: &TenantSlug, ready: bool) -> Result<bool> {
        let (mut tx, rev) = self.begin_change().await?;
        let changed =
            sqlx::query("UPDATE tenants SET pool_ready = $1 WHERE slug = $2 AND pool_ready <> $1")
                .bind(i64::from(ready))
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            // Rolls the revision back with the transaction.
            return Ok(false);
        }
        let change = Change::new(
            "SetPoolReady",
            format!("tenant/{tenant}"),
            Some(serde_json::json!({ "pool_ready": !ready })),
            Some(serde_json::json!({ "pool_ready": ready })),
        );
        self.commit_audited(tx, tenant, rev, true, change).await?;
        Ok(true)
    }
}
