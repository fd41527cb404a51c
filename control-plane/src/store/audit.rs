//! The audit trail's records: appended in the transaction of the change they record, one
//! chain per tenant, each append holding its chain head's row lock until the transaction
//! ends, so appends to one chain serialise and never fork it.

use super::daily::DailyRefusals;
use super::*;
use crate::audit::{self, Change, Record};

/// Which records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub chain: String,
    /// Only records at or after this time (milliseconds since the epoch).
    pub from: Option<Millis>,
    /// Only records before this time.
    pub to: Option<Millis>,
    pub actor: Option<String>,
    pub object: Option<String>,
    pub outcome: Option<String>,
    /// Only records of this actor too (a key's, `key:<id>`).
    pub key_actor: Option<String>,
    /// Only records about this object too (a connector, `connector/<tenant>/<name>`: its
    /// changes and the calls to it).
    pub connector_object: Option<String>,
    /// Only calls to this tool (as their detail's `target`) and refusals of it.
    pub tool: Option<String>,
    /// Only records before this sequence number (the page token).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A chain's head: its last record, and the last record retention removed (0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
    pub pruned_through: i64,
}

/// A record to append; the store gives it its place in the chain.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub chain: String,
    pub kind: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub detail: String,
    pub trace_id: String,
}

fn record_from_row(row: &AnyRow) -> Result<Record> {
    Ok(Record {
        chain: row.try_get(0)?,
        seq: row.try_get(1)?,
        id: row.try_get(2)?,
        at: row.try_get(3)?,
        kind: row.try_get(4)?,
        actor: row.try_get(5)?,
        action: row.try_get(6)?,
        object: row.try_get(7)?,
        outcome: row.try_get(8)?,
        detail: row.try_get(9)?,
        trace_id: row.try_get(10)?,
        prev_hash: row.try_get(11)?,
        hash: row.try_get(12)?,
    })
}

macro_rules! record_columns {
    () => {
        "chain, seq, id, at, kind, actor, action, object, outcome, detail, trace_id, prev_hash, hash"
    };
}

/// Records one INSERT writes (13 parameters each).
const ROWS_PER_INSERT: usize = 100;

