//! What an upstream sends besides its answers, carried to the client it belongs to in the
//! upstream's own order.
//! - Progress, log messages and server-to-client requests (sampling, elicitation, roots)
//!   that arrive on the stream of a call's upstream request belong to that call: the
//!   stream reader (`route.rs`) queues them, in arrival order, on the call's `InFlight`,
//!   ahead of the answer that closes the stream. The handler serving the call takes them
//!   from there, from its own task, so they reach the client on the stream of the client's
//!   request, in order, before the result.
//! - Everything else (log messages and list or resource changes on the upstream session's
//!   own stream, or on the stream of a request that is not a call) goes to the session's
//!   current owner, in arrival order, through one forwarding task per upstream session.
//!   What no one can take (a pooled session between borrowers) is counted and dropped.

// Sampling, roots and logging are deprecated for future protocol versions; the versions
// served here have them, and a gateway must carry them.
#![allow(deprecated)]

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rmcp::model::*;
use rmcp::service::{
    Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer, ServiceError,
};
use rmcp::{ClientHandler, ErrorData as McpError};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

use crate::direct::Failed;
use crate::metrics::ReasonLabel;
use crate::upstream::Session;

/// Events one call may have queued before its handler takes them; the upstream's stream is
/// not read further until there is room, so a flood waits instead of growing memory.
const CALL_EVENTS: usize = 64;
/// Unsolicited notifications queued for an upstream session's owner.
const OWNER_EVENTS: usize = 64;

/// A server-to-client request an upstream made while serving a call, and where its answer
/// goes.
#[derive(Debug)]
pub struct Ask {
    pub request: InputRequest,
    pub reply: oneshot::Sender<Result<Value, McpError>>,
}

/// Something an upstream sent on a call's stream, before its answer.
#[derive(Debug)]
pub enum Event {
    Progress(ProgressNotificationParam),
    Log(LoggingMessageNotificationParam),
    Ask(Ask),
}

/// Marks an upstream request as a call whose stream events go to its `InFlight`. It rides
/// the request's in-memory extensions to the HTTP client, which reads the stream.
#[derive(Debug, Clone)]
pub struct CallTag(pub mpsc::Sender<Event>);

/// Where one upstream session's unsolicited traffic goes.
#[derive(Debug)]
pub struct Recipient {
    pub peer: Peer<RoleServer>,
    /// Whether log messages are wanted (2026-07-28 clients ask per request).
    pub wants_logs: bool,
    /// A session client, which can be asked server requests not tied to a call (an
    /// upstream asking for roots when the session starts, say).
    pub session: bool,
}

/// Notifications not delivered in order on their request's stream, by reason. Dropped:
/// `no_owner` (unsolicited, while no client holds the upstream session), `call_ended` (for
/// a call whose client request had already ended), `client_gone` (the client's stream
/// refused it), `no_stream` (for a 2026-07-28 call answered with plain JSON, which has no
/// stream; see `http::stateless`). Delivered elsewhere: `late` (on the session's GET stream, after its request's
/// stream had ended).
#[derive(Debug, Clone, Default)]
pub struct Diverted(pub Family<ReasonLabel, Counter>);

