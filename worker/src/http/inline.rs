//! Calls of a session in memory here, served inline (see `handler::inline`): without rmcp's
//! session worker and the channels between it, the service and the request's stream, each
//! call polled by its own request (see `detached`). Only a plain case is taken: one
//! `tools/call`, `resources/read` or `prompts/get` of a session era client that follows no
//! progress, from no browser (no `Origin`), to an allowed `Host`, with the media types and
//! protocol version rmcp would accept. Everything else goes to rmcp, which checks and
//! answers it as before.
//!
//! The answer is one JSON body, unless the handler sends the client something first (a
//! log message for the call, a request for input): then it is a stream, those first and
//! the answer last, as rmcp's request streams carry them. A call goes on when its client
//! goes away (a disconnection is not a cancellation); the session's
//! `notifications/cancelled` for it stops it.

use super::detached::Detached;
use super::envelope::{self, Message};
use crate::handler::Gateway;
use crate::ordered::Inline;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, Request, StatusCode, header};
use rmcp::model::{ClientRequest, GetMeta as _, ProtocolVersion, RequestId, ServerJsonRpcMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Whether a session's request with JSON-RPC method `method` and `headers` is one for this
/// module: real work that may be served inline, or a cancellation (of such a call, perhaps).
pub(super) fn wanted(method: Option<&str>, headers: &HeaderMap, hosts: &[String]) -> bool {
    match method {
        Some("tools/call" | "resources/read" | "prompts/get") => plain(headers, hosts),
        Some("notifications/cancelled") => true,
        _ => false,
    }
}

/// Whether a request with `headers` may be served inline: the plain case rmcp would let
/// through, judged conservatively (see the module doc); `hosts` are the allowed `Host`s.
pub(super) fn plain(headers: &HeaderMap, hosts: &[String]) -> bool {
    let version = match headers.get("mcp-protocol-version") {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| {
            v < ProtocolVersion::V_2026_07_28.as_str()
                && ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|k| k.as_str() == v)
        }),
    };
    version && plain_http(headers, hosts)
}

/// Whether a request's `headers` are ones rmcp lets through whatever the protocol version:
/// no browser `Origin`, an allowed `Host` (one of `hosts`), a JSON body, and both answer
/// media types accepted.
pub(super) fn plain_http(headers: &HeaderMap, hosts: &[String]) -> bool {
    let accepts = |essence: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                let mut parts = t.split(';');
                let media = parts.next().unwrap_or_default().trim();
                // An explicit zero weight refuses the type.
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .is_some_and(|q| q.trim().parse::<f32>().map_or(true, |q| q <= 0.0))
                });
                media.eq_ignore_ascii_case(essence) && !refused
            })
    };
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    !headers.contains_key(header::ORIGIN)
        && allowed_host(headers, hosts)
        && accepts("application/json")
        && accepts("text/event-stream")
        && json_body
}

/// Whether the request's one `Host` is one of `hosts` (an entry without a port allows any).
fn allowed_host(headers: &HeaderMap, hosts: &[String]) -> bool {
    single_host(headers).is_some_and(|value| allowed_authority(value, hosts))
}

