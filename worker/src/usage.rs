//! Reports one usage event per real call to the control plane, off the request path: events
//! go into a bounded queue that a background task publishes, retrying while the bus is
//! away. A full queue drops events (counted in metrics) rather than slowing calls down.

use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{UsageBus, UsageEvent};
use tokio::sync::mpsc;

const QUEUE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<UsageEvent>,
    dropped: prometheus_client::metrics::counter::Counter,
}

impl Reporter {
    /// Starts the publishing task; it ends when every `Reporter` clone is dropped.
    pub fn start(
        bus: Arc<dyn UsageBus>,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<UsageEvent>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let mut backoff = Duration::from_millis(100);
                // The same id on every attempt: the stream drops repeats.
                while let Err(e) = bus.publish(&event).await {
                    tracing::warn!(error = %e, "publishing a usage event failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        });
        Self { tx, dropped }
    }

    pub fn record(&self, event: UsageEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
        }
    }
}
