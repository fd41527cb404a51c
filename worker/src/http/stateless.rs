//! Calls of 2026-07-28 clients served inline, as `inline` serves a session's: without the
//! service rmcp starts for each such request (a serve loop and a handler on tasks of their
//! own, and a one-shot transport between them and the request). Only a plain case is
//! taken, one rmcp would accept as it is: a `tools/call`, `resources/read` or `prompts/get`
//! with no session, from no browser, to an allowed `Host`, naming 2026-07-28 in its
//! `MCP-Protocol-Version` header and in its `_meta` (with the client's capabilities), with
//! `Mcp-Method` and `Mcp-Name` headers that repeat the body, following no progress and
//! taking no log messages. Everything else goes to rmcp, which checks and answers it.
//!
//! Such a call sends its client nothing before its answer, so the answer is one JSON body,
//! with the HTTP status rmcp gives it. The handler's client peer is one for all these
//! calls (`Listeners`); anything sent through it (an unsolicited notification of a pooled
//! upstream session the call borrows) has no stream to go to and is counted as diverted
//! (`no_stream`). A call goes on when its client goes away, as under rmcp.

use super::detached::Detached;
use super::envelope::{self, Message};
use crate::handler::Gateway;
use crate::relay::Diverted;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use rmcp::model::{
    ClientRequest, ErrorCode, GetMeta as _, Implementation, InitializeRequestParams,
    ProtocolVersion, ServerJsonRpcMessage,
};
use rmcp::service::{Peer, RoleServer, RunningService, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

/// Whether a request without a session, with JSON-RPC method `method` and `headers`, may be
/// a call to serve here (its body decides the rest).
pub(super) fn wanted(method: Option<&str>, headers: &HeaderMap, hosts: &[String]) -> bool {
    let Some(method @ ("tools/call" | "resources/read" | "prompts/get")) = method else {
        return false;
    };
    !headers.contains_key(super::SESSION_HEADER)
        && super::inline::plain_http(headers, hosts)
        && only(headers, "mcp-protocol-version") == Some(ProtocolVersion::V_2026_07_28.as_str())
        && only(headers, "mcp-method") == Some(method)
}

/// The one value of header `name`, when it has exactly one and it is text.
fn only<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// What the call names in `Mcp-Name`: the tool's or prompt's name, the resource's URI.
fn name(request: &ClientRequest) -> Option<&str> {
    match request {
        ClientRequest::CallToolRequest(r) => Some(r.params.name.as_ref()),
        ClientRequest::GetPromptRequest(r) => Some(r.params.name.as_ref()),
        ClientRequest::ReadResourceRequest(r) => Some(&r.params.uri),
        _ => None,
    }
}

/// Whether `request`, sent with `headers`, is the plain case (see the module doc).
fn plain(request: &ClientRequest, headers: &HeaderMap) -> bool {
    let meta = request.get_meta();
    let version = ProtocolVersion::V_2026_07_28;
    // A name that looks Base64-encoded is for rmcp to decode and compare.
    let named = only(headers, "mcp-name")
        .is_some_and(|n| !n.starts_with("=?base64?") && Some(n) == name(request));
    meta.protocol_version() == Some(version.clone())
        && meta.missing_required_keys(&version).is_empty()
        && meta.get_progress_token().is_none()
        && !meta.contains_key(crate::handler::LOG_LEVEL_META)
        && named
}

/// Serves `req`, whose body is `bytes`, inline; gives it back when it is not the plain case.
pub(super) async fn serve(
    app: &super::App,
    req: Request<Body>,
    bytes: &Bytes,
) -> Result<Response, Request<Body>> {
    let Message::Call(id, request) = envelope::read(bytes) else {
        return Err(req);
    };
    if !plain(&request, req.headers()) {
        return Err(req);
    }
    let gateway: Gateway = app.breakers.fork();
    let peer = app.listeners.peer();
    let (parts, _) = req.into_parts();
    let call = Detached::new(async move { gateway.serve_inline(peer, id, request, parts).await });
    Ok(json(&call.await))
}

/// The answer as rmcp gives a 2026-07-28 request's answer that comes first: plain JSON,
/// a refusal of the request's form with `400` and an unknown method with `404`.
fn json(message: &ServerJsonRpcMessage) -> Response {
    let status = match message {
        ServerJsonRpcMessage::Error(e) => match e.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    super::inline::json(message, status)
}

/// The client peer of the calls served here: a 2026-07-28 client as rmcp presents one
/// without a session (the version, no capabilities, no identity: each request carries
/// its own in `_meta`). It lives as long as the worker's app.
pub(super) struct Listeners {
    running: RunningService<RoleServer, Nobody>,
}

impl Listeners {
    pub fn new(diverted: Diverted) -> Self {
        let info = InitializeRequestParams::new(Default::default(), Implementation::default())
            .with_protocol_version(ProtocolVersion::V_2026_07_28);
        let running = rmcp::service::serve_directly(Nobody, Nowhere(diverted), Some(info));
        Self { running }
    }

    fn peer(&self) -> Peer<RoleServer> {
        self.running.peer().clone()
    }
}

/// The service behind `Listeners`: it is never asked anything.
#[derive(Debug, Clone, Copy)]
pub(super) struct Nobody;

impl rmcp::ServerHandler for Nobody {}

/// `Listeners`' transport: nothing comes in, and what goes out is counted and dropped.
struct Nowhere(Diverted);

impl Transport<RoleServer> for Nowhere {
    type Error = std::convert::Infallible;

    fn send(
        &mut self,
        _item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.0.count("no_stream");
        std::future::ready(Ok(()))
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> {
        std::future::pending()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "stateless_tests.rs"]
mod tests;
