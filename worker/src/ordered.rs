//! Session clients (2025-03-26 .. 2025-11-25) get the log messages relayed for a request on
//! that request's own stream, in order with its progress and before its result. rmcp's
//! session manager routes progress and answers to the request's stream but every other
//! notification to the session's GET stream, where a client may read it after the result,
//! or never. This wrapper around a session manager takes log messages marked `ForRequest`
//! into the request's stream itself.
//!
//! Ordering rests on one fact: the handler sends a call's notifications one at a time and
//! waits for each to be accepted (by rmcp's session worker, or by the queue here) before it
//! sends the next or returns the result. Every message for the request is numbered when the
//! handler sends it; the request's stream then yields, of what is ready, the lowest number
//! first, and a ready log message never waits for a numbered message still in transit,
//! because anything numbered before it has already been accepted.

use futures::{Stream, StreamExt as _};
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, GetExtensions as _, JsonRpcMessage, RequestId, ServerJsonRpcMessage,
    ServerNotification,
};
use rmcp::service::OriginatingRequestId;
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

use crate::relay::Diverted;

/// Marks a notification as belonging to the client request with this id.
#[derive(Debug, Clone)]
pub struct ForRequest(pub RequestId);

/// The send order of a message within its session.
#[derive(Debug, Clone, Copy)]
struct Seq(u64);

/// Log messages queued per request stream before the client reads them; a slow reader
/// holds the handler back instead of growing memory.
const SIDE_QUEUE: usize = 64;

/// One session's request streams that take log messages.
#[derive(Debug, Default)]
struct Side {
    next: AtomicU64,
    requests: Mutex<HashMap<RequestId, mpsc::Sender<(u64, ServerJsonRpcMessage)>>>,
    /// Requests served inline (see `handler::inline`): rmcp's session knows nothing of
    /// them, so what the handler asks the client for them comes here too.
    inline: Mutex<std::collections::HashSet<RequestId>>,
    /// Woken whenever a request's stream lets go of its registration.
    released: tokio::sync::Notify,
}

impl Side {
    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn queue(&self, id: &RequestId) -> Option<mpsc::Sender<(u64, ServerJsonRpcMessage)>> {
        crate::sync::lock(&self.requests).get(id).cloned()
    }
}

/// A session manager whose request streams carry their log messages.
pub struct OrderedSessions<M> {
    pub inner: Arc<M>,
    sides: Mutex<HashMap<SessionId, Weak<Side>>>,
    diverted: Diverted,
}

impl<M> std::fmt::Debug for OrderedSessions<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedSessions").finish_non_exhaustive()
    }
}

impl<M: SessionManager> OrderedSessions<M> {
    /// Wraps `inner`; log messages that arrive after their request's stream ended go to the
    /// session's GET stream and are counted in `diverted` as `late`.
    pub fn new(inner: Arc<M>, diverted: Diverted) -> Self {
        Self {
            inner,
            sides: Mutex::default(),
            diverted,
        }
    }

    fn attach(&self, id: &SessionId, transport: M::Transport) -> OrderedTransport<M::Transport> {
        let side = Arc::new(Side::default());
        {
            let mut sides = crate::sync::lock(&self.sides);
            // Sessions rmcp let go of (idle, closed) leave dead entries behind.
            sides.retain(|_, s| s.strong_count() > 0);
            sides.insert(id.clone(), Arc::downgrade(&side));
        }
        OrderedTransport {
            inner: transport,
            side,
            diverted: self.diverted.clone(),
        }
    }

    fn side(&self, id: &SessionId) -> Option<Arc<Side>> {
        crate::sync::lock(&self.sides).get(id)?.upgrade()
    }

