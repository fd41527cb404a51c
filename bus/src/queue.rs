//! Event queues from workers to the control plane. Each kind of event has its own
//! JetStream stream (a subject per tenant, repeats of an id within the duplicate window
//! dropped by the server; a queue that packs sends a batch several events to a message,
//! see `packed`), read by the control plane with one durable consumer that acknowledges
//! each event after acting on it. `switchyard dev` uses an in-process channel
//! that drops repeats the same way. Workers never write to the database.

use crate::packed::SharedAck;
use crate::{BusError, Result};
use async_nats::jetstream;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

const CONSUMER: &str = "control-plane";
/// Ids of recently published events the in-process channel remembers, to drop repeats as
/// NATS's duplicate window does.
const RECENT_IDS: usize = 100_000;

/// Where one kind of event travels on NATS.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    pub stream: &'static str,
    /// Events go to `{subject_prefix}.{tenant}`.
    pub subject_prefix: &'static str,
    pub description: &'static str,
    pub max_age: Duration,
    /// How long an event not acknowledged waits before it goes to the next consumer.
    pub ack_wait: Duration,
}

/// An event a worker sends the control plane.
pub trait Event:
    Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static
{
    const SPEC: QueueSpec;
    /// Unique per event; a repeat carries the same id.
    fn id(&self) -> &str;
    fn tenant(&self) -> &str;
    /// Whether a batch travels on NATS several events to a message (see `packed`): only
    /// for events whose consumer drops repeats by id itself, as a repeat across messages
    /// gets past NATS's duplicate window.
    const PACKED: bool = false;
}

/// One received event; acknowledge it once it has been acted on.
pub struct Delivery<E> {
    pub event: E,
    message: Option<Arc<SharedAck>>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for Delivery<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl<E> Delivery<E> {
    pub async fn ack(self) -> Result<()> {
        match self.message {
            Some(m) => m.ack().await,
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
pub trait Queue<E: Event>: Send + Sync + std::fmt::Debug + 'static {
    async fn publish(&self, event: &E) -> Result<()>;
    /// Publishes `events`, all stored when it returns `Ok`. On an error some may have been
    /// stored: publishing them again is harmless (repeats of an id are dropped).
    async fn publish_batch(&self, events: &[E]) -> Result<()> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }
    /// Events not yet acknowledged, then new ones as they come.
    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery<E>>>>;
    /// Events this queue's consumers dropped since it was made, by why (see `Rejected`).
    fn rejected(&self) -> Rejected {
        Rejected::default()
    }
}

/// Queued events a consumer dropped rather than pass on. The in-process queue carries
/// typed events from this process alone, so it drops none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Events naming another tenant than the subject they were published on.
    pub forged: u64,
    /// Payloads that are no event of the queue's kind.
    pub unreadable: u64,
}

#[derive(Debug, Default)]
struct Tally {
    forged: std::sync::atomic::AtomicU64,
    unreadable: std::sync::atomic::AtomicU64,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// The in-process queue of `switchyard dev`: one consumer at a time; an event whose id
/// was published recently is dropped.
#[derive(Debug, Clone)]
pub struct MemoryQueue<E> {
    tx: mpsc::Sender<E>,
    rx: Slot<E>,
    recent: Arc<Mutex<Recent>>,
}

type Slot<E> = Arc<Mutex<Option<mpsc::Receiver<E>>>>;

/// The consumer's end of the in-process channel; given back when dropped, so a consumer
/// that stops and starts again gets the events sent meanwhile.
struct Consuming<E> {
    rx: Option<mpsc::Receiver<E>>,
    slot: Slot<E>,
}

impl<E> futures::Stream for Consuming<E> {
    type Item = Result<Delivery<E>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(rx) = self.rx.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        rx.poll_recv(cx).map(|event| {
            event.map(|event| {
                Ok(Delivery {
                    event,
                    message: None,
                })
            })
        })
    }
}

impl<E> Unpin for Consuming<E> {}

impl<E> Drop for Consuming<E> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(rx);
        }
    }
}

