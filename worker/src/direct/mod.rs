//! A call sent on an upstream session straight over HTTP, without rmcp's client service:
//! one POST on the session's own connections (`conns`, written and read by the call's
//! task; through the session's HTTP client when a proxy carries upstream connections),
//! its answer read from the JSON body or the stream. Either way the call's stream is read
//! by `route.rs` first, which answers its server requests there. rmcp's client spends
//! several task hops, channels and a full re-serialisation per request; a call needs none
//! of them.
//! On a session-era upstream the POST names the session; an upstream that has forgotten it
//! is `Lost`: nothing ran, and the caller sends the request through rmcp, which opens a
//! new upstream session and sends it again. On a 2026-07-28 upstream, which keeps no
//! session, the request carries what one would have: the client's identity, capabilities
//! and protocol version in its `_meta`, and its method and name in headers
//! (`call_headers`).

mod post;

use crate::call_headers::ParamHeaders;
use crate::conns::Conns;
use crate::releasing::Releasing;
use crate::resume::SessionClient;
use crate::route::SseStream;
use crate::upstream::Session;
use futures::StreamExt as _;
use http::{HeaderName, HeaderValue};
use rmcp::model::ErrorData;
use rmcp::model::GetExtensions as _;
use rmcp::model::{
    ClientConfig, ClientJsonRpcMessage, ClientRequest, GetMeta as _, NumberOrString, ProgressToken,
    ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::ServiceError;
use rmcp::transport::DynamicTransportError;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient as _, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What sending a call directly came to.
#[derive(Debug)]
pub enum Failed {
    /// The upstream does not know the session: the call did not run.
    Lost,
    /// It failed as rmcp's client would have reported it.
    Service(ServiceError),
}

/// How to reach one upstream session over HTTP.
pub struct Direct {
    http: SessionClient,
    uri: Arc<str>,
    /// The connector's own headers (its secrets among them: never printed).
    headers: HashMap<HeaderName, HeaderValue>,
    limits: StreamableHttpResponseLimits,
    /// What a 2026-07-28 request tells of its client in `_meta`: its identity and
    /// capabilities, as the session presents them.
    client: RequestMetaObject,
    /// The session's own count of direct calls (a count shared across sessions would show
    /// an upstream how busy other tenants are).
    sent: Arc<AtomicU64>,
    /// Answered streams of the session read to their end (see `releasing`).
    releasing: Releasing,
    /// The session's own connections, driven by each call's task; `None` when a proxy
    /// carries upstream connections or the connector's URL carries credentials, and calls
    /// go through `http`'s client.
    conns: Option<Conns>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

/// How a call on `session` is sent directly: under the upstream session id (none for a
/// 2026-07-28 upstream), at the protocol version the session speaks; `None` when it goes
/// through rmcp (a session-era upstream that has not assigned a session yet).
pub fn route(session: &Session) -> Option<(Option<Arc<str>>, ProtocolVersion)> {
    if session.is_closed() {
        return None;
    }
    let version = session.peer().peer_info()?.protocol_version.clone();
    if version >= ProtocolVersion::V_2026_07_28 {
        return Some((None, version));
    }
    let id = crate::sync::lock(&session.assigned).clone()?;
    Some((Some(id.into()), version))
}

impl Direct {
    /// The HTTP side `http` of a session rmcp's client reaches with `config`, presenting
    /// `info`, its answers bounded to `bound` bytes (a JSON body, or one stream event) as
    /// rmcp bounds them; calls go on `conns` when there are any.
    pub fn new(
        http: SessionClient,
        config: &StreamableHttpClientTransportConfig,
        info: &ClientConfig,
        bound: usize,
        conns: Option<Conns>,
    ) -> Self {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = bound;
        limits.max_json_response_size = bound;
        let mut client = RequestMetaObject::new();
        client.set_client_info(info.client_info.clone());
        client.set_client_capabilities(info.capabilities.clone());
        Self {
            http,
            uri: config.uri.clone(),
            headers: config.custom_headers.clone(),
            limits,
            client,
            sent: Arc::default(),
            releasing: Releasing::default(),
            conns,
        }
    }

    /// The headers of a request on the session: the connector's, and the version spoken.
    fn headers(&self, version: &ProtocolVersion) -> HashMap<HeaderName, HeaderValue> {
        let mut headers = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(version.as_str()) {
            headers.insert(HeaderName::from_static("mcp-protocol-version"), v);
        }
        headers
    }

    /// A request id for the next call on this session, which rmcp's client never uses (it
    /// counts with numbers), so a direct call's answer is never taken for another's.
    pub fn next_id(&self) -> RequestId {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        NumberOrString::String(format!("sy-{n}").into())
    }

    /// Sends `request` as `id` on upstream session `session` (none on a 2026-07-28
    /// upstream) spoken at `version`, with a progress token of its own as rmcp's client
    /// gives each request; its answer.
    pub async fn send(
        &self,
        session: Option<Arc<str>>,
        version: &ProtocolVersion,
        mut request: ClientRequest,
        id: RequestId,
    ) -> Result<ServerResult, Failed> {
        let kind = Kind::of(&request);
        let mut headers = self.headers(version);
        crate::traced::add_headers(request.extensions(), &mut headers);
        if *version >= ProtocolVersion::STANDARD_HEADERS {
            let params = request.extensions().get::<Arc<ParamHeaders>>();
            crate::call_headers::add(&request, params.map(Arc::as_ref), &mut headers);
        }
        if !version.has_initialize() {
            // No handshake told the upstream who asks: the request does. What its own
            // `_meta` says (the client's capabilities for this request, say) stands over
            // what the session presents, which fills in only what it lacks.
            let mut spoken = RequestMetaObject::new();
            spoken.set_protocol_version(version.clone());
            let own = request.get_meta_mut();
            for (key, value) in self.client.iter().chain(spoken.iter()) {
                if !own.contains_key(key) {
                    own.insert(key.clone(), value.clone());
                }
            }
        }
        let token = ProgressToken(id.clone());
        request.get_meta_mut().set_progress_token(token);
        let message = ClientJsonRpcMessage::request(request, id.clone());
        if let Some(conns) = &self.conns {
            let posted = post::Posted {
                session,
                version,
                headers,
                id: &id,
                kind,
            };
            return self.post(conns, message, posted).await;
        }
        let response = self
            .http
            .post_message_with_response_limits(
                self.uri.clone(),
                message,
                session.clone(),
                None,
                headers,
                self.limits,
            )
            .await
            .map_err(failed)?;
        match response {
            StreamableHttpPostResponse::Json(message, _) => {
                answer(message, &id).unwrap_or(Err(unexpected()))
            }
            StreamableHttpPostResponse::Sse(stream, _) => {
                self.read_stream(stream, session, version, &id, kind).await
            }
            _ => Err(unexpected()),
        }
    }
}

impl Direct {
    /// Reads the call's stream to its answer. An upstream may close the stream before it
    /// answers and expect the client to come back (SEP-1699): it is resumed from the last
    /// event it named, after the retry interval it asked for, as rmcp's client does.
    async fn read_stream(
        &self,
        mut stream: SseStream,
        session: Option<Arc<str>>,
        version: &ProtocolVersion,
        id: &RequestId,
        kind: Kind,
    ) -> Result<ServerResult, Failed> {
        let (mut last_event, mut retry) = (None, DEFAULT_RETRY);
        for resumed in 0..=MAX_RESUMES {
            if resumed > 0 {
                let Some(last) = last_event.clone() else {
                    break;
                };
                tokio::time::sleep(retry).await;
                stream = self
                    .http
                    .get_stream(
                        self.uri.clone(),
                        session.clone(),
                        Some(last),
                        None,
                        self.headers(version),
                    )
                    .await
                    .map_err(failed)?;
            }
            while let Some(event) = stream.next().await {
                let event = event.map_err(|e| failed(StreamableHttpError::Sse(e)))?;
                if let Some(named) = event.id {
                    last_event = Some(named);
                }
                if let Some(ms) = event.retry {
                    retry = Duration::from_millis(ms).min(MAX_RETRY);
                }
                let Some(data) = event.data.as_deref().filter(|d| !d.trim().is_empty()) else {
                    continue;
                };
                if let Some(answer) = read_event(data, id, kind)? {
                    self.releasing.release(stream);
                    return answer;
                }
            }
        }
        // The stream ended before the answer, and could not be resumed: the call may
        // have run.
        Err(Failed::Service(ServiceError::TransportClosed))
    }
}

/// Times a call's stream is resumed after the upstream closed it without answering.
const MAX_RESUMES: usize = 3;
/// How long to wait before resuming when the upstream named no interval, and at most.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// The kind of result a request is answered with.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tool,
    Prompt,
    Resource,
    Other,
}

impl Kind {
    fn of(request: &ClientRequest) -> Self {
        match request {
            ClientRequest::CallToolRequest(_) => Self::Tool,
            ClientRequest::GetPromptRequest(_) => Self::Prompt,
            ClientRequest::ReadResourceRequest(_) => Self::Resource,
            _ => Self::Other,
        }
    }
}

/// What a JSON-RPC message is told apart by, its result left unparsed.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorData>,
}

