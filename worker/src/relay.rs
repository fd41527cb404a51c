//! What an upstream sends on its own, carried to the client it belongs to. Each upstream
//! session has a `Relay`: progress notifications find the downstream request by the
//! upstream request's progress token, server-to-client requests (sampling, elicitation,
//! roots) find it by the upstream request whose stream carried them, and everything not
//! tied to a request (log messages, list changes, resource updates) goes to the session's
//! owner. A request in flight upstream is an `InFlight`: the handler that started it
//! receives its server-to-client requests as `Ask`s and answers them, from its own task so
//! that they reach the client on the stream of the request that caused them.

// Sampling, roots and logging are deprecated for future protocol versions; the versions
// served here have them, and a gateway must carry them.
#![allow(deprecated)]

use futures::future::BoxFuture;
use rmcp::model::*;
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient,
    RoleServer, ServiceError,
};
use rmcp::{ClientHandler, ErrorData as McpError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A server-to-client request an upstream made while serving a call, and where its answer
/// goes.
#[derive(Debug)]
pub struct Ask {
    pub request: InputRequest,
    pub reply: oneshot::Sender<Result<serde_json::Value, McpError>>,
}

#[derive(Debug)]
struct Route {
    /// The downstream peer for this call's notifications.
    peer: Peer<RoleServer>,
    /// The client's own progress token, if it asked for progress.
    client_token: Option<ProgressToken>,
    /// The upstream request's progress token.
    upstream_token: ProgressToken,
    /// The highest progress passed on: rmcp hands notifications to the handler on separate
    /// tasks, so they can arrive out of order, and a client must only see progress grow.
    progress: Option<f64>,
    asks: mpsc::Sender<Ask>,
}

/// Where one upstream session's unsolicited traffic goes.
#[derive(Debug)]
pub struct Owner {
    pub peer: Peer<RoleServer>,
    /// Whether log messages are wanted (2026-07-28 clients ask per request).
    pub wants_logs: bool,
    /// A session client, which can be asked server requests not tied to a call (an
    /// upstream asking for roots when the session starts, say).
    pub session: bool,
}

/// How long a session client may take to answer an upstream's request: one that never
/// answers must not hold its places (and perhaps a breaker's probe) forever.
const ASK_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Asks a session client one server-to-client request; the answer as JSON.
pub async fn ask_client(
    peer: &Peer<RoleServer>,
    request: &InputRequest,
) -> Result<Value, McpError> {
    let request = match request.clone() {
        InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
        InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
        InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
        _ => return Err(McpError::invalid_request("unsupported input request", None)),
    };
    let answer = tokio::time::timeout(ASK_FOR, peer.send_request(request))
        .await
        .map_err(|_| McpError::internal_error("the client did not answer in time", None))?
        .map_err(|e| match e {
            ServiceError::McpError(e) => e,
            other => McpError::internal_error(format!("the client did not answer: {other}"), None),
        })?;
    serde_json::to_value(answer).map_err(|e| McpError::internal_error(e.to_string(), None))
}

#[derive(Debug, Default)]
pub struct Relay {
    owner: Mutex<Option<Owner>>,
    calls: Mutex<HashMap<RequestId, Route>>,
}

impl Relay {
    /// Sends this session's unsolicited traffic to `owner` from now on (`None`: drop it).
    pub fn set_owner(&self, owner: Option<Owner>) {
        if let Ok(mut o) = self.owner.lock() {
            *o = owner;
        }
    }

    fn owner_peer(&self, for_logs: bool) -> Option<Peer<RoleServer>> {
        let owner = self.owner.lock().ok()?;
        owner
            .as_ref()
            .filter(|o| o.wants_logs || !for_logs)
            .map(|o| o.peer.clone())
    }

    /// The route of the call an inbound upstream request belongs to: the request whose
    /// stream carried it, or the only call in flight.
    fn asks_for(&self, extensions: &Extensions) -> Option<mpsc::Sender<Ask>> {
        let calls = self.calls.lock().ok()?;
        match extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => calls.get(id).map(|r| r.asks.clone()),
            _ if calls.len() == 1 => calls.values().next().map(|r| r.asks.clone()),
            _ => None,
        }
    }

    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        request: InputRequest,
        extensions: &Extensions,
    ) -> Result<T, McpError> {
        let unroutable = || {
            McpError::internal_error("no client request is waiting for this server request", None)
        };
        let value = match self.asks_for(extensions) {
            Some(asks) => {
                let (reply, answer) = oneshot::channel();
                asks.send(Ask { request, reply })
                    .await
                    .map_err(|_| unroutable())?;
                answer.await.map_err(|_| {
                    McpError::internal_error("the client request ended before answering", None)
                })??
            }
            None => {
                let session = self
                    .owner
                    .lock()
                    .ok()
                    .and_then(|o| o.as_ref().filter(|o| o.session).map(|o| o.peer.clone()));
                ask_client(&session.ok_or_else(unroutable)?, &request).await?
            }
        };
        serde_json::from_value(value).map_err(|e| {
            McpError::internal_error(format!("the client's answer is malformed: {e}"), None)
        })
    }
}