async fn insert_records(tx: &mut Transaction<'static, Any>, records: &[Record]) -> Result<()> {
    let rows: Vec<String> = (0..records.len())
        .map(|i| {
            let p: Vec<String> = (1..=13).map(|j| format!("${}", i * 13 + j)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    let sql = format!(
        concat!(
            "INSERT INTO audit_events (",
            record_columns!(),
            ") VALUES {}"
        ),
        rows.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in records {
        q = q
            .bind(&r.chain)
            .bind(r.seq)
            .bind(&r.id)
            .bind(r.at)
            .bind(&r.kind)
            .bind(&r.actor)
            .bind(&r.action)
            .bind(&r.object)
            .bind(&r.outcome)
            .bind(&r.detail)
            .bind(&r.trace_id)
            .bind(&r.prev_hash)
            .bind(&r.hash);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// Appends `new` to its chain in `tx`.
    pub(super) async fn append_audit(
        tx: &mut Transaction<'static, Any>,
        new: NewRecord,
    ) -> Result<Record> {
        let chain = new.chain.clone();
        let mut records = Self::append_audit_batch(tx, &chain, vec![new]).await?;
        records
            .pop()
            .ok_or_else(|| Error::Internal("an audit append wrote nothing".into()))
    }

    /// Appends `batch` (records of `chain`, in order) in `tx`: the chain head is locked and
    /// moved once, the records inserted a hundred to a statement.
    /// Appends the records workers reported, each `(event id, record, refusals to count)`
    /// once however often it is delivered, in one transaction; how many were new.
    pub async fn append_reported(
        &self,
        reported: &[(String, NewRecord, Option<DailyRefusals>)],
    ) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let fresh = Self::mark_seen(&mut tx, reported.iter().map(|(id, ..)| id.as_str())).await?;
        let mut by_chain: std::collections::BTreeMap<String, Vec<NewRecord>> = Default::default();
        let mut taken = std::collections::HashSet::new();
        let mut refused = Vec::new();
        for (id, record, counted) in reported {
            if fresh.contains(id) && taken.insert(id.as_str()) {
                by_chain
                    .entry(record.chain.clone())
                    .or_default()
                    .push(record.clone());
                refused.extend(counted);
            }
        }
        Self::add_daily_refusals(&mut tx, &refused).await?;
        // Chains in name order, so two replicas appending at once wait rather than deadlock.
        for (chain, records) in by_chain {
            Self::append_audit_batch(&mut tx, &chain, records).await?;
        }
        tx.commit().await?;
        Ok(taken.len())
    }

    pub(super) async fn append_audit_batch(
        tx: &mut Transaction<'static, Any>,
        chain: &str,
        batch: Vec<NewRecord>,
    ) -> Result<Vec<Record>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(
            "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, '') \
             ON CONFLICT (chain) DO NOTHING",
        )
        .bind(chain)
        .execute(&mut **tx)
        .await?;
        // Takes the head's row lock until the transaction ends.
        let row = sqlx::query(
            "UPDATE audit_heads SET seq = seq + $2 WHERE chain = $1 RETURNING seq, hash",
        )
        .bind(chain)
        .bind(batch.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
        let last: i64 = row.try_get(0)?;
        let mut prev_hash: String = row.try_get(1)?;
        let at = now_millis();
        let mut records = Vec::with_capacity(batch.len());
        for (seq, new) in (last - batch.len() as i64 + 1..).zip(batch) {
            let mut record = Record {
                chain: chain.to_owned(),
                seq,
                id: uuid::Uuid::new_v4().to_string(),
                at,
                kind: new.kind,
                actor: new.actor,
                action: new.action,
                object: new.object,
                outcome: new.outcome,
                detail: new.detail,
                trace_id: new.trace_id,
                prev_hash: std::mem::take(&mut prev_hash),
                hash: String::new(),
            };
            record.hash = record.compute_hash();
            prev_hash.clone_from(&record.hash);
            records.push(record);
        }
        for chunk in records.chunks(ROWS_PER_INSERT) {
            insert_records(tx, chunk).await?;
        }
        sqlx::query("UPDATE audit_heads SET hash = $1 WHERE chain = $2")
            .bind(&prev_hash)
            .bind(chain)
            .execute(&mut **tx)
            .await?;
        Ok(records)
    }

    /// Appends the record of an admin change to `chain` in `tx`, naming the admin call
    /// being served (or the system) as its actor.
    pub(super) async fn append_change(
        tx: &mut Transaction<'static, Any>,
        chain: &str,
        change: Change,
    ) -> Result<Record> {
        let (actor, action) = match audit::caller() {
            Some(c) => (c.actor, c.method),
            None => (audit::SYSTEM.to_owned(), change.action.to_owned()),
        };
        let new = NewRecord {
            chain: chain.to_owned(),
            kind: audit::kind::ADMIN.into(),
            actor,
            action,
            object: change.object.clone(),
            outcome: "ok".into(),
            detail: change.detail().to_string(),
            trace_id: audit::current_trace_id(),
        };
        Self::append_audit(tx, new).await
    }

    /// Ends a change to `tenant`'s policy with its audit record: both commit or neither.
    pub(super) async fn commit_audited(
        &self,
        mut tx: Transaction<'static, Any>,
        tenant: &TenantSlug,
        rev: u64,
        tenant_exists: bool,
        change: Change,
    ) -> Result<()> {
        Self::append_change(&mut tx, tenant.as_str(), change).await?;
        self.commit_change(tx, tenant, rev, tenant_exists).await
    }

    /// Appends one record in a transaction of its own (reading the audit log, for one).
    pub async fn record_audit(&self, new: NewRecord) -> Result<Record> {
        let mut tx = self.pool.begin().await?;
        let record = Self::append_audit(&mut tx, new).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Records matching `filter`, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<Record>> {
        // A call names its tool in its detail's JSON (`"target":"<name>"`), a refusal in its
        // object.
        let tool_in_detail = filter.tool.as_ref().map(|t| {
            let quoted = serde_json::to_string(t).unwrap_or_default();
            let escaped = quoted
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%\"target\":{escaped}%")
        });
        let tool_object = filter
            .tool
            .as_ref()
            .map(|t| format!("tool/{}/{t}", filter.chain));
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM audit_events WHERE chain = $1 \
             AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3) \
             AND ($4 IS NULL OR actor = $4) AND ($5 IS NULL OR object = $5) \
             AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR seq < $7) \
             AND ($9 IS NULL OR actor = $9) AND ($10 IS NULL OR object = $10) \
             AND ($11 IS NULL OR object = $12 OR (kind = 'call' AND detail LIKE $11 ESCAPE '\\')) \
             ORDER BY seq DESC LIMIT $8"
        ))
        .bind(&filter.chain)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.actor.as_deref())
        .bind(filter.object.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(filter.before_seq)
        .bind(i64::from(filter.limit))
        .bind(filter.key_actor.as_deref())
        .bind(filter.connector_object.as_deref())
        .bind(tool_in_detail)
        .bind(tool_object)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The first and last sequence numbers of `chain`'s records made at or after `from` and
    /// before `to` (either open when `None`); `None` when there are none.
    pub async fn audit_seq_range(
        &self,
        chain: &str,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT MIN(seq), MAX(seq) FROM audit_events WHERE chain = $1 \
             AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3)",
        )
        .bind(chain)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        let first: Option<i64> = row.try_get(0)?;
        let last: Option<i64> = row.try_get(1)?;
        Ok(first.zip(last))
    }

    /// A chain's head and its records from sequence number `from_seq` up to the head's, in
    /// order (at most `limit`). The head is read first and bounds the records, so appends
    /// made meanwhile (the head row and its records commit together) are left out rather
    /// than taken for records missing from the head.
    pub async fn audit_chain(
        &self,
        chain: &str,
        from_seq: i64,
        limit: u32,
    ) -> Result<(Vec<Record>, Option<ChainHead>)> {
        let head =
            sqlx::query("SELECT seq, hash, pruned_through FROM audit_heads WHERE chain = $1")
                .bind(chain)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| {
                    Ok::<_, Error>(ChainHead {
                        seq: r.try_get(0)?,
                        hash: r.try_get(1)?,
                        pruned_through: r.try_get(2)?,
                    })
                })
                .transpose()?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            record_columns!(),
            " FROM audit_events WHERE chain = $1 AND seq >= $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4"
        ))
        .bind(chain)
        .bind(from_seq)
        .bind(head.as_ref().map_or(0, |h| h.seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((records, head))
    }
}
