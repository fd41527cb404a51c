//! Signed checkpoints of the audit chains (see `audit::checkpoint`).

use super::*;
use crate::audit::checkpoint::{Checkpoint, Signer};

impl Store {
    /// Signs the head of every chain that moved since its last checkpoint; how many were
    /// signed. A checkpoint another replica wrote first is kept.
    pub async fn sign_audit_heads(&self, signer: &Signer) -> Result<usize> {
        let heads = sqlx::query(
            "SELECT h.chain, h.seq, h.hash FROM audit_heads h \
             WHERE h.seq > COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c \
                                     WHERE c.chain = h.chain), 0) \
             ORDER BY h.chain",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = now_millis();
        let mut signed = 0;
        for row in heads {
            let (chain, seq, hash): (String, i64, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let cp = signer.sign(&chain, seq, &hash, now);
            signed += sqlx::query(
                "INSERT INTO audit_checkpoints (chain, seq, hash, at, key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain, seq) DO NOTHING",
            )
            .bind(&cp.chain)
            .bind(cp.seq)
            .bind(&cp.hash)
            .bind(cp.at)
            .bind(&cp.key_id)
            .bind(&cp.signature)
            .execute(&self.pool)
            .await?
            .rows_affected() as usize;
        }
        Ok(signed)
    }

    /// The checkpoints of `chain` at records `from` to `to`, in order.
    pub async fn audit_checkpoints(
        &self,
        chain: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT chain, seq, hash, at, key_id, signature FROM audit_checkpoints \
             WHERE chain = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(chain)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Checkpoint {
                    chain: row.try_get(0)?,
                    seq: row.try_get(1)?,
                    hash: row.try_get(2)?,
                    at: row.try_get(3)?,
                    key_id: row.try_get(4)?,
                    signature: row.try_get(5)?,
                })
            })
            .collect()
    }
}
