//! The control plane's store: PostgreSQL in production, SQLite for `switchyard dev`.
//!
//! Both backends run the same SQL through sqlx's `Any` driver, so one implementation and
//! one contract test suite cover both. Every change that alters a tenant's policy runs in
//! one transaction that takes the next value of the global revision counter (its row lock
//! serialises writers, so revisions commit in order) and writes an outbox row.

use crate::error::{Error, Result};
use crate::model::*;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::sync::Arc;
use std::time::Duration;
use switchyard_common::{ConnectorName, KeyId, TenantSlug};
use tokio::sync::watch;

mod isolation;
mod publish;

pub use isolation::ReconcileState;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The revision of the last committed change, to wake the publisher and the reconciler.
    changed: Arc<watch::Sender<u64>>,
}

// Column lists as macros so queries stay `&'static str` literals built with `concat!`.
macro_rules! tenant_columns {
    () => {
        "id, slug, display_name, status, suspend_reason, requests_per_second, burst, \
         max_concurrent_requests, max_sessions, monthly_tool_calls, max_connectors, revision, \
         policy_revision, created_at, updated_at, tier, compute_profile, pool_ready"
    };
}

macro_rules! connector_columns {
    () => {
        "c.id, t.slug, c.name, c.enabled, c.settings, c.revision, c.created_at, c.updated_at"
    };
}

macro_rules! key_columns {
    () => {
        "k.id, t.slug, k.role, k.description, k.requests_per_second, k.burst, k.verifier, \
         k.created_at, k.expires_at, k.last_used_at, k.revoked_at"
    };
}

/// What a tenant update may change. `None` leaves a field as it is. The quota patch is
/// applied to the stored quotas inside the transaction, so concurrent changes to other
/// fields are not overwritten.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    pub display_name: Option<String>,
    pub quotas: Option<QuotaPatch>,
    pub status: Option<(TenantStatus, String)>,
    pub tier: Option<Tier>,
    pub compute_profile: Option<String>,
}

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

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

fn check_etag(what: &str, expected: Option<u64>, current: u64) -> Result<()> {
    match expected {
        Some(given) if given != current => Err(Error::StaleEtag {
            what: what.to_owned(),
            given: given.to_string(),
            current: current.to_string(),
        }),
        _ => Ok(()),
    }
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored {what} is invalid"))
}

fn u32_col(row: &AnyRow, col: &str) -> Result<u32> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| corrupt(col))
}

