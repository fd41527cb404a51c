//! Operator tokens for the admin API: SHA-256 of high-entropy tokens, with an id to name
//! them by, an optional expiry and a revocation time. Revoked tokens are kept, so a token
//! given again (the bootstrap token at every start) stays revoked.

use super::*;
use crate::audit::{Change, PLATFORM_CHAIN};
use crate::model::OperatorToken;
use serde_json::json;

const TOKEN_COLUMNS: &str = "id, name, created_at, expires_at, revoked_at";

fn token_from_row(row: &AnyRow) -> Result<OperatorToken> {
    Ok(OperatorToken {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        created_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
    })
}

impl Store {
    /// Stores an operator token's hash under `id`; returns false if the hash was already
    /// known (revoked or not: a known token is never changed here).
    pub async fn add_operator_token(
        &self,
        token_hash: &str,
        id: &str,
        name: &str,
        expires_at: Option<Millis>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "INSERT INTO operator_tokens (token_hash, id, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(id)
        .bind(name)
        .bind(now_millis())
        .bind(expires_at)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let after = json!({ "name": name, "expires_at": expires_at, "revoked_at": null });
        let change = Change::new(
            "CreateOperatorToken",
            format!("operator-token/{id}"),
            None,
            Some(after),
        );
        Self::append_change(&mut tx, PLATFORM_CHAIN, change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The id of the token with this hash if it is valid now: known, not revoked, not
    /// expired.
    pub async fn operator_token_id(&self, token_hash: &str) -> Result<Option<String>> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM operator_tokens WHERE token_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found)
    }

    pub async fn get_operator_token(&self, id: &str) -> Result<OperatorToken> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM operator_tokens WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("operator token {id}")))?;
        token_from_row(&row)
    }

    /// Operator tokens by creation; revoked and expired ones only with `include_revoked`.
    pub async fn list_operator_tokens(&self, include_revoked: bool) -> Result<Vec<OperatorToken>> {
        let filter = if include_revoked {
            ""
        } else {
            "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM operator_tokens {filter} ORDER BY created_at, id"
        )));
        let rows = if include_revoked {
            rows.fetch_all(&self.pool).await?
        } else {
            rows.bind(now_millis()).fetch_all(&self.pool).await?
        };
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes token `id`, unless it is the last valid one (FAILED_PRECONDITION: nobody
    /// could use the admin API afterwards). Revoking a revoked token changes nothing.
    pub async fn revoke_operator_token(&self, id: &str) -> Result<OperatorToken> {
        let mut tx = self.pool.begin().await?;
        // One revocation at a time: two racing to revoke the last two tokens must not
        // both see the other still valid.
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE operator_tokens IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let now = now_millis();
        let found: Option<Option<Millis>> =
            sqlx::query_scalar("SELECT revoked_at FROM operator_tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(revoked) = found else {
            return Err(Error::NotFound(format!("operator token {id}")));
        };
        if revoked.is_none() {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM operator_tokens WHERE id <> $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Err(Error::FailedPrecondition(
                    "it is the last valid operator token; create another first".into(),
                ));
            }
            sqlx::query("UPDATE operator_tokens SET revoked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let change = Change::new(
                "RevokeOperatorToken",
                format!("operator-token/{id}"),
                Some(json!({ "revoked_at": null })),
                Some(json!({ "revoked_at": now })),
            );
            Self::append_change(&mut tx, PLATFORM_CHAIN, change).await?;
        }
        tx.commit().await?;
        self.get_operator_token(id).await
    }

    /// Whether any operator token was ever stored (valid or not).
    pub async fn has_operator_tokens(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