#[derive(Debug, Default)]
struct Recent {
    ids: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Recent {
    /// Remembers `id`; false when it was already remembered.
    fn insert(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > RECENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl<E> Default for MemoryQueue<E> {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(10_000);
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            recent: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl<E: Event> Queue<E> for MemoryQueue<E> {
    async fn publish(&self, event: &E) -> Result<()> {
        let recent = || self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if !recent().insert(event.id()) {
            return Ok(());
        }
        self.tx.try_send(event.clone()).map_err(|_| {
            // Not sent: a retry of it is not a repeat.
            recent().ids.remove(event.id());
            BusError::Unavailable(format!("{} channel full", E::SPEC.stream))
        })
    }

    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery<E>>>> {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                BusError::Unavailable(format!("{} is already being consumed", E::SPEC.stream))
            })?;
        Ok(Consuming {
            rx: Some(rx),
            slot: self.rx.clone(),
        }
        .boxed())
    }
}

/// The queue on NATS: the stream of `E::SPEC`, created on first use.
#[derive(Debug)]
pub struct NatsQueue<E> {
    js: jetstream::Context,
    stream: Arc<tokio::sync::OnceCell<jetstream::stream::Stream>>,
    rejected: Arc<Tally>,
    _events: std::marker::PhantomData<fn() -> E>,
}

impl<E> Clone for NatsQueue<E> {
    fn clone(&self) -> Self {
        Self {
            js: self.js.clone(),
            stream: self.stream.clone(),
            rejected: self.rejected.clone(),
            _events: std::marker::PhantomData,
        }
    }
}

impl<E: Event> NatsQueue<E> {
    pub fn new(client: async_nats::Client) -> Self {
        Self {
            js: jetstream::new(client),
            stream: Arc::default(),
            rejected: Arc::default(),
            _events: std::marker::PhantomData,
        }
    }

    async fn stream(&self) -> Result<&jetstream::stream::Stream> {
        let spec = E::SPEC;
        self.stream
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(jetstream::stream::Config {
                        name: spec.stream.to_owned(),
                        description: Some(spec.description.to_owned()),
                        subjects: vec![format!("{}.>", spec.subject_prefix)],
                        max_age: spec.max_age,
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .map_err(unavailable)
            })
            .await
    }
}

#[async_trait::async_trait]
impl<E: Event> Queue<E> for NatsQueue<E> {
    /// Sends every message before waiting for any acknowledgement, so a batch costs one
    /// round trip rather than one per event; a queue that packs sends a message per
    /// tenant rather than per event (see `packed`).
    async fn publish_batch(&self, events: &[E]) -> Result<()> {
        let messages = if E::PACKED {
            crate::packed::pack(events)?
        } else {
            events.iter().map(single).collect::<Result<_>>()?
        };
        let mut acks = Vec::with_capacity(messages.len());
        for message in messages {
            let publish = jetstream::message::PublishMessage::build()
                .payload(message.payload)
                .message_id(message.id);
            acks.push(
                self.js
                    .send_publish(message.subject, publish)
                    .await
                    .map_err(unavailable)?,
            );
        }
        let mut missing_stream = false;
        let acks = acks.into_iter().map(std::future::IntoFuture::into_future);
        for ack in futures::future::join_all(acks).await {
            match ack {
                Ok(_) => {}
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                    missing_stream = true;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        if missing_stream {
            // Made now; the caller's retry stores what was refused.
            self.stream().await?;
            return Err(BusError::Unavailable(format!(
                "{} did not exist; created",
                E::SPEC.stream
            )));
        }
        Ok(())
    }

    /// Publishes to the event's subject. The stream is made only when the publish finds
    /// none, so a publisher allowed nothing but its own subject (a dedicated worker) needs
    /// no stream administration while the control plane has made it.
    async fn publish(&self, event: &E) -> Result<()> {
        let message = single(event)?;
        let send = || async {
            let publish = jetstream::message::PublishMessage::build()
                .payload(message.payload.clone())
                .message_id(message.id.as_str());
            self.js
                .send_publish(message.subject.clone(), publish)
                .await?
                .await
        };
        match send().await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                self.stream().await?;
                send().await.map(|_| ()).map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery<E>>>> {
        let stream = self.stream().await?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                CONSUMER,
                jetstream::consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: E::SPEC.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        let tally = self.rejected.clone();
        Ok(messages
            .then(move |m| accept(m, tally.clone()))
            .flat_map(futures::stream::iter)
            .boxed())
    }

    fn rejected(&self) -> Rejected {
        Rejected {
            forged: self.rejected.forged.load(Ordering::Relaxed),
            unreadable: self.rejected.unreadable.load(Ordering::Relaxed),
        }
    }
}

/// `event` as a message of its own.
fn single<E: Event>(event: &E) -> Result<crate::packed::Pack> {
    Ok(crate::packed::Pack {
        subject: format!("{}.{}", E::SPEC.subject_prefix, event.tenant()),
        id: event.id().to_owned(),
        payload: serde_json::to_vec(event).map_err(unavailable)?.into(),
    })
}

/// A message off a queue's stream as deliveries, one per event it carries (see
/// `packed`). Events dropped (see `NatsQueue::consume`) are tallied in `tally`; a message
/// left with none is acknowledged so it does not come back.
async fn accept<E: Event>(
    m: std::result::Result<jetstream::Message, jetstream::consumer::pull::MessagesError>,
    tally: Arc<Tally>,
) -> Vec<Result<Delivery<E>>> {
    let message = match m {
        Ok(message) => message,
        Err(e) => return vec![Err(unavailable(e))],
    };
    // An event that cannot be read would come back at every redelivery: it is
    // dropped. So is one naming another tenant than its subject does: a
    // publisher may write only its own tenant's subject (a dedicated pool's
    // credentials allow no other), so such an event is forged.
    let (events, why) = match crate::packed::unpack::<E>(&message.payload) {
        Ok(events) => {
            let subject = message.subject.as_str();
            let (ours, forged): (Vec<E>, Vec<E>) = events.into_iter().partition(|e| {
                subject
                    .strip_prefix(E::SPEC.subject_prefix)
                    .and_then(|rest| rest.strip_prefix('.'))
                    == Some(e.tenant())
            });
            let why = (!forged.is_empty()).then(|| {
                tally
                    .forged
                    .fetch_add(forged.len() as u64, Ordering::Relaxed);
                format!("{} name another tenant than its subject", forged.len())
            });
            (ours, why)
        }
        Err(e) => {
            tally.unreadable.fetch_add(1, Ordering::Relaxed);
            (Vec::new(), Some(format!("it cannot be read: {e}")))
        }
    };
    if let Some(why) = why {
        tracing::warn!(subject = %message.subject, reason = %why, "dropping queued events");
    }
    if events.is_empty() {
        if let Err(e) = message.ack().await {
            tracing::warn!(error = %e, "acknowledging a dropped event failed");
        }
        return Vec::new();
    }
    let shared = Arc::new(SharedAck::new(message, events.len()));
    events
        .into_iter()
        .map(|event| {
            Ok(Delivery {
                event,
                message: Some(shared.clone()),
            })
        })
        .collect()
}
