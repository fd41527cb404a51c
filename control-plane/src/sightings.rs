//! Folds workers' tool sightings into the pins (`store::pins`). A first sighting or an
//! approved definition a worker did not hold a pin for means that tenant's policy should
//! carry the pins: such tenants get one new revision when the queue falls quiet (or every
//! [`BATCH`] sightings), and the sightings are acknowledged only after it, so a crash
//! between the two redelivers them rather than leaving pins unpublished.

use crate::store::{Sighting, Store};
use futures::StreamExt as _;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{Delivery, ToolBus, ToolSighting};
use switchyard_common::{ConnectorName, TenantSlug};

/// Sightings handled before the tenants they touched are published.
const BATCH: usize = 200;
/// How long the queue must be quiet before touched tenants are published.
const QUIET: Duration = Duration::from_millis(100);

/// Records one sighting, retrying (with backoff) while the store fails. Returns the tenant
/// whose policy should be published again, if any.
async fn record(store: &Store, s: &ToolSighting) -> Option<TenantSlug> {
    let (Ok(tenant), Ok(connector)) = (
        TenantSlug::parse(&s.tenant),
        ConnectorName::parse(&s.connector),
    ) else {
        tracing::warn!(tenant = %s.tenant, "tool sighting names no valid tenant and connector; dropped");
        return None;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match store
            .record_tool_sighting(
                &tenant,
                &connector,
                &s.tool,
                &s.digest,
                s.definition.as_deref(),
            )
            .await
        {
            Ok(Sighting::FirstSeen | Sighting::Known) => return Some(tenant),
            Ok(Sighting::Pending) => {
                tracing::warn!(tenant = %tenant, connector = %connector, tool = %s.tool, digest = %s.digest, "tool definition changed; held for approval");
                return None;
            }
            Ok(Sighting::Full) => {
                tracing::warn!(tenant = %tenant, connector = %connector, tool = %s.tool, "connector holds the most tool pins it may; tool not pinned");
                return None;
            }
            Ok(Sighting::Approved | Sighting::StillPending | Sighting::Gone) => return None,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "recording a tool sighting failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes the touched tenants, then acknowledges what was held for them.
async fn settle(
    store: &Store,
    touched: &mut BTreeSet<TenantSlug>,
    held: &mut Vec<Delivery<ToolSighting>>,
) {
    for tenant in std::mem::take(touched) {
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = store.touch_policy(&tenant).await {
            tracing::warn!(error = %e, tenant = %tenant, "publishing tool pins failed");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
    for delivery in held.drain(..) {
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "acknowledging a tool sighting failed");
        }
    }
}

/// Runs until the task is dropped.
pub async fn fold(store: Store, bus: Arc<ToolBus>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.consume().await {
            Ok(mut deliveries) => {
                let mut touched = BTreeSet::new();
                let mut held = Vec::new();
                loop {
                    let next = match tokio::time::timeout(QUIET, deliveries.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            settle(&store, &mut touched, &mut held).await;
                            deliveries.next().await
                        }
                    };
                    let delivery = match next {
                        Some(Ok(d)) => d,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "tool sighting stream failed");
                            break;
                        }
                        None => break,
                    };
                    touched.extend(record(&store, &delivery.event).await);
                    held.push(delivery);
                    if held.len() >= BATCH {
                        settle(&store, &mut touched, &mut held).await;
                    }
                    backoff = Duration::from_millis(100);
                }
                settle(&store, &mut touched, &mut held).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot consume tool sightings"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
