//! Folds workers' usage reports into the store in batches, one transaction per batch (what
//! has arrived, up to 500 events): each event sets its key's last-used time (never
//! backwards) and counts a tool call toward its tenant's month, aggregated per tenant and
//! month. Event ids already folded in are skipped, so redeliveries count once. Events are
//! acknowledged only after their batch is folded in; while the store or the bus is away the
//! consumer retries. Each new event's call is appended to its tenant's audit trail in the
//! same transaction (see `Store::record_usage_batch`).
//!
//! **Monthly quota.** Tool calls count per tenant and calendar month (UTC). The event that
//! reaches `monthly_tool_calls` also gives the tenant a new policy revision in the same
//! transaction; the compiled policy then carries `tool_calls_exhausted_until` (the next
//! month's start) and workers refuse tool calls until then (reads and prompts go on). A
//! tool call counts once it is sent upstream, however it ends; calls refused before that do
//! not, and a call answered in rounds of input counts once, at its first round (whether its
//! client answers or abandons it). **Overshoot** is
//! the tool calls admitted between the quota's last call and the workers applying the new
//! policy: the usage queue's delay plus the policy's propagation (BENCHMARKS.md), at most
//! the tenant's rate times that delay, plus the calls in flight. Raising the quota
//! publishes the policy without the stop.

use crate::store::{CallDetail, Store, UsageRecord};
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{Delivery, UsageBus};
use switchyard_common::{KeyId, TenantSlug};

/// How long folded event ids are remembered: well past the bus's redelivery of an event
/// whose acknowledgement was lost.
const REMEMBER_EVENTS: Duration = Duration::from_secs(3600);

/// Events folded in one transaction at most.
const BATCH: usize = 500;

/// How long a batch waits for more events after its first: a transaction's fixed cost
/// (a dozen statements) is then shared by many events under load, at the price of events
/// reaching the store this much later.
const LINGER: Duration = Duration::from_millis(50);

/// Longest text taken from an event's field: a worker's report is not trusted to be small.
const FIELD_MAX: usize = 256;

/// `text` cut to [`FIELD_MAX`] bytes at a character boundary.
pub(crate) fn clip(text: &str) -> String {
    let mut end = text.len().min(FIELD_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Longest redacted arguments taken from an event (a worker cuts them at 4 KiB).
const ARGUMENTS_MAX: usize = 4200;

/// Redacted arguments as recorded: their JSON, or (cut to size) their text.
fn arguments_of(text: &str) -> serde_json::Value {
    if text.len() <= ARGUMENTS_MAX
        && let Ok(value) = serde_json::from_str(text)
    {
        return value;
    }
    let mut end = text.len().min(ARGUMENTS_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::Value::String(text[..end].to_owned())
}

/// The record of `event` as the fold writes it, if it names a valid tenant.
pub fn record_of(event: &switchyard_bus::UsageEvent) -> Option<UsageRecord> {
    Some(UsageRecord {
        event_id: event.id.clone(),
        tenant: TenantSlug::parse(&event.tenant).ok()?,
        key: KeyId::parse(&event.key_id).ok(),
        tool_call: event.method.is_tool_call(),
        at: event.at_ms,
        call: Some(CallDetail {
            subject: event.subject.as_deref().map(clip),
            method: event.method.as_str().to_owned(),
            target: clip(&event.target),
            connector: clip(&event.connector),
            ok: event.ok,
            duration_ms: event.duration_ms,
            error: event.error.as_deref().map(clip),
            session: event.session.as_deref().map(clip),
            worker: event.worker.as_deref().map(clip),
            // A trace id is 32 hex digits; anything else is not one.
            trace_id: event
                .trace_id
                .clone()
                .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())),
            arguments_digest: event.arguments_digest.clone().filter(|d| {
                d.strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            }),
            arguments: event.arguments.as_deref().map(arguments_of),
        }),
    })
}

/// Folds `batch` in, trying again (with backoff) while the store fails: the events are
/// kept in hand rather than given back, which an in-process bus could not redeliver.
async fn record(store: &Store, batch: &[Delivery<switchyard_bus::UsageEvent>]) {
    let records: Vec<UsageRecord> = batch.iter().filter_map(|d| record_of(&d.event)).collect();
    let mut backoff = Duration::from_millis(100);
    while let Err(e) = store.record_usage_batch(&records).await {
        tracing::warn!(error = %e, events = records.len(), retry_in_ms = backoff.as_millis() as u64, "recording usage failed");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The next batch: one event (waited for), then whatever else arrives within [`LINGER`],
/// up to [`BATCH`]. `None` when the stream ended or failed.
pub async fn next_batch<E: switchyard_bus::Event>(
    deliveries: &mut futures::stream::BoxStream<'static, switchyard_bus::Result<Delivery<E>>>,
) -> Option<Vec<Delivery<E>>> {
    let first = match deliveries.next().await? {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "usage stream failed");
            return None;
        }
    };
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + LINGER;
    while batch.len() < BATCH {
        match tokio::time::timeout_at(until, deliveries.next()).await {
            Ok(Some(Ok(d))) => batch.push(d),
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "usage stream failed");
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

/// Runs until the task is dropped.
pub async fn fold(store: Store, bus: Arc<UsageBus>) {
    let mut backoff = Duration::from_millis(100);
    let mut last_prune = std::time::Instant::now();
    loop {
        match bus.consume().await {
            Ok(mut deliveries) => {
                while let Some(batch) = next_batch(&mut deliveries).await {
                    record(&store, &batch).await;
                    if last_prune.elapsed() > Duration::from_secs(60) {
                        last_prune = std::time::Instant::now();
                        let before =
                            crate::model::now_millis() - REMEMBER_EVENTS.as_millis() as i64;
                        if let Err(e) = store.prune_seen_events(before).await {
                            tracing::debug!(error = %e, "pruning usage event ids failed");
                        }
                    }
                    for delivery in batch {
                        if let Err(e) = delivery.ack().await {
                            tracing::warn!(error = %e, "acknowledging a usage event failed");
                        }
                    }
                    backoff = Duration::from_millis(100);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot consume usage events"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