/// The client side of an upstream session: answers the upstream's requests through the
/// relay and forwards its notifications.
#[derive(Debug, Clone)]
pub struct RelayHandler {
    pub relay: Arc<Relay>,
    pub info: ClientConfig,
}

impl ClientHandler for RelayHandler {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
        self.relay.ask(request, &ctx.extensions).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let request = InputRequest::Elicitation(ElicitRequest::new(params));
        self.relay.ask(request, &ctx.extensions).await
    }

    async fn list_roots(
        &self,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        let request = InputRequest::ListRoots(ListRootsRequest::default());
        self.relay.ask(request, &ctx.extensions).await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        let target = self.relay.calls.lock().ok().and_then(|mut calls| {
            let route = calls
                .values_mut()
                .find(|r| r.upstream_token == params.progress_token)?;
            if route.progress.is_some_and(|p| p >= params.progress) {
                return None;
            }
            route.progress = Some(params.progress);
            Some((route.peer.clone(), route.client_token.clone()?))
        });
        if let Some((peer, token)) = target {
            let mut params = params;
            params.progress_token = token;
            peer.notify_progress(params).await.ok();
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        if let Some(peer) = self.relay.owner_peer(true) {
            peer.notify_logging_message(params).await.ok();
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        if let Some(peer) = self.relay.owner_peer(false) {
            peer.notify_resource_updated(params).await.ok();
        }
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        if let Some(peer) = self.relay.owner_peer(false) {
            peer.notify_tool_list_changed().await.ok();
        }
    }

    async fn on_prompt_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        if let Some(peer) = self.relay.owner_peer(false) {
            peer.notify_prompt_list_changed().await.ok();
        }
    }

    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        if let Some(peer) = self.relay.owner_peer(false) {
            peer.notify_resource_list_changed().await.ok();
        }
    }
}

/// What a request in flight upstream produced next.
#[derive(Debug)]
pub enum Step {
    Done(Result<ServerResult, ServiceError>),
    Ask(Ask),
}

/// A request in flight upstream. Dropping it before its answer cancels the request
/// upstream.
pub struct InFlight {
    answer: Option<BoxFuture<'static, Result<ServerResult, ServiceError>>>,
    asks: mpsc::Receiver<Ask>,
    relay: Arc<Relay>,
    id: RequestId,
    peer: Peer<RoleClient>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl InFlight {
    /// Sends `request` on `upstream`; progress goes to `downstream` under `client_token`.
    pub async fn start(
        upstream: &Peer<RoleClient>,
        relay: Arc<Relay>,
        request: ClientRequest,
        downstream: Peer<RoleServer>,
        client_token: Option<ProgressToken>,
        meta: Option<RequestMetaObject>,
    ) -> Result<Self, ServiceError> {
        let mut options = PeerRequestOptions::no_options();
        options.meta = meta;
        let handle = upstream.send_cancellable_request(request, options).await?;
        let (tx, asks) = mpsc::channel(4);
        if let Ok(mut calls) = relay.calls.lock() {
            calls.insert(
                handle.id.clone(),
                Route {
                    peer: downstream,
                    client_token,
                    upstream_token: handle.progress_token.clone(),
                    progress: None,
                    asks: tx,
                },
            );
        }
        let id = handle.id.clone();
        Ok(Self {
            answer: Some(Box::pin(handle.await_response())),
            asks,
            relay,
            id,
            peer: upstream.clone(),
        })
    }

    /// Sends the call's progress and server requests to `downstream` from now on (a held
    /// call continued by the client's next request).
    pub fn rebind(&self, downstream: Peer<RoleServer>, client_token: Option<ProgressToken>) {
        if let Ok(mut calls) = self.relay.calls.lock()
            && let Some(route) = calls.get_mut(&self.id)
        {
            route.peer = downstream;
            route.client_token = client_token;
        }
    }

    /// The next server-to-client request, without waiting for the answer.
    pub async fn next_ask(&mut self) -> Option<Ask> {
        self.asks.recv().await
    }

    /// The answer, or the next server-to-client request made while preparing it.
    pub async fn next(&mut self) -> Step {
        let Some(answer) = self.answer.as_mut() else {
            return Step::Done(Err(ServiceError::TransportClosed));
        };
        tokio::select! {
            biased;
            Some(ask) = self.asks.recv() => Step::Ask(ask),
            result = answer => {
                self.answer = None;
                Step::Done(result)
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.relay.calls.lock() {
            calls.remove(&self.id);
        }
        if self.answer.is_some() {
            // Abandoned (timeout, client cancellation, shutdown): tell the upstream.
            let peer = self.peer.clone();
            let params = CancelledNotificationParam::new(
                Some(self.id.clone()),
                Some("the client's request was cancelled or timed out".into()),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { peer.notify_cancelled(params).await.ok() });
            }
        }
    }
}
