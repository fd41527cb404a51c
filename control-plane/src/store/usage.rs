//! Usage folded from workers' events: tool calls per tenant and month, each event once.

use super::*;

impl Store {
    /// Folds in one usage event: the key's last-used time (never backwards) and, for a
    /// tool call, the tenant's count for the event's month. An event id already folded in
    /// changes nothing, so redeliveries are harmless. The call that uses up the monthly
    /// quota also takes the tenant a new policy revision, in the same transaction, so
    /// workers learn of it. Returns whether the event was new.
    pub async fn record_usage(
        &self,
        event_id: &str,
        tenant: &TenantSlug,
        key: Option<&KeyId>,
        tool_call: bool,
        at: Millis,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO usage_events_seen (event_id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.commit().await?;
            return Ok(false);
        }
        if let Some(key) = key {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(at)
            .bind(key.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if !tool_call {
            tx.commit().await?;
            return Ok(true);
        }
        let row = sqlx::query("SELECT id, monthly_tool_calls FROM tenants WHERE slug = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            // The tenant is gone; nothing to count against.
            tx.commit().await?;
            return Ok(true);
        };
        let (tenant_id, limit): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        let (period, _) = month_of(at);
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO tenant_usage (tenant_id, period, tool_calls) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, period) DO UPDATE SET tool_calls = tenant_usage.tool_calls + 1 \
             RETURNING tool_calls",
        )
        .bind(&tenant_id)
        .bind(&period)
        .fetch_one(&mut *tx)
        .await?;
        let (current, _) = month_of(now_millis());
        if limit > 0 && count == limit && period == current {
            // Used up: workers must refuse further tool calls until the month ends.
            let rev = Self::next_revision(&mut tx).await?;
            return self
                .commit_change(tx, tenant, rev, true)
                .await
                .map(|()| true);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets usage event ids seen before `before`.
    pub async fn prune_seen_events(&self, before: Millis) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM usage_events_seen WHERE seen_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// The tenant's tool calls this month against its quota.
    pub async fn usage(&self, slug: &TenantSlug) -> Result<Usage> {
        let tenant = self.get_tenant(slug).await?;
        let (period, resets_at) = month_of(now_millis());
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT tool_calls FROM tenant_usage WHERE tenant_id = $1 AND period = $2",
        )
        .bind(&tenant.id)
        .bind(&period)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Usage {
            period,
            tool_calls: used.unwrap_or(0).max(0) as u64,
            monthly_tool_calls: tenant.quotas.monthly_tool_calls,
            resets_at,
        })
    }
}
