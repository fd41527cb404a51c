//! Operator tokens for the admin API: SHA-256 of high-entropy tokens.

use super::*;

impl Store {
    /// Stores an operator token's hash; returns false if it was already known.
    pub async fn add_operator_token(&self, token_hash: &str, name: &str) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO operator_tokens (token_hash, name, created_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(name)
        .bind(now_millis())
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn operator_token_known(&self, token_hash: &str) -> Result<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT name FROM operator_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }
}