    /// Resolves once no request of session `id` waits for its answer: each request's
    /// stream here has taken its answer (or ended), and each request served inline has
    /// ended. At once for a session not here.
    pub fn answered(&self, id: &SessionId) -> impl Future<Output = ()> + Send + 'static {
        let side = self.side(id);
        async move {
            let Some(side) = side else { return };
            loop {
                let released = side.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if crate::sync::lock(&side.requests).is_empty() {
                    return;
                }
                released.await;
            }
        }
    }

    /// Takes what the handler sends for request `request` of session `session`, a request
    /// served inline: its log messages and the requests it makes of the client. `None`
    /// when the session is not here or a request with that id is open.
    pub fn inline(&self, session: &str, request: &RequestId) -> Option<Inline> {
        let side = self.side(&SessionId::from(session.to_owned()))?;
        let (tx, rx) = mpsc::channel(SIDE_QUEUE);
        {
            let mut requests = crate::sync::lock(&side.requests);
            if requests.contains_key(request) {
                return None;
            }
            requests.insert(request.clone(), tx);
        }
        crate::sync::lock(&side.inline).insert(request.clone());
        Some(Inline(Registration {
            side,
            id: request.clone(),
            logs: rx,
        }))
    }
}

impl<M: SessionManager> SessionManager for OrderedSessions<M> {
    type Error = M::Error;
    type Transport = OrderedTransport<M::Transport>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        let transport = self.attach(&id, transport);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        {
            let mut sides = crate::sync::lock(&self.sides);
            sides.remove(id);
        }
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let registered = match (&message, self.side(id)) {
            (JsonRpcMessage::Request(r), Some(side)) => {
                let (tx, rx) = mpsc::channel(SIDE_QUEUE);
                let fresh = {
                    let mut requests = crate::sync::lock(&side.requests);
                    // A client reusing the id of a request still open keeps the first.
                    let fresh = !requests.contains_key(&r.id);
                    if fresh {
                        requests.insert(r.id.clone(), tx);
                    }
                    fresh
                };
                fresh.then(|| Registration {
                    side,
                    id: r.id.clone(),
                    logs: rx,
                })
            }
            _ => None,
        };
        let inner = self.inner.create_stream(id, message).await?;
        Ok(Merged {
            inner: Box::pin(inner),
            registration: registered,
            ahead: None,
            held: None,
            flushing: VecDeque::new(),
            ended: false,
        })
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => {
                RestoreOutcome::Restored(self.attach(&id, transport))
            }
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// A session's transport: numbers what the handler sends and takes marked log messages to
/// their request's stream.
pub struct OrderedTransport<T> {
    inner: T,
    side: Arc<Side>,
    diverted: Diverted,
}

impl<T> std::fmt::Debug for OrderedTransport<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedTransport").finish_non_exhaustive()
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for OrderedTransport<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        mut item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let seq = self.side.number();
        let mut taken = None;
        match &mut item {
            JsonRpcMessage::Notification(n) => {
                let marked = match &mut n.notification {
                    ServerNotification::LoggingMessageNotification(l) => {
                        l.extensions.remove::<ForRequest>()
                    }
                    _ => None,
                };
                if let Some(ForRequest(id)) = marked {
                    taken = self.side.queue(&id);
                    if taken.is_none() {
                        // Its request's stream has ended: the session's stream takes it.
                        self.diverted.count("late");
                    }
                }
                n.notification.extensions_mut().insert(Seq(seq));
            }
            JsonRpcMessage::Request(r) => {
                if let Some(origin) = r.request.extensions().get::<OriginatingRequestId>()
                    && crate::sync::lock(&self.side.inline).contains(&origin.0)
                {
                    taken = self.side.queue(&origin.0);
                }
                r.request.extensions_mut().insert(Seq(seq));
            }
            _ => {}
        }
        let diverted = self.diverted.clone();
        match taken {
            Some(queue) => futures::future::Either::Left(async move {
                if queue.send((seq, item)).await.is_err() {
                    // The request's stream ended (the client went away) meanwhile.
                    diverted.count("client_gone");
                }
                Ok(())
            }),
            None => futures::future::Either::Right(self.inner.send(item)),
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.inner.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// The registration of a request's stream for its log messages; dropped with the stream.
struct Registration {
    side: Arc<Side>,
    id: RequestId,
    logs: mpsc::Receiver<(u64, ServerJsonRpcMessage)>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut requests = crate::sync::lock(&self.side.requests);
            requests.remove(&self.id);
        }
        crate::sync::lock(&self.side.inline).remove(&self.id);
        self.side.released.notify_waiters();
    }
}

