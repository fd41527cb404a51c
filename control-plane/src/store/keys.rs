//! API keys: argon2id verifiers, never the secret.

use super::*;
use crate::audit::{Change, snapshot};

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: KeyId,
    pub role: Role,
    pub description: String,
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub verifier: String,
    pub expires_at: Option<Millis>,
}

pub(super) fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
    let id: String = row.try_get(0)?;
    let slug: String = row.try_get(1)?;
    let role: String = row.try_get(2)?;
    Ok(ApiKey {
        id: KeyId::parse(&id).map_err(|_| corrupt("key id"))?,
        tenant: TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?,
        role: Role::parse(&role).ok_or_else(|| corrupt("key role"))?,
        description: row.try_get(3)?,
        requests_per_second: opt_u32_col(row, "requests_per_second")?,
        burst: opt_u32_col(row, "burst")?,
        verifier: row.try_get(6)?,
        created_at: row.try_get(7)?,
        expires_at: row.try_get(8)?,
        last_used_at: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
    })
}

impl Store {
    pub async fn create_api_key(&self, slug: &TenantSlug, key: NewApiKey) -> Result<ApiKey> {
        let (mut tx, rev) = self.begin_change().await?;
        let tenant_id = Self::require_tenant(&mut tx, slug).await?;
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, role, description, requests_per_second, burst, \
             verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id.as_str())
        .bind(&tenant_id)
        .bind(key.role.as_str())
        .bind(&key.description)
        .bind(key.requests_per_second.map(i64::from))
        .bind(key.burst.map(i64::from))
        .bind(&key.verifier)
        .bind(now_millis())
        .bind(key.expires_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists(format!(
                    "API key {:?}",
                    key.id.as_str()
                )));
            }
            other => other?,
        };
        let created = Self::key_in(&mut tx, slug, &key.id).await?;
        let change = Change::new(
            "CreateApiKey",
            format!("key/{slug}/{}", key.id),
            None,
            Some(snapshot::api_key(&created)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_api_key(slug, &key.id).await
    }

    pub(super) async fn key_in(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
        id: &KeyId,
    ) -> Result<ApiKey> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE t.slug = $1 AND k.id = $2"
        ))
        .bind(slug.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("API key {id} of tenant {slug}")))?;
        key_from_row(&row)
    }

    pub async fn get_api_key(&self, slug: &TenantSlug, id: &KeyId) -> Result<ApiKey> {
        let mut conn = self.pool.acquire().await?;
        Self::key_in(&mut conn, slug, id).await
    }

    pub async fn list_api_keys(
        &self,
        slug: &TenantSlug,
        include_revoked: bool,
    ) -> Result<Vec<ApiKey>> {
        let mut conn = self.pool.acquire().await?;
        Self::require_tenant(&mut conn, slug).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE t.slug = $1 AND ($2 = 1 OR k.revoked_at IS NULL) ORDER BY k.created_at, k.id"
        ))
        .bind(slug.as_str())
        .bind(i64::from(include_revoked))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key. Revoking a revoked key changes nothing and returns it as it is.
    pub async fn revoke_api_key(&self, slug: &TenantSlug, id: &KeyId) -> Result<ApiKey> {
        let (mut tx, rev) = self.begin_change().await?;
        let key = Self::key_in(&mut tx, slug, id).await?;
        if key.revoked_at.is_some() {
            tx.rollback().await?;
            return Ok(key);
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let revoked = Self::key_in(&mut tx, slug, id).await?;
        let change = Change::new(
            "RevokeApiKey",
            format!("key/{slug}/{id}"),
            Some(snapshot::api_key(&key)),
            Some(snapshot::api_key(&revoked)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_api_key(slug, id).await
    }
}
