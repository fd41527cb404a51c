//! What the publisher records about its work, and what health and metrics read: each
//! tenant's publish status, the outbox backlog, and whether every migration is applied.

use super::Backend;
use super::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Store, corrupt};
use crate::error::Result;
use crate::model::{Millis, OutboxBacklog, PublishStatus, now_millis};
use sqlx::Row;
use std::collections::HashSet;
use switchyard_common::TenantSlug;

/// Longest publish error kept; the rest is cut.
const ERROR_MAX: usize = 1000;

impl Store {
    /// Records that `revision` of `tenant`'s policy, sealed with the policy key `key`, is on
    /// the bus (the revision never goes back) and clears its publish error.
    pub async fn record_published(
        &self,
        tenant: &TenantSlug,
        revision: u64,
        key: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_publish_status \
             (tenant_id, published_revision, published_at, policy_key, last_error, last_error_at) \
             SELECT id, $2, $3, $4, '', NULL FROM tenants WHERE slug = $1 \
             ON CONFLICT (tenant_id) DO UPDATE SET \
             published_revision = CASE \
               WHEN excluded.published_revision > tenant_publish_status.published_revision \
               THEN excluded.published_revision \
               ELSE tenant_publish_status.published_revision END, \
             published_at = excluded.published_at, policy_key = excluded.policy_key, \
             last_error = '', last_error_at = NULL",
        )
        .bind(tenant.as_str())
        .bind(revision as i64)
        .bind(now_millis())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records why publishing `tenant`'s policy failed.
    pub async fn record_publish_error(&self, tenant: &TenantSlug, error: &str) -> Result<()> {
        let error: String = error.chars().take(ERROR_MAX).collect();
        sqlx::query(
            "INSERT INTO tenant_publish_status \
             (tenant_id, published_revision, published_at, policy_key, last_error, last_error_at) \
             SELECT id, 0, NULL, '', $2, $3 FROM tenants WHERE slug = $1 \
             ON CONFLICT (tenant_id) DO UPDATE SET \
             last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        )
        .bind(tenant.as_str())
        .bind(error)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tenants whose last publish failed, with their current policy revision.
    pub async fn publish_failures(&self, limit: u32) -> Result<Vec<(TenantSlug, u64)>> {
        let rows = sqlx::query(
            "SELECT t.slug, t.policy_revision FROM tenant_publish_status s \
             JOIN tenants t ON t.id = s.tenant_id \
             WHERE s.last_error <> '' ORDER BY t.slug LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let slug: String = r.try_get(0)?;
                let slug = TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?;
                Ok((slug, r.try_get::<i64, _>(1)?.max(0) as u64))
            })
            .collect()
    }

    /// `tenant`'s publish status (the default before its first publish).
    pub async fn publish_status(&self, tenant: &TenantSlug) -> Result<PublishStatus> {
        let row = sqlx::query(
            "SELECT s.published_revision, s.published_at, s.last_error, s.last_error_at \
             FROM tenant_publish_status s JOIN tenants t ON t.id = s.tenant_id \
             WHERE t.slug = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(PublishStatus::default());
        };
        Ok(PublishStatus {
            published_revision: row.try_get::<i64, _>(0)?.max(0) as u64,
            published_at: row.try_get::<Option<Millis>, _>(1)?,
            error: row.try_get(2)?,
            error_at: row.try_get::<Option<Millis>, _>(3)?,
        })
    }

    /// Tenants whose policy was last published sealed with another policy key than `key`,
    /// or with a key not on record (published before keys were recorded). A tenant with a
    /// change still in the outbox is left out: the publisher seals it with the current key
    /// anyway, and a new tenant has no status yet.
    pub async fn sealed_with_other_key(&self, key: &str, limit: u32) -> Result<Vec<TenantSlug>> {
        let rows = sqlx::query(
            "SELECT t.slug FROM tenants t \
             LEFT JOIN tenant_publish_status s ON s.tenant_id = t.id \
             WHERE (s.tenant_id IS NULL OR (s.published_revision > 0 AND s.policy_key <> $1)) \
             AND NOT EXISTS (SELECT 1 FROM policy_outbox o WHERE o.tenant_slug = t.slug) \
             ORDER BY t.slug LIMIT $2",
        )
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let slug: String = r.try_get(0)?;
                TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))
            })
            .collect()
    }

    /// Gives `tenant`'s policy a new revision without changing it, so the publisher
    /// publishes it afresh (sealed with the current policy key).
    pub async fn touch_policy(&self, tenant: &TenantSlug) -> Result<()> {
        let (tx, rev) = self.begin_change().await?;
        self.commit_change(tx, tenant, rev, true).await
    }

    /// How many outbox entries wait, and when the oldest was written.
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        let row = sqlx::query("SELECT COUNT(*), MIN(created_at) FROM policy_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(OutboxBacklog {
            entries: row.try_get::<i64, _>(0)?.max(0) as u64,
            oldest_at: row.try_get::<Option<Millis>, _>(1)?,
        })
    }

    /// Whether every migration this build knows is applied.
    pub async fn migrations_applied(&self) -> Result<bool> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            // No migration table yet: nothing is applied.
            Err(sqlx::Error::Database(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let applied = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<std::result::Result<HashSet<i64>, _>>()
            .map_err(|_| corrupt("migration version"))?;
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .all(|m| applied.contains(&m.version)))
    }
}