fn opt_u32_col(row: &AnyRow, col: &str) -> Result<Option<u32>> {
    let v: Option<i64> = row.try_get(col)?;
    v.map(|v| u32::try_from(v).map_err(|_| corrupt(col)))
        .transpose()
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant> {
    let slug: String = row.try_get("slug")?;
    let status: String = row.try_get("status")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: TenantSlug::parse(&slug).map_err(|_| corrupt("tenant slug"))?,
        display_name: row.try_get("display_name")?,
        status: TenantStatus::parse(&status).ok_or_else(|| corrupt("tenant status"))?,
        suspend_reason: row.try_get("suspend_reason")?,
        quotas: Quotas {
            requests_per_second: u32_col(row, "requests_per_second")?,
            burst: u32_col(row, "burst")?,
            max_concurrent_requests: u32_col(row, "max_concurrent_requests")?,
            max_sessions: u32_col(row, "max_sessions")?,
            monthly_tool_calls: row.try_get::<i64, _>("monthly_tool_calls")? as u64,
            max_connectors: u32_col(row, "max_connectors")?,
        },
        placement: Placement {
            tier: Tier::parse(&row.try_get::<String, _>("tier")?)
                .ok_or_else(|| corrupt("tenant tier"))?,
            compute_profile: row.try_get("compute_profile")?,
        },
        pool_ready: row.try_get::<i64, _>("pool_ready")? != 0,
        revision: row.try_get::<i64, _>("revision")? as u64,
        policy_revision: row.try_get::<i64, _>("policy_revision")? as u64,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn connector_from_row(row: &AnyRow, headers: Vec<SealedHeader>) -> Result<Connector> {
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

fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
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
    /// Connects to `postgres://...` or `sqlite://...` (SQLite files are created if missing).
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(Error::invalid(
                "database_url",
                "must start with postgres:// or sqlite:",
            ));
        };
        let options = match backend {
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
            // One writer at a time is SQLite's model; a single connection also keeps
            // transactions from failing with SQLITE_BUSY.
            Backend::Sqlite => AnyPoolOptions::new().max_connections(1),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&sqlite_create_if_missing(url))
            .await?;
        Ok(Self {
            pool,
            backend,
            changed: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Notified after every committed change to a tenant's policy.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for tests that inspect raw rows.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies pending migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a change: a transaction holding the next global revision.
    async fn begin_change(&self) -> Result<(Transaction<'static, Any>, u64)> {
        let mut tx = self.pool.begin().await?;
        let rev = Self::next_revision(&mut tx).await?;
        Ok((tx, rev))
    }

    /// Takes the next global revision in `tx` (and the counter's lock until it ends).
    async fn next_revision(tx: &mut Transaction<'static, Any>) -> Result<u64> {
        let rev: i64 = sqlx::query_scalar(
            "UPDATE revision_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(rev as u64)
    }

    /// Ends a change to `tenant`'s policy: records it in the outbox and commits both.
    async fn commit_change(
        &self,
        mut tx: Transaction<'static, Any>,
        tenant: &TenantSlug,
        rev: u64,
        tenant_exists: bool,
    ) -> Result<()> {
        if tenant_exists {
            sqlx::query("UPDATE tenants SET policy_revision = $1 WHERE slug = $2")
                .bind(rev as i64)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO policy_outbox (tenant_slug, revision, created_at) VALUES ($1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(rev as i64)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.changed.send_replace(rev);
        Ok(())
    }

    pub async fn current_revision(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM revision_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(v as u64)
    }

    // ---- tenants ----

    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        display_name: &str,
        quotas: Quotas,
    ) -> Result<Tenant> {
        self.create_placed_tenant(slug, display_name, quotas, Placement::default())
            .await
    }

    pub async fn create_placed_tenant(
        &self,
        slug: &TenantSlug,
        display_name: &str,
        quotas: Quotas,
        placement: Placement,
    ) -> Result<Tenant> {
        let (mut tx, rev) = self.begin_change().await?;
        let now = now_millis();
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, slug, display_name, status, suspend_reason, \
             requests_per_second, burst, max_concurrent_requests, max_sessions, \
             monthly_tool_calls, max_connectors, revision, policy_revision, created_at, updated_at, \
             tier, compute_profile, pool_ready) \
             VALUES ($1, $2, $3, 'active', '', $4, $5, $6, $7, $8, $9, $10, $10, $11, $11, $12, $13, 0)",
        )
        .bind(&id)
        .bind(slug.as_str())
        .bind(display_name)
        .bind(i64::from(quotas.requests_per_second))
        .bind(i64::from(quotas.burst))
        .bind(i64::from(quotas.max_concurrent_requests))
        .bind(i64::from(quotas.max_sessions))
        .bind(quotas.monthly_tool_calls as i64)
        .bind(i64::from(quotas.max_connectors))
        .bind(rev as i64)
        .bind(now)
        .bind(placement.tier.as_str())
        .bind(&placement.compute_profile)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::AlreadyExists(format!("tenant {slug:?}")));
            }
            other => other?,
        };
        self.commit_change(tx, slug, rev, true).await?;
        self.get_tenant(slug).await
    }

    async fn tenant_in(tx: &mut Transaction<'static, Any>, slug: &TenantSlug) -> Result<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug = $1"
        ))
        .bind(slug.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenant {slug:?}")))?;
        tenant_from_row(&row)
    }

    pub async fn get_tenant(&self, slug: &TenantSlug) -> Result<Tenant> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug = $1"
        ))
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenant {slug:?}")))?;
        tenant_from_row(&row)
    }

    /// Tenants ordered by slug, starting after `after`.
    pub async fn list_tenants(&self, after: Option<&str>, limit: u32) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE slug > $1 ORDER BY slug LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Applies `change` if `etag` (the tenant's revision) still matches.
    pub async fn update_tenant(
        &self,
        slug: &TenantSlug,
        etag: Option<u64>,
        change: TenantChange,
    ) -> Result<Tenant> {
        let (mut tx, rev) = self.begin_change().await?;
        let mut tenant = Self::tenant_in(&mut tx, slug).await?;
        check_etag(&format!("tenant {slug:?}"), etag, tenant.revision)?;
        if let Some(name) = change.display_name {
            tenant.display_name = name;
        }
        if let Some(patch) = change.quotas {
            let quotas = patch.apply(tenant.quotas);
            let connectors: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM connectors WHERE tenant_id = $1")
                    .bind(&tenant.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if connectors > i64::from(quotas.max_connectors) {
                return Err(Error::FailedPrecondition(format!(
                    "tenant {slug:?} has {connectors} connectors, more than the new \
                     max_connectors {}; delete some first",
                    quotas.max_connectors
                )));
            }
            tenant.quotas = quotas;
        }
        if let Some((status, reason)) = change.status {
            tenant.status = status;
            tenant.suspend_reason = reason;
        }
        if let Some(tier) = change.tier
            && tier != tenant.placement.tier
        {
            // The pool of the new tier has to become ready before it serves.
            tenant.placement.tier = tier;
            tenant.pool_ready = false;
        }
        if let Some(profile) = change.compute_profile {
            tenant.placement.compute_profile = profile;
        }
        let q = tenant.quotas;
        sqlx::query(
            "UPDATE tenants SET display_name = $1, status = $2, suspend_reason = $3, \
             requests_per_second = $4, burst = $5, max_concurrent_requests = $6, \
             max_sessions = $7, monthly_tool_calls = $8, max_connectors = $9, revision = $10, \
             updated_at = $11, tier = $13, compute_profile = $14, pool_ready = $15 WHERE id = $12",
        )
        .bind(&tenant.display_name)
        .bind(tenant.status.as_str())
        .bind(&tenant.suspend_reason)
        .bind(i64::from(q.requests_per_second))
        .bind(i64::from(q.burst))
        .bind(i64::from(q.max_concurrent_requests))
        .bind(i64::from(q.max_sessions))
        .bind(q.monthly_tool_calls as i64)
        .bind(i64::from(q.max_connectors))
        .bind(rev as i64)
        .bind(now_millis())
        .bind(&tenant.id)
        .bind(tenant.placement.tier.as_str())
        .bind(&tenant.placement.compute_profile)
        .bind(i64::from(tenant.pool_ready))
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, slug, rev, true).await?;
        self.get_tenant(slug).await
    }

    /// Deletes a tenant with its connectors and keys.
    pub async fn delete_tenant(&self, slug: &TenantSlug, etag: Option<u64>) -> Result<()> {
        let (mut tx, rev) = self.begin_change().await?;
        let tenant = Self::tenant_in(&mut tx, slug).await?;
        check_etag(&format!("tenant {slug:?}"), etag, tenant.revision)?;
        for sql in [
            "DELETE FROM connector_headers WHERE connector_id IN \
             (SELECT id FROM connectors WHERE tenant_id = $1)",
            "DELETE FROM connectors WHERE tenant_id = $1",
            "DELETE FROM api_keys WHERE tenant_id = $1",
            "DELETE FROM tenants WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&tenant.id).execute(&mut *tx).await?;
        }
        self.commit_change(tx, slug, rev, false).await
    }

    // ---- connectors ----

    async fn headers_of(
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

    async fn write_headers(
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

    async fn connector_in(
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
        .ok_or_else(|| Error::NotFound(format!("connector {name:?} of tenant {slug:?}")))?;
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
                "tenant {slug:?} already has {count} connectors, its max_connectors quota; \
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
                    "connector {:?} of tenant {slug:?}",
                    new.name.as_str()
                )));
            }
            other => other?,
        };
        Self::write_headers(&mut tx, &id, &headers).await?;
        self.commit_change(tx, slug, rev, true).await?;
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
            let headers = Self::headers_of(&mut conn, &id).await?;
            out.push(connector_from_row(row, headers)?);
        }
        Ok(out)
    }

    async fn require_tenant(conn: &mut sqlx::AnyConnection, slug: &TenantSlug) -> Result<String> {
        sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {slug:?}")))
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
        self.commit_change(tx, slug, rev, true).await?;
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
        self.commit_change(tx, slug, rev, true).await
    }

    // ---- API keys ----

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
        self.commit_change(tx, slug, rev, true).await?;
        self.get_api_key(slug, &key.id).await
    }

    async fn key_in(
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
        .ok_or_else(|| Error::NotFound(format!("API key {:?} of tenant {slug:?}", id.as_str())))?;
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
        self.commit_change(tx, slug, rev, true).await?;
        self.get_api_key(slug, id).await
    }

    // ---- policy ----

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
        let rows = sqlx::query(concat!(
            "SELECT ",
            connector_columns!(),
            " FROM connectors c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.slug = $1 ORDER BY c.name"
        ))
        .bind(slug.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut connectors = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            let headers = Self::headers_of(&mut tx, &id).await?;
            connectors.push(connector_from_row(row, headers)?);
        }
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
        }))
    }

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

    // ---- operator tokens ----

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

/// sqlx opens SQLite files only if they exist unless `mode=rwc` is given.
fn sqlite_create_if_missing(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}
