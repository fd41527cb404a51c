//! Connectors and their sealed header values.

use super::*;
use crate::audit::{Change, snapshot};

/// A connector to create; `seal_headers` is given the tenant id and the new connector id,
/// which sealed header values must be bound to.
pub struct NewConnector<F> {
    pub name: ConnectorName,
    pub enabled: bool,
    pub settings: ConnectorSettings,
    pub seal_headers: F,
}

impl<F> std::fmt::Debug for NewConnector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(super) fn connector_from_row(row: &AnyRow, headers: Vec<SealedHeader>) -> Result<Connector> {
    let slug: String = row.try_get(1)?;
    let name: String = row.try_get(2)?;
    let settings: String = row.try_get(4)?;
    Ok(Connector {
        id: row.try_get(0)?,
        tenant: TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?,
        name: ConnectorName::parse(&name).map_err(|_| corrupt("connector name"))?,
        enabled: row.try_get::<i64, _>(3)? != 0,
        settings: serde_json::from_str(&settings).map_err(|_| corrupt("connector settings"))?,
        headers,
        revision: row.try_get::<i64, _>(5)? as u64,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
    })
}

impl Store {
    pub(super) async fn headers_of(
        conn: &mut sqlx::AnyConnection,
        connector_id: &str,
    ) -> Result<Vec<SealedHeader>> {
        let rows = sqlx::query(
            "SELECT name, sealed_value FROM connector_headers WHERE connector_id = $1 \
             ORDER BY position",
        )
        .bind(connector_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SealedHeader {
                    name: r.try_get(0)?,
                    sealed_value: r.try_get(1)?,
                })
            })
            .collect()
    }

    pub(super) async fn write_headers(
        tx: &mut Transaction<'static, Any>,
        connector_id: &str,
        headers: &[SealedHeader],
    ) -> Result<()> {
        sqlx::query("DELETE FROM connector_headers WHERE connector_id = $1")
            .bind(connector_id)
            .execute(&mut **tx)
            .await?;
        for (position, h) in headers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO connector_headers (connector_id, position, name, sealed_value) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(connector_id)
            .bind(position as i64)
            .bind(&h.name)
            .bind(&h.sealed_value)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn connector_in(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
        name: &ConnectorName,
    ) -> Result<Connector> {
        let row = sqlx::query(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.slug = $1 AND c.name = $2"
        ))
        .bind(slug.as_str())
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("connector {name} of tenant {slug}")))?;
        let id: String = row.try_get(0)?;
        let headers = Self::headers_of(conn, &id).await?;
        connector_from_row(&row, headers)
    }

    /// Creates a connector unless the tenant is at its `max_connectors`.
    pub async fn create_connector<F>(
        &self,
        slug: &TenantSlug,
        new: NewConnector<F>,
    ) -> Result<Connector>
    where
        F: FnOnce(&str, &str) -> Result<Vec<SealedHeader>>,
    {
        let (mut tx, rev) = self.begin_change().await?;
        let tenant = Self::tenant_in(&mut tx, slug).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connectors WHERE tenant_id = $1")
            .bind(&tenant.id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= i64::from(tenant.quotas.max_connectors) {
            return Err(Error::FailedPrecondition(format!(
                "tenant {slug} already has {count} connectors, its max_connectors quota; \
                 raise the quota or delete a connector first"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let headers = (new.seal_headers)(&tenant.id, &id)?;
        let settings = serde_json::to_string(&new.settings)
            .map_err(|e| Error::Internal(format!("encoding connector settings: {e}")))?;
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO connectors (id, tenant_id, name, kind, enabled, settings, revision, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(&tenant.id)
        .bind(new.name.as_str())
        .bind(new.settings.kind.name())
        .bind(i64::from(new.enabled))
        .bind(settings)
        .bind(rev as i64)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists(format!(
                    "connector {:?} of tenant {slug}",
                    new.name.as_str()
                )));
            }
            other => other?,
        };
        Self::write_headers(&mut tx, &id, &headers).await?;
        let created = Self::connector_in(&mut tx, slug, &new.name).await?;
        let change = Change::new(
            "CreateConnector",
            format!("connector/{slug}/{}", new.name),
            None,
            Some(snapshot::connector(&created)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_connector(slug, &new.name).await
    }

    pub async fn get_connector(
        &self,
        slug: &TenantSlug,
        name: &ConnectorName,
    ) -> Result<Connector> {
        let mut conn = self.pool.acquire().await?;
        Self::connector_in(&mut conn, slug, name).await
    }

    pub async fn list_connectors(&self, slug: &TenantSlug) -> Result<Vec<Connector>> {
        let mut conn = self.pool.acquire().await?;
        Self::require_tenant(&mut conn, slug).await?;
        Self::connectors_in(&mut conn, slug).await
    }

    /// Every connector of tenant `slug`, by name, with its sealed headers.
    pub(super) async fn connectors_in(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
    ) -> Result<Vec<Connector>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.slug = $1 ORDER BY c.name"
        ))
        .bind(slug.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            let headers = Self::headers_of(conn, &id).await?;
            out.push(connector_from_row(row, headers)?);
        }
        Ok(out)
    }

    pub(super) async fn require_tenant(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
    ) -> Result<String> {
        sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {slug}")))
    }

    /// Applies `change` to the connector if `etag` still matches. `change` receives the
    /// tenant id, which newly sealed header values must be bound to.
    pub async fn update_connector<F>(
        &self,
        slug: &TenantSlug,
        name: &ConnectorName,
        etag: Option<u64>,
        change: F,
    ) -> Result<Connector>
    where
        F: FnOnce(&str, &mut Connector) -> Result<()>,
    {
        let (mut tx, rev) = self.begin_change().await?;
        let tenant_id = Self::require_tenant(&mut tx, slug).await?;
        let mut connector = Self::connector_in(&mut tx, slug, name).await?;
        check_etag(
            &format!("connector {:?}", name.as_str()),
            etag,
            connector.revision,
        )?;
        let before = snapshot::connector(&connector);
        change(&tenant_id, &mut connector)?;
        let settings = serde_json::to_string(&connector.settings)
            .map_err(|e| Error::Internal(format!("encoding connector settings: {e}")))?;
        sqlx::query(
            "UPDATE connectors SET kind = $1, enabled = $2, settings = $3, revision = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(connector.settings.kind.name())
        .bind(i64::from(connector.enabled))
        .bind(settings)
        .bind(rev as i64)
        .bind(now_millis())
        .bind(&connector.id)
        .execute(&mut *tx)
        .await?;
        Self::write_headers(&mut tx, &connector.id, &connector.headers).await?;
        let change = Change::new(
            "UpdateConnector",
            format!("connector/{slug}/{name}"),
            Some(before),
            Some(snapshot::connector(&connector)),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        self.get_connector(slug, name).await
    }

    pub async fn delete_connector(
        &self,
        slug: &TenantSlug,
        name: &ConnectorName,
        etag: Option<u64>,
    ) -> Result<()> {
        let (mut tx, rev) = self.begin_change().await?;
        let connector = Self::connector_in(&mut tx, slug, name).await?;
        check_etag(
            &format!("connector {:?}", name.as_str()),
            etag,
            connector.revision,
        )?;
        sqlx::query("DELETE FROM connector_headers WHERE connector_id = $1")
            .bind(&connector.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM connectors WHERE id = $1")
            .bind(&connector.id)
            .execute(&mut *tx)
            .await?;
        let change = Change::new(
            "DeleteConnector",
            format!("connector/{slug}/{name}"),
            Some(snapshot::connector(&connector)),
            None,
        );
        self.commit_audited(tx, slug, rev, true, change).await
    }
}
