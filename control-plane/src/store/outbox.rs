//! The outbox of policy changes the publisher drains.

use super::*;

impl Store {
    /// The oldest undrained outbox entries.
    pub async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT seq, tenant_slug, revision FROM policy_outbox ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let slug: String = r.try_get(1)?;
                Ok(OutboxEntry {
                    seq: r.try_get(0)?,
                    tenant: TenantSlug::parse(&slug).map_err(|_| corrupt("outbox slug"))?,
                    revision: r.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect()
    }

    /// Removes drained entries up to and including `seq`.
    pub async fn outbox_ack(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM policy_outbox WHERE seq <= $1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
