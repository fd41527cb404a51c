//! Tool pins: what workers saw each connector's upstream list, the definition approved for
//! each tool, and changed definitions waiting for an operator.
//!
//! Each change takes the revision counter's lock first (as every policy change does), so
//! a sighting and an approval of the same tool never interleave, and takes a new policy
//! revision only when what workers enforce changes: a tool's approved digest (an approval,
//! or a change under auto-approval), or a tool turning pending. A first sighting needs none
//! at once (workers trust a tool they hold no pin for); [`Store::touch_policy`] publishes
//! those pins in one revision for many sightings.

use super::*;
use crate::audit::Change;

/// Pins kept per connector. An upstream that lists more distinct tools over time than this
/// gets no more pins: its tools without one are then held as pending, so it cannot grow
/// the store and every worker's policy without bound.
pub const MAX_TOOL_PINS: usize = 1000;
/// Definitions larger than this are kept by digest only.
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;

/// What a worker's sighting of a tool definition changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// The definition is the approved one: the policy the worker holds lacks its pin.
    Known,
    /// The definition is the one already held for approval.
    StillPending,
    /// The first definition of a new tool, now approved; the tenant's policy should carry
    /// it soon ([`Store::touch_policy`]).
    FirstSeen,
    /// A changed definition, held for approval.
    Pending,
    /// A changed definition approved at once (the connector auto-approves).
    Approved,
    /// The connector is at [`MAX_TOOL_PINS`]; nothing recorded.
    Full,
    /// The tenant or connector is gone.
    Gone,
}

/// A changed definition waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTool {
    pub digest: String,
    pub definition: Option<String>,
    pub since: Millis,
}

/// One tool's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPin {
    pub tool: String,
    pub digest: String,
    /// JSON; `None` when it was larger than [`MAX_DEFINITION_BYTES`].
    pub definition: Option<String>,
    pub approved_at: Millis,
    pub pending: Option<PendingTool>,
}

fn bounded(definition: Option<&str>) -> Option<&str> {
    definition.filter(|d| d.len() <= MAX_DEFINITION_BYTES)
}

