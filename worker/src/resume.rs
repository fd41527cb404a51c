//! The HTTP side of one upstream session: rmcp's reqwest client, plus what carrying a client
//! session across workers needs. It reports the session id an upstream assigns, so the
//! worker can record it with the client session; it can take over an upstream session
//! another worker (or this one, before it let the client session go idle) opened, by
//! answering rmcp's `initialize` handshake from that record instead of sending it; and it
//! ends the upstream session only when the client ended its own. Its SSE streams are read
//! by `route.rs` before rmcp sees them, so what the upstream sends keeps its order. An
//! upstream session the upstream has forgotten (it restarted) is reported as expired
//! however the upstream says so, and rmcp opens another at once.

use crate::relay::CallTag;
use crate::route::{Answerer, Router};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::GetExtensions as _;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, InitializeResult,
    ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An upstream session to take over: its id and what its server said at `initialize`.
#[derive(Debug, Clone)]
pub struct Takeover {
    pub session_id: String,
    pub init: InitializeResult,
}

/// Called with each session id the upstream assigns.
pub type OnSession = Arc<dyn Fn(String) + Send + Sync>;
/// Asked before the upstream session is ended: whether the client ended its session.
pub type MayEnd = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    takeover: Option<Takeover>,
    /// The `notifications/initialized` that follows a taken-over handshake is not sent.
    swallow_initialized: bool,
}

#[derive(Clone)]
pub struct SessionClient {
    http: reqwest::Client,
    state: Arc<Mutex<State>>,
    on_session: OnSession,
    may_end: MayEnd,
    router: Router,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient").finish_non_exhaustive()
    }
}

impl SessionClient {
    pub fn new(
        http: reqwest::Client,
        takeover: Option<Takeover>,
        on_session: OnSession,
        may_end: MayEnd,
        router: Router,
    ) -> Self {
        Self {
            http,
            state: Arc::new(Mutex::new(State {
                takeover,
                swallow_initialized: false,
            })),
            on_session,
            may_end,
            router,
        }
    }

    /// What to answer locally instead of sending `message`, if anything.
    fn intercept(&self, message: &ClientJsonRpcMessage) -> Option<StreamableHttpPostResponse> {
        let mut state = crate::sync::lock(&self.state);
        match message {
            ClientJsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::InitializeRequest(_)) =>
            {
                // Used once: if the upstream has forgotten the session, rmcp starts a new
                // one with a real handshake.
                let takeover = state.takeover.take()?;
                state.swallow_initialized = true;
                let answer = ServerJsonRpcMessage::response(
                    ServerResult::InitializeResult(takeover.init),
                    r.id.clone(),
                );
                Some(StreamableHttpPostResponse::Json(
                    answer,
                    Some(takeover.session_id),
                ))
            }
            ClientJsonRpcMessage::Notification(n)
                if state.swallow_initialized
                    && matches!(
                        n.notification,
                        ClientNotification::InitializedNotification(_)
                    ) =>
            {
                state.swallow_initialized = false;
                Some(StreamableHttpPostResponse::Accepted)
            }
            _ => None,
        }
    }

    /// Notes the session an upstream assigned in `response` to an `initialize`.
    fn observe(&self, response: &StreamableHttpPostResponse) {
        let assigned = match response {
            StreamableHttpPostResponse::Json(_, id) | StreamableHttpPostResponse::Sse(_, id) => {
                id.clone()
            }
            _ => None,
        };
        if let Some(id) = assigned {
            (self.on_session)(id);
        }
    }
}

/// Where a request is sent: the upstream's URL, the upstream session, the credential.
pub(crate) type Target<'a> = (&'a Arc<str>, &'a Option<Arc<str>>, &'a Option<String>);

impl SessionClient {
    /// The call a request with `extensions` is for, with what answering the upstream's
    /// requests on its stream needs (the request's `target` and `headers`); `None` when
    /// the request is not a call's.
    pub(crate) fn call_of(
        &self,
        extensions: &rmcp::model::Extensions,
        (uri, session_id, auth_header): Target<'_>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Option<(CallTag, Answerer)> {
        let tag = extensions.get::<CallTag>()?.clone();
        let answerer = Answerer {
            http: self.http.clone(),
            uri: uri.clone(),
            session_id: session_id.clone(),
            auth_header: auth_header.clone(),
            headers: headers.clone(),
        };
        Some((tag, answerer))
    }

    /// The stream answering a POST, read by `route.rs` before anyone else; `call` when the
    /// request was a call's.
    pub(crate) fn post_stream(
        &self,
        stream: BoxStream<'static, Result<Sse, SseError>>,
        call: Option<(CallTag, Answerer)>,
    ) -> BoxStream<'static, Result<Sse, SseError>> {
        self.router.post_stream(stream, call)
    }
}

/// Whether `response` to a request sent on a session says the upstream no longer knows
/// the session. The spec's answer is 404, which rmcp's client already takes as such; many
/// servers (the TypeScript SDK's examples among them) answer 400 with a JSON-RPC error
/// that names no request instead. A server that read the request would name it, so such
/// an answer to a request means its session is gone: reported as expired, rmcp opens a
/// new upstream session and sends the request again.
fn lost_session(response: &StreamableHttpPostResponse) -> bool {
    matches!(
        response,
        StreamableHttpPostResponse::Json(ServerJsonRpcMessage::Error(e), _) if e.id.is_none()
    )
}

fn is_initialize(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        ClientJsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::InitializeRequest(_))
    )
}

impl StreamableHttpClient for SessionClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        if let Some(local) = self.intercept(&message) {
            return Ok(local);
        }
        if let ClientJsonRpcMessage::Request(r) = &message {
            crate::traced::add_headers(r.request.extensions(), &mut custom_headers);
        }
        let on_session = session_id.is_some();
        let call = match &message {
            ClientJsonRpcMessage::Request(r) => self.call_of(
                r.request.extensions(),
                (&uri, &session_id, &auth_header),
                &custom_headers,
            ),
            _ => None,
        };
        // What is asked of the answer, learnt before the message goes (it is not kept).
        let is_request = matches!(message, ClientJsonRpcMessage::Request(_));
        let is_initialize = is_initialize(&message);
        let response = self
            .http
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await?;
        if on_session && is_request && lost_session(&response) {
            return Err(StreamableHttpError::SessionExpired);
        }
        if is_initialize {
            self.observe(&response);
        }
        Ok(match response {
            StreamableHttpPostResponse::Sse(stream, id) => {
                StreamableHttpPostResponse::Sse(self.post_stream(stream, call), id)
            }
            other => other,
        })
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        // A client session let go here (idle, or this worker stopping) may go on elsewhere,
        // on the same upstream session: only the client's own end ends it upstream.
        if !(self.may_end)().await {
            return Ok(());
        }
        self.http
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let stream = self
            .http
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await?;
        Ok(self.router.session_stream(stream))
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let stream = self
            .http
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await?;
        Ok(self.router.session_stream(stream))
    }
}

/// `may_end`, unless the session is being ended on purpose (`ending`): then the upstream
/// session is ended whatever `may_end` says.
pub(crate) fn or_ending(may_end: MayEnd, ending: Arc<std::sync::atomic::AtomicBool>) -> MayEnd {
    Arc::new(move || {
        let ended = ending.load(std::sync::atomic::Ordering::Relaxed);
        let asked = may_end();
        Box::pin(async move { ended || asked.await })
    })
}

/// Pooled sessions serve no client session: nothing else carries them on.
pub(crate) fn always_end() -> MayEnd {
    Arc::new(|| Box::pin(async { true }))
}
