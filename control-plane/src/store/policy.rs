//! What the policy compiler reads: a tenant's whole state in one consistent read.

use super::keys::key_from_row;
use super::*;

impl Store {
    /// Reads a tenant with its connectors and keys in one snapshot, or `None` if it does
    /// not exist (was deleted).
    pub async fn tenant_state(&self, slug: &TenantSlug) -> Result<Option<TenantState>> {
        // A transaction gives PostgreSQL one snapshot only at REPEATABLE READ; SQLite's
        // single connection is a snapshot by itself.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let tenant = match Self::tenant_in(&mut tx, slug).await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let connectors = Self::connectors_in(&mut tx, slug).await?;
        let tool_pins = Self::approved_pins_in(&mut tx, slug).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE t.slug = $1 ORDER BY k.id"
        ))
        .bind(slug.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let keys = rows.iter().map(key_from_row).collect::<Result<_>>()?;
        let (period, _) = month_of(now_millis());
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT tool_calls FROM tenant_usage WHERE tenant_id = $1 AND period = $2",
        )
        .bind(&tenant.id)
        .bind(&period)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(TenantState {
            tenant,
            connectors,
            keys,
            tool_calls_this_month: used.unwrap_or(0).max(0) as u64,
            tool_pins,
        }))
    }
}
