//! Folds workers' usage reports into the store: each event sets its key's last-used time
//! (never backwards, so repeats and reordering are harmless). An event is acknowledged
//! only after it is folded in; while the store or the bus is away the consumer retries.

use crate::store::Store;
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::UsageBus;
use switchyard_common::KeyId;

/// Runs until the task is dropped.
pub async fn fold(store: Store, bus: Arc<dyn UsageBus>) {
    let mut backoff = Duration::from_millis(100);
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
                    if let Ok(key) = KeyId::parse(&delivery.event.key_id)
                        && let Err(e) = store.record_key_use(&key, delivery.event.at_ms).await
                    {
                        tracing::warn!(error = %e, "recording key use failed; will retry");
                        break;
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
