//! Folds workers' refusal tallies into the audit trail: each report becomes one record on
//! its tenant's chain, kind `refusal` (a limit or a role refused an authenticated request),
//! `auth_failure`, `audit_gap` (calls served whose own records a worker lost), or
//! `authorization` (the built-in authorization server allowed or refused a client), written
//! once per report id however often it is delivered. Reports
//! are acknowledged after their batch is written; while the store is away the batch is
//! kept in hand and retried.

use crate::store::{DailyRefusals, NewRecord, Store};
use crate::usage::{clip, next_batch};
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{RefusalBus, RefusalKind, RefusalReport};
use switchyard_common::{KeyId, TenantSlug};

/// The audit record of `report`, if it names a valid tenant.
pub fn record_of(report: &RefusalReport) -> Option<NewRecord> {
    let tenant = TenantSlug::parse(&report.tenant).ok()?;
    // Only a well-formed key id is named: what an attacker sent as one is not echoed.
    let key = report.key_id.as_deref().and_then(|k| KeyId::parse(k).ok());
    let actor = match (key, &report.subject) {
        (Some(k), _) => format!("key:{k}"),
        (None, Some(subject)) => format!("user:{}", clip(subject)),
        (None, None) => "key:unknown".to_owned(),
    };
    let object = match (report.kind, &report.target) {
        (RefusalKind::Refusal, Some(target)) => format!("tool/{tenant}/{}", clip(target)),
        (RefusalKind::Authorization | RefusalKind::AuthFailure, Some(client)) => {
            format!("client/{tenant}/{}", clip(client))
        }
        _ => format!("tenant/{tenant}"),
    };
    Some(NewRecord {
        chain: tenant.to_string(),
        kind: report.kind.as_str().to_owned(),
        actor,
        action: clip(&report.reason),
        object,
        outcome: outcome(report).to_owned(),
        detail: serde_json::json!({
            "count": report.count,
            "first_at": report.first_ms,
            "last_at": report.last_ms,
            "source": report.source.as_deref().map(clip),
            "worker": clip(&report.worker),
        })
        .to_string(),
        trace_id: String::new(),
    })
}

/// What came of what `report` tallies.
fn outcome(report: &RefusalReport) -> &'static str {
    match report.kind {
        RefusalKind::AuditGap => "lost",
        RefusalKind::Authorization if report.reason == ALLOWED => "allowed",
        RefusalKind::Refusal | RefusalKind::AuthFailure | RefusalKind::Authorization => "refused",
    }
}

/// The reason of an authorization that let a client in.
const ALLOWED: &str = "signed_in";

/// What `report` (recorded as `record`) adds to its tenant's day: the day its tally began.
fn counted(report: &RefusalReport, record: &NewRecord) -> DailyRefusals {
    DailyRefusals {
        tenant: record.chain.clone(),
        day: crate::model::day_of(report.first_ms),
        reason: record.action.clone(),
        count: i64::try_from(report.count).unwrap_or(i64::MAX),
    }
}

/// Runs until the task is dropped.
pub async fn fold(store: Store, bus: Arc<RefusalBus>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.consume().await {
            Ok(mut deliveries) => {
                while let Some(batch) = next_batch(&mut deliveries).await {
                    let records: Vec<(String, NewRecord, Option<DailyRefusals>)> = batch
                        .iter()
                        .filter_map(|d| {
                            let record = record_of(&d.event)?;
                            // A gap counts no refusal (its calls were counted, if at all, as
                            // calls), nor does a sign-in allowed.
                            let counted =
                                (record.outcome == "refused").then(|| counted(&d.event, &record));
                            Some((d.event.id.clone(), record, counted))
                        })
                        .collect();
                    let mut wait = Duration::from_millis(100);
                    while let Err(e) = store.append_reported(&records).await {
                        tracing::warn!(error = %e, reports = records.len(), "recording refusals failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    for delivery in batch {
                        if let Err(e) = delivery.ack().await {
                            tracing::warn!(error = %e, "acknowledging a refusal report failed");
                        }
                    }
                    backoff = Duration::from_millis(100);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot consume refusal reports"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kind: RefusalKind, reason: &str, target: Option<&str>) -> RefusalReport {
        RefusalReport {
            id: "r1".into(),
            tenant: "acme".into(),
            kind,
            key_id: Some("abcdef123456".into()),
            subject: None,
            reason: reason.into(),
            target: target.map(str::to_owned),
            source: Some("192.0.2.1".into()),
            count: 1,
            first_ms: 0,
            last_ms: 0,
            worker: "w".into(),
        }
    }

    #[test]
    fn an_authorization_names_the_client_and_only_a_sign_in_is_allowed() {
        let client = "https://app.example/client.json";
        let allowed = record_of(&report(
            RefusalKind::Authorization,
            "signed_in",
            Some(client),
        ))
        .unwrap();
        assert_eq!(
            (allowed.kind.as_str(), allowed.outcome.as_str()),
            ("authorization", "allowed")
        );
        assert_eq!(allowed.object, format!("client/acme/{client}"));
        assert_eq!(allowed.actor, "key:abcdef123456");
        for reason in ["sign_in_declined", "refresh_token_reused"] {
            let r = record_of(&report(RefusalKind::Authorization, reason, Some(client))).unwrap();
            assert_eq!(r.outcome, "refused", "{reason}");
        }
        let failed = record_of(&report(
            RefusalKind::AuthFailure,
            "invalid_credential",
            Some(client),
        ))
        .unwrap();
        assert_eq!(failed.object, format!("client/acme/{client}"));
        let tool = record_of(&report(
            RefusalKind::Refusal,
            "permission_denied",
            Some("t"),
        ))
        .unwrap();
        assert_eq!(tool.object, "tool/acme/t");
    }
}
