//! Usage folded from workers' events: tool calls per tenant and month, each event once.

use super::audit::NewRecord;
use super::*;
use crate::audit;

/// One usage event to fold in.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub event_id: String,
    pub tenant: TenantSlug,
    pub key: Option<KeyId>,
    pub tool_call: bool,
    pub at: Millis,
    /// What the audit trail records of the call; `None` records nothing.
    pub call: Option<CallDetail>,
}

/// A call as the audit trail records it.
#[derive(Debug, Clone)]
pub struct CallDetail {
    /// The subject of the access token the call was made with (its actor), for a call
    /// not made with an API key.
    pub subject: Option<String>,
    /// `tools/call`, `resources/read` or `prompts/get`.
    pub method: String,
    /// The tool or prompt name, or resource URI, as the client gave it.
    pub target: String,
    pub connector: String,
    pub ok: bool,
    pub duration_ms: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// A digest of the client session's id.
    pub session: Option<String>,
    /// The worker that served it.
    pub worker: Option<String>,
    /// Its trace, when the worker traced it.
    pub trace_id: Option<String>,
    /// A digest of its arguments, when its tenant records digests.
    pub arguments_digest: Option<String>,
    /// Its arguments redacted, when its tenant records them: their JSON, or the text of
    /// arguments cut to size.
    pub arguments: Option<serde_json::Value>,
}

/// A call record's detail.
fn call_detail(call: &CallDetail, at: Millis) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "target": call.target,
        "called_at": at,
        "duration_ms": call.duration_ms,
        "error": call.error,
        "session": call.session,
        "worker": call.worker,
    });
    if let Some(digest) = &call.arguments_digest {
        detail["arguments_digest"] = digest.clone().into();
    }
    if let Some(arguments) = &call.arguments {
        detail["arguments"] = arguments.clone();
    }
    detail
}

/// The audit record of `key` (of `tenant`) used for the first time, at `at`.
fn first_use(tenant: &TenantSlug, key: &str, at: Millis) -> NewRecord {
    NewRecord {
        chain: tenant.as_str().to_owned(),
        kind: audit::kind::KEY_FIRST_USE.into(),
        actor: format!("key:{key}"),
        action: "FirstUse".into(),
        object: format!("key/{tenant}/{key}"),
        outcome: "ok".into(),
        detail: serde_json::json!({ "used_at": at }).to_string(),
        trace_id: String::new(),
    }
}

/// Event ids one statement marks as seen.
const IDS_PER_STATEMENT: usize = 200;

impl Store {
    /// Folds in one usage event (see [`Store::record_usage_batch`]); whether it was new.
    pub async fn record_usage(
        &self,
        event_id: &str,
        tenant: &TenantSlug,
        key: Option<&KeyId>,
        tool_call: bool,
        at: Millis,
    ) -> Result<bool> {
        let record = UsageRecord {
            event_id: event_id.to_owned(),
            tenant: tenant.clone(),
            key: key.cloned(),
            tool_call,
            at,
            call: None,
        };
        Ok(self.record_usage_batch(&[record]).await? == 1)
    }

