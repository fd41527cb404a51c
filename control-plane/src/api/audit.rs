//! The audit service: listing a chain's records and verifying a chain. Both are recorded in
//! the chain they read, after reading it.

use super::*;
use crate::audit::chain::ChainBreak;
use crate::audit::{self, Record, checkpoint};
use crate::compile::timestamp;
use crate::store::{AuditFilter, NewRecord};
use switchyard_common::TenantSlug;
use tonic::Request;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Records read at a time while verifying.
const VERIFY_BATCH: u32 = 5000;

/// The chain named by a request's `tenant` field: a slug, or empty for the platform's.
pub(super) fn chain_of(tenant: &str) -> Result<String> {
    if tenant.is_empty() {
        return Ok(audit::PLATFORM_CHAIN.to_owned());
    }
    TenantSlug::parse(tenant)
        .map(|s| s.as_str().to_owned())
        .map_err(|e| Error::invalid("tenant", e.to_string()))
}

/// A request's `start_time` and `end_time`, in milliseconds.
pub(super) fn time_range(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<(Option<Millis>, Option<Millis>)> {
    let from = start.map(|t| millis_of("start_time", t)).transpose()?;
    let to = end.map(|t| millis_of("end_time", t)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(Error::invalid("end_time", "is before start_time"));
    }
    Ok((from, to))
}

fn optional(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn filter_of(r: &pb::ListAuditEventsRequest) -> Result<AuditFilter> {
    let limit = match r.page_size {
        0 => DEFAULT_PAGE,
        n if n <= MAX_PAGE => n,
        _ => return Err(Error::invalid("page_size", "must be at most 1000")),
    };
    let before_seq = match r.page_token.as_str() {
        "" => None,
        t => Some(
            t.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::invalid(
                        "page_token",
                        "is not one this service gave: pass a next_page_token from an earlier answer, or none",
                    )
                })?,
        ),
    };
    let (from, to) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
    let chain = chain_of(&r.tenant)?;
    let key_actor = match r.key.as_str() {
        "" => None,
        k => Some(format!("key:{}", key_id("key", k)?)),
    };
    let connector_object = match r.connector.as_str() {
        "" => None,
        c => Some(format!(
            "connector/{chain}/{}",
            connector_name("connector", c)?
        )),
    };
    if r.tool.len() > 256 {
        return Err(Error::invalid("tool", "must be at most 256 bytes"));
    }
    Ok(AuditFilter {
        chain,
        from,
        to,
        actor: optional(&r.actor),
        object: optional(&r.object),
        outcome: optional(&r.outcome),
        key_actor,
        connector_object,
        tool: optional(&r.tool),
        before_seq,
        limit,
    })
}