impl Diverted {
    pub fn count(&self, reason: &'static str) {
        self.0.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// How long a session client may take to answer an upstream's request: one that never
/// answers must not hold its places (and perhaps a breaker's probe) forever.
const ASK_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Asks a session client one server-to-client request, for its request `origin` if any
/// (the request rides that request's stream); the answer as JSON.
pub async fn ask_client(
    peer: &Peer<RoleServer>,
    origin: Option<&RequestId>,
    request: &InputRequest,
) -> Result<Value, McpError> {
    let mut request = match request.clone() {
        InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
        InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
        InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
        _ => return Err(McpError::invalid_request("unsupported input request", None)),
    };
    if let Some(origin) = origin {
        request
            .extensions_mut()
            .insert(rmcp::service::OriginatingRequestId(origin.clone()));
    }
    let answer = tokio::time::timeout(ASK_FOR, peer.send_request(request))
        .await
        .map_err(|_| McpError::internal_error("the client did not answer in time", None))?
        .map_err(|e| match e {
            ServiceError::McpError(e) => e,
            other => McpError::internal_error(format!("the client did not answer: {other}"), None),
        })?;
    serde_json::to_value(answer).map_err(|e| McpError::internal_error(e.to_string(), None))
}

type SharedRecipient = Arc<Mutex<Option<Recipient>>>;

/// One upstream session's unsolicited traffic: who takes it now, and the ordered queue to
/// them.
#[derive(Debug)]
pub struct Relay {
    owner: SharedRecipient,
    unsolicited: mpsc::Sender<ServerNotification>,
    pub diverted: Diverted,
}

impl Relay {
    /// A relay and its forwarding task, which ends when the relay and the session's stream
    /// readers are gone.
    pub fn new(diverted: Diverted) -> Self {
        let owner: SharedRecipient = Arc::default();
        let (unsolicited, queue) = mpsc::channel(OWNER_EVENTS);
        tokio::spawn(forward_unsolicited(owner.clone(), queue, diverted.clone()));
        Self {
            owner,
            unsolicited,
            diverted,
        }
    }

    /// Sends this session's unsolicited traffic to `owner` from now on (`None`: drop it).
    pub fn set_owner(&self, owner: Option<Recipient>) {
        {
            let mut o = crate::sync::lock(&self.owner);
            *o = owner;
        }
    }

    /// The queue to the owner, for the session's stream readers.
    pub fn unsolicited(&self) -> mpsc::Sender<ServerNotification> {
        self.unsolicited.clone()
    }

    fn owner_peer(owner: &SharedRecipient, for_logs: bool) -> Option<Peer<RoleServer>> {
        let owner = crate::sync::lock(owner);
        owner
            .as_ref()
            .filter(|o| o.wants_logs || !for_logs)
            .map(|o| o.peer.clone())
    }
}

async fn forward_unsolicited(
    owner: SharedRecipient,
    mut queue: mpsc::Receiver<ServerNotification>,
    diverted: Diverted,
) {
    while let Some(notification) = queue.recv().await {
        let for_logs = matches!(
            notification,
            ServerNotification::LoggingMessageNotification(_)
        );
        match Relay::owner_peer(&owner, for_logs) {
            Some(peer) => {
                if peer.send_notification(notification).await.is_err() {
                    diverted.count("client_gone");
                }
            }
            None => diverted.count("no_owner"),
        }
    }
}

/// The client side of an upstream session. Requests the stream readers did not take (those
/// on the session's own stream, or on the stream of a listing) go to a session client that
/// owns the session; the notifications rmcp still sees were already passed on by the
/// stream readers.
#[derive(Debug, Clone)]
pub struct RelayHandler {
    pub relay: Arc<Relay>,
    pub info: ClientConfig,
}

impl RelayHandler {
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        request: InputRequest,
    ) -> Result<T, McpError> {
        let unroutable = || {
            McpError::internal_error("no client request is waiting for this server request", None)
        };
        let session = crate::sync::lock(&self.relay.owner)
            .as_ref()
            .filter(|o| o.session)
            .map(|o| o.peer.clone());
        let value = ask_client(&session.ok_or_else(unroutable)?, None, &request).await?;
        serde_json::from_value(value).map_err(|e| {
            McpError::internal_error(format!("the client's answer is malformed: {e}"), None)
        })
    }
}

impl ClientHandler for RelayHandler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
        self.ask(request).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let request = InputRequest::Elicitation(ElicitRequest::new(params));
        self.ask(request).await
    }

    async fn list_roots(
        &self,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        let request = InputRequest::ListRoots(ListRootsRequest::default());
        self.ask(request).await
    }
}

/// What a request in flight upstream produced next.
#[derive(Debug)]
pub enum Step {
    Event(Event),
    Done(Result<ServerResult, ServiceError>),
}

/// A request in flight upstream. Dropping it before its answer cancels the request
/// upstream.
pub struct InFlight {
    answer: Option<BoxFuture<'static, Result<ServerResult, ServiceError>>>,
    /// The answer, once it came, while events queued before it are still being taken.
    done: Option<Result<ServerResult, ServiceError>>,
    events: mpsc::Receiver<Event>,
    /// The id the request went upstream under.
    id: Arc<Mutex<RequestId>>,
    peer: Peer<RoleClient>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("id", &*crate::sync::lock(&self.id))
            .finish_non_exhaustive()
    }
}