impl Store {
    /// Holds the revision counter's lock in `tx` without taking a revision.
    async fn lock_revisions(&self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT value FROM revision_counter WHERE id = 1 FOR UPDATE")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The id of connector `name` of tenant `slug` and whether it auto-approves.
    async fn pinned_connector(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
        name: &ConnectorName,
    ) -> Result<Option<(String, bool)>> {
        let row = sqlx::query(
            "SELECT c.id, c.settings FROM connectors c JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.slug = $1 AND c.name = $2",
        )
        .bind(slug.as_str())
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let settings: String = row.try_get(1)?;
        let settings: ConnectorSettings =
            serde_json::from_str(&settings).map_err(|_| corrupt("connector settings"))?;
        Ok(Some((row.try_get(0)?, settings.auto_approve_tools)))
    }

    /// Records that a worker saw `tool` of connector `name` defined as `definition`
    /// (digest `digest`).
    pub async fn record_tool_sighting(
        &self,
        slug: &TenantSlug,
        name: &ConnectorName,
        tool: &str,
        digest: &str,
        definition: Option<&str>,
    ) -> Result<Sighting> {
        let definition = bounded(definition);
        let mut tx = self.pool.begin().await?;
        self.lock_revisions(&mut tx).await?;
        let Some((connector_id, auto_approve)) =
            Self::pinned_connector(&mut tx, slug, name).await?
        else {
            return Ok(Sighting::Gone);
        };
        let row = sqlx::query(
            "SELECT digest, pending_digest FROM tool_pins WHERE connector_id = $1 AND tool = $2",
        )
        .bind(&connector_id)
        .bind(tool)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now_millis();
        let Some(row) = row else {
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM tool_pins WHERE connector_id = $1")
                    .bind(&connector_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count as usize >= MAX_TOOL_PINS {
                return Ok(Sighting::Full);
            }
            sqlx::query(
                "INSERT INTO tool_pins (connector_id, tool, digest, definition, approved_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&connector_id)
            .bind(tool)
            .bind(digest)
            .bind(definition)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Sighting::FirstSeen);
        };
        let approved: String = row.try_get(0)?;
        let pending: Option<String> = row.try_get(1)?;
        if approved == digest {
            // Back to the approved definition: nothing is pending any more.
            if pending.is_some() {
                self.set_pending(&mut tx, &connector_id, tool, None, None, None)
                    .await?;
            }
            tx.commit().await?;
            return Ok(Sighting::Known);
        }
        if auto_approve {
            Self::approve_in(&mut tx, &connector_id, tool, digest, definition, now).await?;
            let rev = Self::next_revision(&mut tx).await?;
            self.commit_change(tx, slug, rev, true).await?;
            return Ok(Sighting::Approved);
        }
        if pending.as_deref() == Some(digest) {
            tx.commit().await?;
            return Ok(Sighting::StillPending);
        }
        self.set_pending(
            &mut tx,
            &connector_id,
            tool,
            Some(digest),
            definition,
            Some(now),
        )
        .await?;
        if pending.is_some() {
            // Already hidden: another changed definition needs no new policy.
            tx.commit().await?;
        } else {
            let rev = Self::next_revision(&mut tx).await?;
            self.commit_change(tx, slug, rev, true).await?;
        }
        Ok(Sighting::Pending)
    }

    async fn set_pending(
        &self,
        tx: &mut Transaction<'static, Any>,
        connector_id: &str,
        tool: &str,
        digest: Option<&str>,
        definition: Option<&str>,
        since: Option<Millis>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE tool_pins SET pending_digest = $1, pending_definition = $2, \
             pending_since = $3 WHERE connector_id = $4 AND tool = $5",
        )
        .bind(digest)
        .bind(definition)
        .bind(since)
        .bind(connector_id)
        .bind(tool)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn approve_in(
        tx: &mut Transaction<'static, Any>,
        connector_id: &str,
        tool: &str,
        digest: &str,
        definition: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE tool_pins SET digest = $1, definition = $2, approved_at = $3, \
             pending_digest = NULL, pending_definition = NULL, pending_since = NULL \
             WHERE connector_id = $4 AND tool = $5",
        )
        .bind(digest)
        .bind(definition)
        .bind(at)
        .bind(connector_id)
        .bind(tool)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The pins of connector `name`, by tool name.
    pub async fn tool_pins(&self, slug: &TenantSlug, name: &ConnectorName) -> Result<Vec<ToolPin>> {
        let mut conn = self.pool.acquire().await?;
        let (connector_id, _) = Self::pinned_connector(&mut conn, slug, name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("connector {name} of tenant {slug}")))?;
        Self::pins_of(&mut conn, &connector_id).await
    }

    async fn pins_of(conn: &mut sqlx::AnyConnection, connector_id: &str) -> Result<Vec<ToolPin>> {
        let rows = sqlx::query(
            "SELECT tool, digest, definition, approved_at, pending_digest, pending_definition, \
             pending_since FROM tool_pins WHERE connector_id = $1 ORDER BY tool",
        )
        .bind(connector_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let pending: Option<String> = r.try_get(4)?;
                Ok(ToolPin {
                    tool: r.try_get(0)?,
                    digest: r.try_get(1)?,
                    definition: r.try_get(2)?,
                    approved_at: r.try_get(3)?,
                    pending: match pending {
                        Some(digest) => Some(PendingTool {
                            digest,
                            definition: r.try_get(5)?,
                            since: r.try_get::<Option<i64>, _>(6)?.unwrap_or_default(),
                        }),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// Approves the pending definitions of `tools` (every pending one when empty) of
    /// connector `name`, in one new policy revision. A named tool that has nothing pending
    /// is FAILED_PRECONDITION and approves nothing. Returns the tools approved.
    pub async fn approve_tools(
        &self,
        slug: &TenantSlug,
        name: &ConnectorName,
        tools: &[String],
    ) -> Result<Vec<String>> {
        let (mut tx, rev) = self.begin_change().await?;
        let (connector_id, _) = Self::pinned_connector(&mut tx, slug, name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("connector {name} of tenant {slug}")))?;
        let pins = Self::pins_of(&mut tx, &connector_id).await?;
        let chosen: Vec<&ToolPin> = if tools.is_empty() {
            pins.iter().filter(|p| p.pending.is_some()).collect()
        } else {
            let mut chosen = Vec::with_capacity(tools.len());
            for tool in tools {
                let pin = pins.iter().find(|p| &p.tool == tool).ok_or_else(|| {
                    Error::NotFound(format!("tool {tool:?} of connector {name} (tenant {slug})"))
                })?;
                if pin.pending.is_none() {
                    return Err(Error::FailedPrecondition(format!(
                        "tool {tool:?} of connector {name} has no pending change to approve"
                    )));
                }
                chosen.push(pin);
            }
            chosen
        };
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_millis();
        for pin in &chosen {
            if let Some(p) = &pin.pending {
                Self::approve_in(
                    &mut tx,
                    &connector_id,
                    &pin.tool,
                    &p.digest,
                    p.definition.as_deref(),
                    now,
                )
                .await?;
            }
        }
        let digests = |pending: bool| -> serde_json::Value {
            chosen
                .iter()
                .map(|p| {
                    let digest = match (&p.pending, pending) {
                        (Some(next), true) => next.digest.clone(),
                        _ => p.digest.clone(),
                    };
                    (p.tool.clone(), serde_json::Value::String(digest))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let change = Change::new(
            "ApproveConnectorTools",
            format!("connector/{slug}/{name}"),
            Some(serde_json::json!({ "tools": digests(false) })),
            Some(serde_json::json!({ "tools": digests(true) })),
        );
        self.commit_audited(tx, slug, rev, true, change).await?;
        Ok(chosen.into_iter().map(|p| p.tool.clone()).collect())
    }

    /// Approved digests of every connector of tenant `slug`, by connector id.
    pub(super) async fn approved_pins_in(
        conn: &mut sqlx::AnyConnection,
        slug: &TenantSlug,
    ) -> Result<std::collections::HashMap<String, Vec<(String, String)>>> {
        let rows = sqlx::query(
            "SELECT p.connector_id, p.tool, p.digest FROM tool_pins p \
             JOIN connectors c ON c.id = p.connector_id JOIN tenants t ON t.id = c.tenant_id \
             WHERE t.slug = $1 ORDER BY p.connector_id, p.tool",
        )
        .bind(slug.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut out: std::collections::HashMap<String, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for r in &rows {
            out.entry(r.try_get(0)?)
                .or_default()
                .push((r.try_get(1)?, r.try_get(2)?));
        }
        Ok(out)
    }
}
