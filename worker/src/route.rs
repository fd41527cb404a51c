//! Reads an upstream session's SSE streams before rmcp does, so that what the upstream sends
//! besides answers keeps its order. On the stream of a call's request (one carrying a
//! `CallTag`), progress, log messages and server-to-client requests are queued on the call
//! in arrival order, and the answer that ends the stream is passed on only after them. The
//! worker answers those server requests upstream itself, once the client has answered.
//! Log messages elsewhere, and list or resource changes anywhere, go to the session's
//! owner queue. Whatever else the stream holds reaches rmcp untouched.

#![allow(deprecated)]

use crate::relay::{Ask, CallTag, Diverted, Event};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::ErrorData as McpError;
use rmcp::model::*;
use rmcp::transport::streamable_http_client::{SseError, StreamableHttpClient};
use serde_json::Value;
use sse_stream::Sse;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub type SseStream = BoxStream<'static, Result<Sse, SseError>>;

/// Where one upstream session's streams send what they do not pass on to rmcp.
#[derive(Debug, Clone)]
pub struct Router {
    pub owner: mpsc::Sender<ServerNotification>,
    pub diverted: Diverted,
    /// Set when a stream carried an event over the size bound (rmcp then closes the
    /// session, and the calls on it fail without saying why).
    pub oversized: Arc<std::sync::atomic::AtomicBool>,
}

/// What answering a server request upstream needs: the request's own HTTP context.
#[derive(Debug, Clone)]
pub struct Answerer {
    pub http: reqwest::Client,
    pub uri: Arc<str>,
    pub session_id: Option<Arc<str>>,
    pub auth_header: Option<String>,
    pub headers: HashMap<HeaderName, HeaderValue>,
}

struct Reader {
    router: Router,
    call: Option<(CallTag, Answerer)>,
}

impl Router {
    /// The stream answering a POST; `call` when the request was a call.
    pub fn post_stream(&self, stream: SseStream, call: Option<(CallTag, Answerer)>) -> SseStream {
        read(
            stream,
            Reader {
                router: self.clone(),
                call,
            },
        )
    }

    /// The session's own stream (GET).
    pub fn session_stream(&self, stream: SseStream) -> SseStream {
        read(
            stream,
            Reader {
                router: self.clone(),
                call: None,
            },
        )
    }
}

fn read(stream: SseStream, reader: Reader) -> SseStream {
    futures::stream::unfold((stream, reader), |(mut stream, reader)| async move {
        loop {
            let item = stream.next().await?;
            if let Err(e) = &item
                && crate::error::says_too_large(e)
            {
                reader
                    .router
                    .oversized
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            if let Ok(event) = &item
                && reader.take(event).await
            {
                continue;
            }
            return Some((item, (stream, reader)));
        }
    })
    .boxed()
}

impl Reader {
    /// Takes `event` if it is the relay's to carry; whether it did.
    async fn take(&self, event: &Sse) -> bool {
        // Answers carry no method: only requests and notifications are looked at closely.
        let Some(data) = event.data.as_deref().filter(|d| d.contains("\"method\"")) else {
            return false;
        };
        let Ok(message) = serde_json::from_str::<ServerJsonRpcMessage>(data) else {
            return false;
        };
        match message {
            JsonRpcMessage::Notification(n) => self.notification(n.notification).await,
            JsonRpcMessage::Request(r) => self.request(r.id, r.request).await,
            _ => false,
        }
    }

    async fn notification(&self, notification: ServerNotification) -> bool {
        match (notification, &self.call) {
            (ServerNotification::ProgressNotification(p), Some((tag, _))) => {
                self.to_call(tag, Event::Progress(p.params)).await;
                true
            }
            (ServerNotification::LoggingMessageNotification(l), Some((tag, _))) => {
                self.to_call(tag, Event::Log(l.params)).await;
                true
            }
            (n @ ServerNotification::LoggingMessageNotification(_), None) => {
                self.to_owner(n).await;
                true
            }
            // rmcp sees these too: they invalidate its cached listings.
            (
                n @ (ServerNotification::ResourceUpdatedNotification(_)
                | ServerNotification::ResourceListChangedNotification(_)
                | ServerNotification::ToolListChangedNotification(_)
                | ServerNotification::PromptListChangedNotification(_)),
                _,
            ) => {
                self.to_owner(n).await;
                false
            }
            _ => false,
        }
    }

    async fn request(&self, id: RequestId, request: ServerRequest) -> bool {
        let Some((tag, answerer)) = &self.call else {
            return false;
        };
        let request = match request {
            ServerRequest::CreateMessageRequest(r) => InputRequest::CreateMessage(r),
            ServerRequest::ElicitRequest(r) => InputRequest::Elicitation(r),
            ServerRequest::ListRootsRequest(r) => InputRequest::ListRoots(r),
            _ => return false,
        };
        let (reply, answer) = oneshot::channel();
        tokio::spawn(respond(answerer.clone(), id, request.clone(), answer));
        self.to_call(tag, Event::Ask(Ask { request, reply })).await;
        true
    }

    async fn to_call(&self, tag: &CallTag, event: Event) {
        // Waits while the call's queue is full: the upstream's stream is read no further.
        if tag.0.send(event).await.is_err() {
            self.router.diverted.count("call_ended");
        }
    }

    async fn to_owner(&self, notification: ServerNotification) {
        if self.router.owner.send(notification).await.is_err() {
            self.router.diverted.count("no_owner");
        }
    }
}

/// Answers one server request upstream once the client answered it (or its call ended).
async fn respond(
    answerer: Answerer,
    id: RequestId,
    request: InputRequest,
    answer: oneshot::Receiver<Result<Value, McpError>>,
) {
    let result = match answer.await {
        Ok(Ok(value)) => typed(&request, value),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(McpError::internal_error(
            "the client request ended before answering",
            None,
        )),
    };
    let message = match result {
        Ok(result) => ClientJsonRpcMessage::response(result, id),
        Err(error) => ClientJsonRpcMessage::error(error, Some(id)),
    };
    let Answerer {
        http,
        uri,
        session_id,
        auth_header,
        headers,
    } = answerer;
    if let Err(e) = http
        .post_message(uri, message, session_id, auth_header, headers)
        .await
    {
        tracing::debug!(error = %e, "answering an upstream's request failed");
    }
}

/// The client's answer as the result type the request expects.
fn typed(request: &InputRequest, value: Value) -> Result<ClientResult, McpError> {
    let malformed = |e: serde_json::Error| {
        McpError::internal_error(format!("the client's answer is malformed: {e}"), None)
    };
    match request {
        InputRequest::CreateMessage(_) => serde_json::from_value::<CreateMessageResult>(value)
            .map(|r| ClientResult::CreateMessageResult(Box::new(r)))
            .map_err(malformed),
        InputRequest::Elicitation(_) => serde_json::from_value::<ElicitResult>(value)
            .map(ClientResult::ElicitResult)
            .map_err(malformed),
        InputRequest::ListRoots(_) => serde_json::from_value::<ListRootsResult>(value)
            .map(ClientResult::ListRootsResult)
            .map_err(malformed),
        _ => Err(McpError::invalid_request("unsupported input request", None)),
    }
}
