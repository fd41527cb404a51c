//! Reports one usage event per real call to the control plane, off the request path: events
//! go into a bounded queue that a background task publishes, retrying while the bus is
//! away. A full queue drops events (counted in metrics) rather than slowing calls down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_bus::{UsageBus, UsageEvent};
use tokio::sync::mpsc;

const QUEUE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<UsageEvent>,
    dropped: prometheus_client::metrics::counter::Counter,
    /// Events queued or being published.
    pending: Arc<AtomicUsize>,
}

impl Reporter {
    /// Starts the publishing task; it ends when every `Reporter` clone is dropped.
    pub fn start(
        bus: Arc<dyn UsageBus>,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<UsageEvent>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let published = pending.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let mut backoff = Duration::from_millis(100);
                // The same id on every attempt: the stream drops repeats.
                while let Err(e) = bus.publish(&event).await {
                    tracing::warn!(error = %e, "publishing a usage event failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                published.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Self {
            tx,
            dropped,
            pending,
        }
    }

    pub fn record(&self, event: UsageEvent) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(event).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.dropped.inc();
        }
    }

    /// Waits up to `within` for the events recorded so far to be published (a stopping
    /// worker's last calls still count); says whether they were.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}