/// The answer to request `id` that stream event `data` carries, if it carries it.
fn read_event(
    data: &str,
    id: &RequestId,
    kind: Kind,
) -> Result<Option<Result<ServerResult, Failed>>, Failed> {
    let parse_error = |e| failed(StreamableHttpError::Deserialize(e));
    let object = data.trim_start().starts_with('{');
    let Some(envelope) = object
        .then(|| serde_json::from_str::<Envelope<'_>>(data).ok())
        .flatten()
    else {
        // Not one JSON-RPC object: let the general parser say what it is.
        let message: ServerJsonRpcMessage = serde_json::from_str(data).map_err(parse_error)?;
        return Ok(answer(message, id));
    };
    if envelope.method.is_some() || envelope.id.as_ref() != Some(id) {
        return Ok(None);
    }
    if let Some(error) = envelope.error {
        return Ok(Some(Err(Failed::Service(ServiceError::McpError(error)))));
    }
    let raw = envelope.result.map_or("null", RawValue::get);
    Ok(Some(result(raw, kind).map_err(parse_error)))
}

/// A result of the kind the request expects, or of any kind. `ServerResult` is an untagged
/// union of about twenty kinds, which serde tries one after another, so a call's result
/// is parsed as a call's result first.
fn result(raw: &str, kind: Kind) -> Result<ServerResult, serde_json::Error> {
    let expected = match kind {
        Kind::Tool => serde_json::from_str(raw).map(ServerResult::CallToolResult),
        Kind::Prompt => serde_json::from_str(raw).map(ServerResult::GetPromptResult),
        Kind::Resource => serde_json::from_str(raw).map(ServerResult::ReadResourceResult),
        Kind::Other => serde_json::from_str(raw),
    };
    expected.or_else(|_| serde_json::from_str(raw))
}

/// The answer `message` gives to request `id`, if it is that answer.
fn answer(message: ServerJsonRpcMessage, id: &RequestId) -> Option<Result<ServerResult, Failed>> {
    match message {
        ServerJsonRpcMessage::Response(r) if r.id == *id => Some(Ok(r.result)),
        ServerJsonRpcMessage::Error(e) if e.id.as_ref() == Some(id) => {
            Some(Err(Failed::Service(ServiceError::McpError(e.error))))
        }
        _ => None,
    }
}

fn unexpected() -> Failed {
    Failed::Service(ServiceError::UnexpectedResponse)
}

fn failed(e: StreamableHttpError<reqwest::Error>) -> Failed {
    if matches!(e, StreamableHttpError::SessionExpired) {
        return Failed::Lost;
    }
    Failed::Service(ServiceError::TransportSend(
        DynamicTransportError::from_parts(
            "streamable-http",
            std::any::TypeId::of::<SessionClient>(),
            Box::new(e),
        ),
    ))
}

#[cfg(test)]
mod tests;
