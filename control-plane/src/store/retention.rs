//! Audit retention in the store: expired records removed from the start of each chain, the
//! cut placed so the first record kept is one a signed checkpoint covers.

use super::*;

impl Store {
    /// Removes expired records from the start of every chain, keeping each chain's newest
    /// record: those older than the tenant's own retention, or than `default_keep` for
    /// tenants that set none, the platform's chain and deleted tenants' chains. `now` is
    /// the current time. How many records were removed.
    pub async fn prune_audit(&self, now: Millis, default_keep: std::time::Duration) -> Result<u64> {
        let rows = sqlx::query(
            "SELECT h.chain, t.audit FROM audit_heads h LEFT JOIN tenants t ON t.slug = h.chain",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut removed = 0;
        for row in rows {
            let chain: String = row.try_get(0)?;
            let audit: Option<String> = row.try_get(1)?;
            let days = audit
                .and_then(|a| serde_json::from_str::<AuditSettings>(&a).ok())
                .map_or(0, |a| a.retention_days);
            let keep = match days {
                0 => default_keep,
                d => std::time::Duration::from_secs(u64::from(d) * 86_400),
            };
            let before = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
            removed += self.prune_chain(&chain, before).await?;
        }
        Ok(removed)
    }

    /// Where `chain`'s pruning may cut (the last record to remove) when its records up to
    /// `expired` have expired: just before the newest checkpoint at or before the first
    /// record that has not, so the chain still verifies from a signature. A chain with no
    /// checkpoint at all (no signing key) is cut at `expired`.
    async fn prune_cut(
        tx: &mut Transaction<'static, Any>,
        chain: &str,
        expired: i64,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(CASE WHEN seq <= $2 THEN seq END), COUNT(*) FROM audit_checkpoints \
             WHERE chain = $1",
        )
        .bind(chain)
        .bind(expired + 1)
        .fetch_one(&mut **tx)
        .await?;
        let anchor: Option<i64> = row.try_get(0)?;
        let checkpoints: i64 = row.try_get(1)?;
        Ok(match (checkpoints, anchor) {
            (0, _) => Some(expired),
            (_, anchor) => anchor.map(|a| a - 1),
        })
    }

    async fn prune_chain(&self, chain: &str, before: Millis) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // The head's row lock: appends to this chain wait.
        let row = sqlx::query(
            "UPDATE audit_heads SET pruned_through = pruned_through WHERE chain = $1 \
             RETURNING seq, pruned_through",
        )
        .bind(chain)
        .fetch_one(&mut *tx)
        .await?;
        let (last, pruned): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let expired: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_events WHERE chain = $1 AND at < $2")
                .bind(chain)
                .bind(before)
                .fetch_one(&mut *tx)
                .await?;
        let expired = expired.unwrap_or(0).min(last - 1);
        let cut = match Self::prune_cut(&mut tx, chain, expired).await? {
            Some(cut) if cut > pruned => cut,
            _ => return Ok(0),
        };
        match self.backend {
            Backend::Postgres => {
                sqlx::query("SET LOCAL switchyard.audit_pruning = 'on'")
                    .execute(&mut *tx)
                    .await?;
            }
            Backend::Sqlite => {
                sqlx::query("INSERT INTO audit_pruning (active) VALUES (1)")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let removed = sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq <= $2")
            .bind(chain)
            .bind(cut)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if self.backend == Backend::Sqlite {
            sqlx::query("DELETE FROM audit_pruning")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE audit_heads SET pruned_through = $1 WHERE chain = $2")
            .bind(cut)
            .bind(chain)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }
}