impl InFlight {
    /// Sends `request` on `upstream`, with `meta` added to its `_meta`: straight over HTTP
    /// where the session allows (see `direct`), else through rmcp's client.
    pub async fn start(
        upstream: &Session,
        mut request: ClientRequest,
        meta: Option<RequestMetaObject>,
    ) -> Result<Self, ServiceError> {
        let (tag, events) = mpsc::channel(CALL_EVENTS);
        request.extensions_mut().insert(CallTag(tag));
        let peer = upstream.peer().clone();
        let Some((session, version)) = crate::direct::route(upstream) else {
            let (id, answer) = send(&peer, request, meta).await?;
            return Ok(Self::new(answer, events, Arc::new(Mutex::new(id)), peer));
        };
        let direct = upstream.direct.clone();
        let id = direct.next_id();
        let sent = Arc::new(Mutex::new(id.clone()));
        // Only an upstream session can be lost, and the request sent again through rmcp:
        // a 2026-07-28 upstream's call needs no copy kept.
        let again = session.is_some().then(|| (request.clone(), meta.clone()));
        let answer = {
            let (peer, sent) = (peer.clone(), sent.clone());
            async move {
                let mut first = request;
                if let Some(meta) = meta {
                    first.get_meta_mut().extend(meta);
                }
                match direct.send(session, &version, first, id).await {
                    Ok(result) => Ok(result),
                    Err(Failed::Service(e)) => Err(e),
                    // Nothing ran: rmcp opens a new upstream session and sends it there.
                    Err(Failed::Lost) => {
                        let (request, meta) = again.ok_or(ServiceError::TransportClosed)?;
                        let (id, answer) = send(&peer, request, meta).await?;
                        *crate::sync::lock(&sent) = id;
                        answer.await
                    }
                }
            }
        };
        Ok(Self::new(Box::pin(answer), events, sent, peer))
    }

    fn new(
        answer: BoxFuture<'static, Result<ServerResult, ServiceError>>,
        events: mpsc::Receiver<Event>,
        id: Arc<Mutex<RequestId>>,
        peer: Peer<RoleClient>,
    ) -> Self {
        Self {
            answer: Some(answer),
            done: None,
            events,
            id,
            peer,
        }
    }

    /// An event already queued, without waiting.
    pub fn queued(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The next event, or the answer once every event the upstream sent before it has been
    /// taken.
    pub async fn next(&mut self) -> Step {
        loop {
            let Some(answer) = self.answer.as_mut() else {
                // The stream reader queued everything that preceded the answer before
                // handing the answer on, so what is queued now is all there is.
                if let Some(event) = self.queued() {
                    return Step::Event(event);
                }
                return Step::Done(
                    self.done
                        .take()
                        .unwrap_or(Err(ServiceError::TransportClosed)),
                );
            };
            tokio::select! {
                biased;
                Some(event) = self.events.recv() => return Step::Event(event),
                result = answer => {
                    self.answer = None;
                    self.done = Some(result);
                }
            }
        }
    }
}

/// Sends `request` (with `meta` added) through rmcp's client: its id, and its answer.
async fn send(
    peer: &Peer<RoleClient>,
    request: ClientRequest,
    meta: Option<RequestMetaObject>,
) -> Result<
    (
        RequestId,
        BoxFuture<'static, Result<ServerResult, ServiceError>>,
    ),
    ServiceError,
> {
    let mut options = PeerRequestOptions::no_options();
    options.meta = meta;
    let handle = peer.send_cancellable_request(request, options).await?;
    Ok((handle.id.clone(), Box::pin(handle.await_response())))
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.answer.is_some() {
            // Abandoned (timeout, client cancellation, shutdown): tell the upstream.
            let peer = self.peer.clone();
            let params = CancelledNotificationParam::new(
                Some(crate::sync::lock(&self.id).clone()),
                Some("the client's request was cancelled or timed out".into()),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { peer.notify_cancelled(params).await.ok() });
            }
        }
    }
}
