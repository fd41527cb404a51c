//! What a worker reports to the control plane, off the request path: one usage event per
//! real call, tool definitions its policy does not pin, and tallies of refusals. Each kind of event goes into
//! its own bounded queue that a background task publishes, retrying while the bus is away.
//! A full queue drops events (counted in metrics) rather than slowing calls down. A call
//! takes its usage event's place in the queue when it starts ([`Reporter::reserve`]), so an
//! event is lost only when the queue was already full then: the loss is tallied for a gap
//! record, and a tenant that fails closed has such a call refused instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_bus::{Event, Queue, ToolSighting, UsageEvent};
use tokio::sync::mpsc;

/// Events a reporter's queue holds unless the worker is told otherwise.
pub const QUEUE: usize = 10_000;
/// Events published together, their acknowledgements awaited together: at most this many
/// are in flight per reporter.
pub const BATCH: usize = 256;
/// How long a batch waits for more events after its first: a batch travels as few messages
/// (see `switchyard_bus::Event::PACKED`), so a busy worker sends one every so often rather
/// than one per call.
const LINGER: Duration = Duration::from_millis(10);

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
        let queue = config.report_queue;
        let refusals = Arc::new(crate::refusals::Refusals::new(
            Reporter::start(
                buses.refusals.clone(),
                metrics.refusals_dropped.clone(),
                queue,
            ),
            config.worker_id.clone(),
            config.refusal_tally_every,
        ));
        let tallying = {
            let (refusals, cancel) = (refusals.clone(), cancel.clone());
            tokio::spawn(async move { refusals.run(cancel).await })
        };
        let reports = Self {
            usage: Reporter::start(buses.usage.clone(), metrics.usage_dropped.clone(), queue),
            tools: Reporter::start(
                buses.tools.clone(),
                metrics.sightings_dropped.clone(),
                queue,
            ),
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

/// A place held in a reporter's queue.
#[derive(Debug)]
pub struct Reserved<E> {
    permit: mpsc::OwnedPermit<E>,
    pending: Arc<AtomicUsize>,
}

impl<E> Reserved<E> {
    pub fn send(self, event: E) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.permit.send(event);
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
    /// Starts the publishing task, with a queue of `queue` events; it ends when every
    /// `Reporter` clone is dropped.
    pub fn start(
        bus: Arc<dyn Queue<E>>,
        dropped: prometheus_client::metrics::counter::Counter,
        queue: usize,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<E>(queue.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let published = pending.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let until = tokio::time::Instant::now() + LINGER;
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    let more = rx.recv_many(&mut batch, room);
                    match tokio::time::timeout_at(until, more).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
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

    /// A place in the queue for one event, if there is one: what is recorded with it is
    /// never dropped.
    pub fn reserve(&self) -> Option<Reserved<E>> {
        let permit = self.tx.clone().try_reserve_owned().ok()?;
        Some(Reserved {
            permit,
            pending: self.pending.clone(),
        })
    }

    /// Queues `event`; whether it was (else it is dropped, and counted).
    pub fn record(&self, event: E) -> bool {
        self.try_record(event).is_ok()
    }

    /// Queues `event`, or gives it back when the queue is full (it is counted as dropped).
    pub fn try_record(&self, event: E) -> Result<(), E> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.tx.try_send(event) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            // Counted, and said once per thousand at error level: never silent.
            if self.dropped.inc().is_multiple_of(1000) {
                tracing::error!(
                    stream = E::SPEC.stream,
                    dropped_so_far = self.dropped.get(),
                    "events dropped: the reporting queue is full (NATS away or too slow)"
                );
            }
            return Err(e.into_inner());
        }
        Ok(())
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
