//! Usage reports from workers to the control plane: one event per real call (tools/call,
//! resources/read, prompts/get), each with an id so a consumer can tell repeats apart. On
//! NATS they go to the JetStream stream `SWITCHYARD_USAGE` (subject per tenant; the server
//! drops repeats of an id within its duplicate window) and the control plane reads them
//! with a durable consumer, acknowledging each after folding it in. Workers never write to
//! the database.

use crate::{BusError, Result};
use async_nats::jetstream;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const USAGE_STREAM: &str = "SWITCHYARD_USAGE";
const SUBJECT_PREFIX: &str = "switchyard.usage";
const CONSUMER: &str = "control-plane";

/// The real work a usage event reports (on the wire as the MCP method name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UsageMethod {
    #[serde(rename = "tools/call")]
    ToolsCall,
    #[serde(rename = "resources/read")]
    ResourcesRead,
    #[serde(rename = "prompts/get")]
    PromptsGet,
}

impl UsageMethod {
    /// Whether it counts against the monthly tool-call quota.
    pub fn is_tool_call(self) -> bool {
        self == Self::ToolsCall
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Unique per call; repeats carry the same id.
    pub id: String,
    pub tenant: String,
    pub key_id: String,
    pub method: UsageMethod,
    /// The name (or URI) the client asked for.
    pub target: String,
    pub connector: String,
    pub ok: bool,
    /// Unix milliseconds when the call arrived.
    pub at_ms: i64,
    pub duration_ms: u64,
}

/// One received event; acknowledge it once it has been folded in.
pub struct Delivery {
    pub event: UsageEvent,
    message: Option<jetstream::Message>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub async fn ack(self) -> Result<()> {
        if let Some(m) = self.message {
            m.ack()
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
pub trait UsageBus: Send + Sync + std::fmt::Debug + 'static {
    async fn publish(&self, event: &UsageEvent) -> Result<()>;
    /// Events not yet acknowledged, then new ones as they come.
    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery>>>;
}

/// Ids of recently published events the in-process channel remembers, to drop repeats as
/// NATS's duplicate window does.
const RECENT_IDS: usize = 100_000;

/// The in-process usage channel of `switchyard dev`: one consumer at a time; an event
/// whose id was published recently is dropped.
#[derive(Debug, Clone)]
pub struct MemoryUsage {
    tx: mpsc::Sender<UsageEvent>,
    rx: Slot,
    recent: Arc<std::sync::Mutex<Recent>>,
}

type Slot = Arc<std::sync::Mutex<Option<mpsc::Receiver<UsageEvent>>>>;

/// The consumer's end of the in-process channel; given back when dropped, so a consumer
/// that stops and starts again gets the events sent meanwhile.
struct Consuming {
    rx: Option<mpsc::Receiver<UsageEvent>>,
    slot: Slot,
}

impl futures::Stream for Consuming {
    type Item = Result<Delivery>;

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

impl Drop for Consuming {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            *self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rx);
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

impl Default for MemoryUsage {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(10_000);
        Self {
            tx,
            rx: Arc::new(std::sync::Mutex::new(Some(rx))),
            recent: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl UsageBus for MemoryUsage {
    async fn publish(&self, event: &UsageEvent) -> Result<()> {
        let fresh = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(&event.id);
        if !fresh {
            return Ok(());
        }
        self.tx.try_send(event.clone()).map_err(|_| {
            // Not sent: a retry of it is not a repeat.
            self.recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ids
                .remove(&event.id);
            BusError::Unavailable("usage channel full".into())
        })
    }

    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery>>> {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| BusError::Unavailable("usage is already being consumed".into()))?;
        Ok(Consuming {
            rx: Some(rx),
            slot: self.rx.clone(),
        }
        .boxed())
    }
}

#[derive(Debug, Clone)]
pub struct NatsUsage {
    js: jetstream::Context,
    stream: Arc<tokio::sync::OnceCell<jetstream::stream::Stream>>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl NatsUsage {
    pub fn new(client: async_nats::Client) -> Self {
        Self {
            js: jetstream::new(client),
            stream: Arc::default(),
        }
    }

    async fn stream(&self) -> Result<&jetstream::stream::Stream> {
        self.stream
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(jetstream::stream::Config {
                        name: USAGE_STREAM.to_owned(),
                        description: Some("Switchyard usage events, one per real call".into()),
                        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
                        max_age: Duration::from_secs(7 * 24 * 3600),
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
impl UsageBus for NatsUsage {
    async fn publish(&self, event: &UsageEvent) -> Result<()> {
        self.stream().await?;
        let payload = serde_json::to_vec(event).map_err(unavailable)?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(event.id.clone());
        self.js
            .send_publish(format!("{SUBJECT_PREFIX}.{}", event.tenant), publish)
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn consume(&self) -> Result<BoxStream<'static, Result<Delivery>>> {
        let stream = self.stream().await?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                CONSUMER,
                jetstream::consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    // Folding an event takes milliseconds; one not acknowledged by then
                    // (its consumer died) goes to the next consumer soon.
                    ack_wait: Duration::from_secs(10),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        Ok(messages
            .map(|m| {
                let message = m.map_err(unavailable)?;
                let event: UsageEvent =
                    serde_json::from_slice(&message.payload).map_err(|e| BusError::Corrupt {
                        key: message.subject.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(Delivery {
                    event,
                    message: Some(message),
                })
            })
            .boxed())
    }
}