    /// Folds in a batch of usage events in one transaction: each key's last-used time
    /// (never backwards) and, for tool calls, each tenant's count for the event's month,
    /// added once per tenant and month. An event id already folded in (here or in an
    /// earlier batch) changes nothing, so redeliveries are harmless. A batch that uses up a
    /// tenant's monthly quota also takes that tenant a new policy revision, in the same
    /// transaction, so workers learn of it. Returns how many events were new.
    pub async fn record_usage_batch(&self, events: &[UsageRecord]) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let fresh = Self::mark_seen(&mut tx, events.iter().map(|e| e.event_id.as_str())).await?;
        // Each new event once, even if the batch repeats it.
        let mut counted = std::collections::HashSet::new();
        let new: Vec<&UsageRecord> = events
            .iter()
            .filter(|e| fresh.contains(e.event_id.as_str()) && counted.insert(e.event_id.as_str()))
            .collect();
        let mut last_used: std::collections::BTreeMap<&str, (Millis, &TenantSlug)> =
            Default::default();
        let mut calls: std::collections::BTreeMap<(&TenantSlug, String), i64> = Default::default();
        for e in &new {
            if let Some(k) = &e.key {
                let (at, _) = last_used.entry(k.as_str()).or_insert((e.at, &e.tenant));
                *at = (*at).max(e.at);
            }
            if e.tool_call {
                *calls.entry((&e.tenant, month_of(e.at).0)).or_default() += 1;
            }
        }
        let mut first_uses = Vec::new();
        for (key, (at, tenant)) in last_used {
            let first = sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at IS NULL",
            )
            .bind(at)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if first {
                first_uses.push(first_use(tenant, key, at));
                continue;
            }
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1",
            )
            .bind(at)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        let mut used_up = Vec::new();
        for ((tenant, period), n) in calls {
            if Self::count_calls(&mut tx, tenant, &period, n).await? {
                used_up.push(tenant.clone());
            }
        }
        // Used up: workers must refuse further tool calls until the month ends.
        let mut last = None;
        for tenant in &used_up {
            let rev = Self::next_revision(&mut tx).await?;
            Self::record_change(&mut tx, tenant, rev, true).await?;
            last = Some(rev);
        }
        // After the revision counter, as admin changes take their locks in that order.
        Self::append_calls(&mut tx, &new, first_uses).await?;
        Self::add_daily_calls(&mut tx, &new).await?;
        tx.commit().await?;
        if let Some(last) = last {
            self.changed.send_replace(last);
        }
        Ok(new.len())
    }

    /// Appends the audit records of keys used for the first time and of `events`' calls,
    /// chain by chain in name order (so two replicas folding at once wait rather than
    /// deadlock).
    async fn append_calls(
        tx: &mut Transaction<'static, Any>,
        events: &[&UsageRecord],
        first_uses: Vec<NewRecord>,
    ) -> Result<()> {
        let mut by_chain: std::collections::BTreeMap<String, Vec<NewRecord>> = Default::default();
        for record in first_uses {
            by_chain
                .entry(record.chain.clone())
                .or_default()
                .push(record);
        }
        for e in events {
            let Some(call) = &e.call else { continue };
            let tenant = e.tenant.as_str();
            by_chain
                .entry(tenant.to_owned())
                .or_default()
                .push(NewRecord {
                    chain: tenant.to_owned(),
                    kind: audit::kind::CALL.into(),
                    actor: match (&e.key, &call.subject) {
                        (Some(k), _) => format!("key:{k}"),
                        (None, Some(subject)) => format!("user:{subject}"),
                        (None, None) => "key:unknown".into(),
                    },
                    action: call.method.clone(),
                    object: format!("connector/{tenant}/{}", call.connector),
                    outcome: if call.ok { "ok" } else { "error" }.into(),
                    detail: call_detail(call, e.at).to_string(),
                    trace_id: call.trace_id.clone().unwrap_or_default(),
                });
        }
        for (chain, records) in by_chain {
            Self::append_audit_batch(tx, &chain, records).await?;
        }
        Ok(())
    }

    /// Marks a batch's event ids seen; the ones that were not seen before.
    pub(super) async fn mark_seen<'a>(
        tx: &mut Transaction<'static, Any>,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<std::collections::HashSet<String>> {
        let now = now_millis();
        // In one order, so batches folded at once by two replicas wait rather than deadlock.
        let mut ids: Vec<&str> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        let mut fresh = std::collections::HashSet::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, $1)", i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO usage_events_seen (event_id, seen_at) VALUES {} \
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                values.join(", ")
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            fresh.extend(q.fetch_all(&mut **tx).await?);
        }
        Ok(fresh)
    }

    /// Adds `n` tool calls to `tenant`'s count for `period`; whether they used up its
    /// quota for the current month.
    async fn count_calls(
        tx: &mut Transaction<'static, Any>,
        tenant: &TenantSlug,
        period: &str,
        n: i64,
    ) -> Result<bool> {
        let row = sqlx::query("SELECT id, monthly_tool_calls FROM tenants WHERE slug = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            // The tenant is gone; nothing to count against.
            return Ok(false);
        };
        let (tenant_id, limit): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO tenant_usage (tenant_id, period, tool_calls) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, period) DO UPDATE \
             SET tool_calls = tenant_usage.tool_calls + $3 RETURNING tool_calls",
        )
        .bind(&tenant_id)
        .bind(period)
        .bind(n)
        .fetch_one(&mut **tx)
        .await?;
        let (current, _) = month_of(now_millis());
        Ok(limit > 0 && count - n < limit && count >= limit && period == current)
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
}
