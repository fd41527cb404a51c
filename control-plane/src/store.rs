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

// Column lists as macros so queries stay `&'static str` literals built with `concat!`.
macro_rules! tenant_columns {
    () => {
        "id, slug, display_name, status, suspend_reason, requests_per_second, burst, \
         max_concurrent_requests, max_sessions, monthly_tool_calls, max_connectors, revision, \
         policy_revision, created_at, updated_at, tier, compute_profile, pool_ready, \
         max_concurrent_other_requests, audit, identity"
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

mod audit;
mod checkpoints;
mod connectors;
mod daily;
mod grants;
mod isolation;
mod keys;
mod outbox;
mod pins;
mod policy;
mod publish;
mod retention;
mod tenants;
mod tokens;
mod usage;

pub use audit::{AuditFilter, ChainHead, NewRecord};
pub use connectors::NewConnector;
pub use daily::{DailyRefusals, UsageDay};
pub use isolation::ReconcileState;
pub use keys::NewApiKey;
pub use pins::{MAX_DEFINITION_BYTES, MAX_TOOL_PINS, PendingTool, Sighting, ToolPin};
pub use tenants::TenantChange;
pub use usage::{CallDetail, UsageRecord};

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
        Self::record_change(&mut tx, tenant, rev, tenant_exists).await?;
        tx.commit().await?;
        self.changed.send_replace(rev);
        Ok(())
    }

    /// Records in `tx` that `tenant`'s policy changed at `rev` (its outbox row).
    async fn record_change(
        tx: &mut Transaction<'static, Any>,
        tenant: &TenantSlug,
        rev: u64,
        tenant_exists: bool,
    ) -> Result<()> {
        if tenant_exists {
            sqlx::query("UPDATE tenants SET policy_revision = $1 WHERE slug = $2")
                .bind(rev as i64)
                .bind(tenant.as_str())
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO policy_outbox (tenant_slug, revision, created_at) VALUES ($1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(rev as i64)
        .bind(now_millis())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn current_revision(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM revision_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(v as u64)
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