pub(super) fn event_of(r: Record) -> pb::AuditEvent {
    pb::AuditEvent {
        tenant: r.chain,
        seq: r.seq,
        id: r.id,
        time: Some(timestamp(r.at)),
        kind: r.kind,
        actor: r.actor,
        action: r.action,
        object: r.object,
        outcome: r.outcome,
        detail: r.detail,
        trace_id: r.trace_id,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

impl Admin {
    /// Records in `chain` that the caller read it (`detail`: what they asked for).
    pub(super) async fn record_read(&self, chain: &str, detail: serde_json::Value) -> Result<()> {
        let caller = audit::caller();
        let new = NewRecord {
            chain: chain.to_owned(),
            kind: audit::kind::AUDIT_READ.into(),
            actor: caller
                .as_ref()
                .map_or_else(|| audit::SYSTEM.to_owned(), |c| c.actor.clone()),
            action: caller.map_or_else(String::new, |c| c.method),
            object: format!("audit/{chain}"),
            outcome: "ok".into(),
            detail: detail.to_string(),
            trace_id: audit::current_trace_id(),
        };
        self.store.record_audit(new).await.map(drop)
    }

    async fn list(&self, r: pb::ListAuditEventsRequest) -> Result<pb::ListAuditEventsResponse> {
        let filter = filter_of(&r)?;
        let records = self.store.audit_events(&filter).await?;
        let next_page_token = match records.last() {
            Some(last) if records.len() == filter.limit as usize && last.seq > 1 => {
                last.seq.to_string()
            }
            _ => String::new(),
        };
        let detail = serde_json::json!({
            "actor": filter.actor, "object": filter.object, "outcome": filter.outcome,
            "key": filter.key_actor, "connector": filter.connector_object, "tool": filter.tool,
            "from": filter.from, "to": filter.to, "returned": records.len(),
        });
        self.record_read(&filter.chain, detail).await?;
        Ok(pb::ListAuditEventsResponse {
            events: records.into_iter().map(event_of).collect(),
            next_page_token,
        })
    }

    /// Checks the signed checkpoints at the records of `run` (a verified run of `chain`);
    /// how many matched.
    async fn checkpoints(&self, chain: &str, run: &[Record]) -> Result<Result<u64, ChainBreak>> {
        let keys = self.audit_keys.all();
        let (false, Some(first), Some(last)) = (keys.is_empty(), run.first(), run.last()) else {
            return Ok(Ok(0));
        };
        let checkpoints = self
            .store
            .audit_checkpoints(chain, first.seq, last.seq)
            .await?;
        Ok(checkpoint::check(run, &checkpoints, &keys).map(|n| n as u64))
    }

    async fn verify(&self, r: pb::VerifyAuditChainRequest) -> Result<pb::VerifyAuditChainResponse> {
        let chain = chain_of(&r.tenant)?;
        let mut checked = 0u64;
        let mut signed = 0u64;
        let mut carried: Option<Record> = None;
        let mut from = 1;
        let mut first = None;
        let outcome = loop {
            let (page, head) = self.store.audit_chain(&chain, from, VERIFY_BATCH).await?;
            let start = *first.get_or_insert(head.as_ref().map_or(1, |h| h.pruned_through + 1));
            let last_page = page.len() < VERIFY_BATCH as usize;
            checked += page.len() as u64;
            from = page.last().map_or(from, |r| r.seq + 1);
            // A later page is checked with the previous page's last record before it.
            let run_first = carried.as_ref().map_or(start, |c| c.seq);
            // The carried record's checkpoint was checked with its own page.
            let own = usize::from(carried.is_some());
            let run: Vec<Record> = carried.take().into_iter().chain(page).collect();
            let head = head
                .as_ref()
                .filter(|_| last_page)
                .map(|h| (h.seq, h.hash.as_str()));
            if let Err(broken) = audit::verify(&run, run_first, head) {
                break Some(broken);
            }
            match self.checkpoints(&chain, &run[own..]).await? {
                Ok(n) => signed += n,
                Err(broken) => break Some(broken),
            }
            if last_page {
                break None;
            }
            carried = run.into_iter().last();
        };
        let detail = serde_json::json!({ "records": checked, "intact": outcome.is_none() });
        self.record_read(&chain, detail).await?;
        let key_id = self
            .audit_keys
            .current
            .as_ref()
            .map(checkpoint::key_id)
            .unwrap_or_default();
        let intact = outcome.is_none();
        let (first_bad_seq, reason) = outcome.map_or((0, String::new()), |b| (b.seq, b.reason));
        Ok(pb::VerifyAuditChainResponse {
            intact,
            records: checked,
            first_bad_seq,
            reason,
            checkpoints: signed,
            key_id,
        })
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Admin {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        reply(self.list(req.into_inner()).await)
    }

    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Reply<pb::VerifyAuditChainResponse> {
        reply(self.verify(req.into_inner()).await)
    }

    type ExportAuditEventsStream = super::audit_export::ExportStream;

    async fn export_audit_events(
        &self,
        req: Request<pb::ExportAuditEventsRequest>,
    ) -> Reply<Self::ExportAuditEventsStream> {
        reply(self.export(req.into_inner()).await)
    }

    async fn get_audit_signing_key(
        &self,
        _: Request<pb::GetAuditSigningKeyRequest>,
    ) -> Reply<pb::AuditSigningKey> {
        use base64::Engine as _;
        let b64 = |key: &ed25519_dalek::VerifyingKey| {
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        };
        reply(match &self.audit_keys.current {
            Some(key) => Ok(pb::AuditSigningKey {
                public_key: b64(key),
                key_id: checkpoint::key_id(key),
                previous_public_keys: self.audit_keys.previous.iter().map(b64).collect(),
            }),
            None => Err(Error::FailedPrecondition(
                "this control plane has no audit signing key (--audit-signing-key)".into(),
            )),
        })
    }
}