/// The request's `Host`, when it names exactly one.
pub(super) fn single_host(headers: &HeaderMap) -> Option<&http::HeaderValue> {
    let mut values = headers.get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// Whether `Host` value `value` is one of `hosts` (an entry without a port allows any).
pub(super) fn allowed_authority(value: &http::HeaderValue, hosts: &[String]) -> bool {
    let Ok(authority) = value
        .to_str()
        .unwrap_or_default()
        .parse::<http::uri::Authority>()
    else {
        return false;
    };
    let full = authority.as_str().to_ascii_lowercase();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    // An entry with a port is that authority; one without (an IPv6 address has colons of
    // its own) is the host on any port.
    let bare = |h: &str| h.parse::<std::net::Ipv6Addr>().is_ok() || !h.contains(':');
    hosts.iter().any(|h| *h == full || (*h == host && bare(h)))
}

/// Calls served inline now, by session and request id, to stop one its client cancels.
/// An entry lives as long as its call's task, which outlives the answer's stream (and its
/// `ordered::Inline`) when the client goes away: the client may still cancel it.
#[derive(Debug, Default)]
pub(super) struct Calls(Mutex<HashMap<(String, RequestId), CancellationToken>>);

/// A call's entry in `Calls`, removed when dropped.
struct Entry {
    calls: Arc<Calls>,
    key: (String, RequestId),
}

impl Drop for Entry {
    fn drop(&mut self) {
        crate::sync::lock(&self.calls.0).remove(&self.key);
    }
}

impl Calls {
    fn enter(
        self: &Arc<Self>,
        session: &str,
        id: &RequestId,
    ) -> Option<(Entry, CancellationToken)> {
        let key = (session.to_owned(), id.clone());
        let token = CancellationToken::new();
        {
            let mut calls = crate::sync::lock(&self.0);
            if calls.contains_key(&key) {
                return None;
            }
            calls.insert(key.clone(), token.clone());
        }
        Some((
            Entry {
                calls: self.clone(),
                key,
            },
            token,
        ))
    }

    /// Stops call `id` of `session`, if it is served inline here.
    fn cancel(&self, session: &str, id: RequestId) {
        if let Some(token) = crate::sync::lock(&self.0).get(&(session.to_owned(), id)) {
            token.cancel();
        }
    }
}

/// Serves `req`, whose body is `bytes`, on session `session` inline; gives it back when it
/// is not a call to serve so (a cancellation is noted, and given back for rmcp too).
pub(super) async fn serve(
    app: &super::App,
    session: &str,
    req: Request<Body>,
    bytes: &Bytes,
) -> Result<Response, Request<Body>> {
    let (id, request) = match envelope::read(bytes) {
        Message::Call(id, request) => (id, request),
        Message::Cancelled(id) => {
            app.inline_calls.cancel(session, id);
            return Err(req);
        }
        Message::Other => return Err(req),
    };
    let plain_call = request.get_meta().get_progress_token().is_none()
        && request.get_meta().protocol_version().is_none();
    if !plain_call {
        return Err(req);
    }
    let Some((gateway, peer)) = app.breakers.session(session) else {
        return Err(req);
    };
    let Some(taken) = app.local_sessions.inline(session, &id) else {
        return Err(req);
    };
    let Some((entry, token)) = app.inline_calls.enter(session, &id) else {
        return Err(req);
    };
    let (parts, _) = req.into_parts();
    let call = run((gateway, peer), id, request, parts, (entry, token));
    Ok(answer(taken, call).await)
}

/// The call, polled where its answer is awaited; it goes on by itself when its client goes
/// away (see `detached`). `None` when the client cancelled it.
fn run(
    (gateway, peer): (Gateway, rmcp::service::Peer<rmcp::service::RoleServer>),
    id: RequestId,
    request: ClientRequest,
    parts: http::request::Parts,
    (entry, token): (Entry, CancellationToken),
) -> Call {
    Detached::new(async move {
        let _entry = entry;
        tokio::select! {
            () = token.cancelled() => None,
            answer = gateway.serve_inline(peer, id, request, parts) => Some(answer),
        }
    })
}

type Call = Detached<Option<ServerJsonRpcMessage>>;

/// The HTTP answer: the call's JSON answer, or a stream when the handler sent something
/// for the call first.
async fn answer(mut taken: Inline, mut call: Call) -> Response {
    let first = tokio::select! {
        biased;
        Some(message) = taken.next() => message,
        answer = &mut call => {
            return match answer {
                Some(answer) => json(&answer, StatusCode::OK),
                // Cancelled: the stream ends without an answer, as rmcp ends it.
                None => stream(futures::stream::empty().boxed()),
            };
        }
    };
    // A stream now, which its client reads at its own pace: the call goes on regardless.
    let rest = futures::stream::unfold((taken, call.spawn()), |(mut taken, call)| async move {
        let mut handle = call?;
        if let Some(m) = taken.queued() {
            return Some((Some(m), (taken, Some(handle))));
        }
        tokio::select! {
            biased;
            Some(m) = taken.next() => Some((Some(m), (taken, Some(handle)))),
            // Anything sent before the answer has gone out by now.
            answer = &mut handle => Some((answer.ok().flatten(), (taken, None))),
        }
    })
    .filter_map(|m| async move { m });
    stream(
        futures::stream::once(async move { first })
            .chain(rest)
            .boxed(),
    )
}

/// `message` as a plain JSON answer with `status`.
pub(super) fn json(message: &ServerJsonRpcMessage, status: StatusCode) -> Response {
    let body = serde_json::to_vec(message).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream(messages: futures::stream::BoxStream<'static, ServerJsonRpcMessage>) -> Response {
    let events = messages.map(|m| {
        let mut event = b"data: ".to_vec();
        serde_json::to_writer(&mut event, &m).unwrap_or_default();
        event.extend_from_slice(b"\n\n");
        Ok::<_, std::convert::Infallible>(Bytes::from(event))
    });
    let mut response = Response::new(Body::from_stream(events));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}

#[cfg(test)]
#[path = "inline_tests.rs"]
mod tests;
