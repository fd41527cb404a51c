//! Folds workers' usage reports into the store: each event sets its key's last-used time
//! (never backwards) and counts a tool call toward its tenant's month. Event ids already
//! folded in are skipped, so redeliveries count once. An event is acknowledged only after
//! it is folded in; while the store or the bus is away the consumer retries.
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

use crate::store::Store;
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::UsageBus;
use switchyard_common::{KeyId, TenantSlug};

/// How long folded event ids are remembered: well past the bus's redelivery of an event
/// whose acknowledgement was lost.
const REMEMBER_EVENTS: Duration = Duration::from_secs(3600);

/// Folds `event` in, trying again (with backoff) while the store fails: the event is
/// kept in hand rather than given back, which an in-process bus could not redeliver.
async fn record(store: &Store, event: &switchyard_bus::UsageEvent) {
    let Ok(tenant) = TenantSlug::parse(&event.tenant) else {
        return;
    };
    let key = KeyId::parse(&event.key_id).ok();
    let tool_call = event.method.is_tool_call();
    let mut backoff = Duration::from_millis(100);
    while let Err(e) = store
        .record_usage(&event.id, &tenant, key.as_ref(), tool_call, event.at_ms)
        .await
    {
        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "recording usage failed");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs until the task is dropped.
pub async fn fold(store: Store, bus: Arc<UsageBus>) {
    let mut backoff = Duration::from_millis(100);
    let mut last_prune = std::time::Instant::now();
    loop {
        match bus.consume().await {
            Ok(mut deliveries) => {
                while let Some(delivery) = deliveries.next().await {
                    let delivery = match delivery {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "usage stream failed");
                            break;
                        }
                    };
                    record(&store, &delivery.event).await;
                    if last_prune.elapsed() > Duration::from_secs(60) {
                        last_prune = std::time::Instant::now();
                        let before =
                            crate::model::now_millis() - REMEMBER_EVENTS.as_millis() as i64;
                        if let Err(e) = store.prune_seen_events(before).await {
                            tracing::debug!(error = %e, "pruning usage event ids failed");
                        }
                    }
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(error = %e, "acknowledging a usage event failed");
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
