//! What a worker reports to the control plane, off the request path: one usage event per
//! real call, tool definitions its policy does not pin, and tallies of refusals. Each kind of event goes into
//! its own bounded queue that a background task publishes, retrying while the bus is away.
//! A full queue drops events (counted in metrics) rather than slowing calls down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_bus::{Event, Queue, ToolSighting, UsageEvent};
use tokio::sync::mpsc;

const QUEUE: usize = 10_000;
/// Events published together, their acknowledgements awaited together: at most this many
/// are in flight per reporter.
const BATCH: usize = 256;

/// Both of a worker's reporters.
#[derive(Debug, Clone)]
pub struct Reports {
    pub usage: Reporter<UsageEvent>,
    pub tools: Reporter<ToolSighting>,
    /// Refusals, tallied before they are reported.
    pub refusals: Arc<crate::refusals::Refusals>,
    /// This worker's id, which its reports carry.
    pub worker: String,
}

impl Reports {
    /// Starts the reporters on `buses`, counting what they drop in `metrics`, and the task
    /// that reports refusal tallies until `cancel`.
    pub fn start(
        buses: &switchyard_bus::Buses,
        metrics: &crate::metrics::Metrics,
        config: &crate::Config,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let refusals = Arc::new(crate::refusals::Refusals::new(
            Reporter::start(buses.refusals.clone(), metrics.refusals_dropped.clone()),
            config.worker_id.clone(),
            config.refusal_tally_every,
        ));
        let tallying = {
            let (refusals, cancel) = (refusals.clone(), cancel.clone());
            tokio::spawn(async move { refusals.run(cancel).await })
        };
        let reports = Self {
            usage: Reporter::start(buses.usage.clone(), metrics.usage_dropped.clone()),
            tools: Reporter::start(buses.tools.clone(), metrics.sightings_dropped.clone()),
            refusals,
            worker: config.worker_id.clone(),
        };
        (reports, tallying)
    }

    /// Waits up to `within` for what was recorded so far to be published (a stopping
    /// worker's last calls still count); says whether it was.
    pub async fn flush(&self, within: Duration) -> bool {
        self.refusals.flush();
        let usage = self.usage.flush(within).await;
        let refusals = self.refusals.reporter().flush(within).await;
        self.tools.flush(within).await && usage && refusals
    }
}

#[derive(Debug)]
pub struct Reporter<E> {
    tx: mpsc::Sender<E>,
    dropped: prometheus_client::metrics::counter::Counter,
    /// Events queued or being published.
    pending: Arc<AtomicUsize>,
}

impl<E> Clone for Reporter<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
            pending: self.pending.clone(),
        }
    }
}

impl<E: Event> Reporter<E> {
    /// Starts the publishing task; it ends when every `Reporter` clone is dropped.
    pub fn start(
        bus: Arc<dyn Queue<E>>,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<E>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let published = pending.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut backoff = Duration::from_millis(100);
                // The same ids on every attempt: the stream drops repeats.
                while let Err(e) = bus.publish_batch(&batch).await {
                    tracing::warn!(error = %e, stream = E::SPEC.stream, events = batch.len(), "publishing events failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                published.fetch_sub(batch.len(), Ordering::SeqCst);
                batch.clear();
            }
        });
        Self {
            tx,
            dropped,
            pending,
        }
    }

    pub fn record(&self, event: E) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(event).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            // Counted, and said once per thousand at error level: never silent.
            if self.dropped.inc().is_multiple_of(1000) {
                tracing::error!(
                    stream = E::SPEC.stream,
                    dropped_so_far = self.dropped.get(),
                    "events dropped: the reporting queue is full (NATS away or too slow)"
                );
            }
        }
    }

    async fn flush(&self, within: Duration) -> bool {
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