/// What the handler sends for a request served inline, until this is dropped.
pub struct Inline(Registration);

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Inline").field(&self.0.id).finish()
    }
}

impl Inline {
    /// The next message, in the order the handler sent them.
    pub async fn next(&mut self) -> Option<ServerJsonRpcMessage> {
        self.0.logs.recv().await.map(|(_, m)| m)
    }

    /// A message already queued, if any.
    pub fn queued(&mut self) -> Option<ServerJsonRpcMessage> {
        self.0.logs.try_recv().ok().map(|(_, m)| m)
    }
}

/// A request's stream: rmcp's, with the request's log messages merged in by number.
struct Merged {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    registration: Option<Registration>,
    /// The next message of rmcp's stream, held while earlier log messages go out.
    ahead: Option<ServerSseMessage>,
    /// The next log message, held while earlier messages of rmcp's stream go out.
    held: Option<(u64, ServerJsonRpcMessage)>,
    /// Log messages to send before the answer that ends the stream.
    flushing: VecDeque<ServerSseMessage>,
    ended: bool,
}

fn seq_of(message: &ServerSseMessage) -> Option<u64> {
    let seq = match message.message.as_deref()? {
        JsonRpcMessage::Notification(n) => n.notification.extensions().get::<Seq>(),
        JsonRpcMessage::Request(r) => r.request.extensions().get::<Seq>(),
        _ => None,
    };
    seq.map(|s| s.0)
}

fn ends_stream(message: &ServerSseMessage) -> bool {
    matches!(
        message.message.as_deref(),
        Some(JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_))
    )
}

fn log_event(message: ServerJsonRpcMessage) -> ServerSseMessage {
    ServerSseMessage::from_message(message)
}

impl Stream for Merged {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(log) = this.flushing.pop_front() {
            return Poll::Ready(Some(log));
        }
        if this.ahead.is_none() && !this.ended {
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(m)) => this.ahead = Some(m),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => {}
            }
        }
        let Some(reg) = this.registration.as_mut() else {
            return match this.ahead.take() {
                Some(m) => Poll::Ready(Some(m)),
                None if this.ended => Poll::Ready(None),
                None => Poll::Pending,
            };
        };
        if this.ended || this.ahead.as_ref().is_some_and(ends_stream) {
            // The handler sent everything for the request before its answer, so all of its
            // log messages are queued by now: they go out first.
            if let Some((_, log)) = this.held.take() {
                this.flushing.push_back(log_event(log));
            }
            while let Ok((_, log)) = reg.logs.try_recv() {
                this.flushing.push_back(log_event(log));
            }
            this.registration = None;
            return match this.flushing.pop_front() {
                Some(log) => Poll::Ready(Some(log)),
                None => Poll::Ready(this.ahead.take()),
            };
        }
        if this.held.is_none()
            && let Poll::Ready(Some(log)) = reg.logs.poll_recv(cx)
        {
            this.held = Some(log);
        }
        let log_first = match (&this.ahead, &this.held) {
            (Some(m), Some((n, _))) => seq_of(m).is_some_and(|s| s > *n),
            (None, Some(_)) => true,
            _ => false,
        };
        if log_first {
            let (_, log) = this.held.take().unwrap_or_else(|| unreachable!());
            return Poll::Ready(Some(log_event(log)));
        }
        match this.ahead.take() {
            Some(m) => Poll::Ready(Some(m)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
#[path = "ordered_tests.rs"]
mod tests;
