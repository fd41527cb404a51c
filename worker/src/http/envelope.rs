//! A session's POST body read for `inline`: only what tells a call to serve inline from
//! the rest, and the call itself in rmcp's types, built as rmcp builds it. rmcp reads a
//! body as an untagged union of every message of every kind, buffering it whole and trying
//! each shape in turn; the three calls served inline need one shape each. Whatever this
//! does not read goes to rmcp, which reads it (and answers its errors) as before.

use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, ClientRequest, GetPromptRequestParams,
    JsonRpcVersion2_0, ReadResourceRequestParams, Request, RequestId, RequestMetaObject,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What a client's message is, as far as `inline` cares.
// Made once per request and taken apart at once: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Message {
    /// A call `inline` may serve: `tools/call`, `resources/read` or `prompts/get`.
    Call(RequestId, ClientRequest),
    /// The client cancelled its request `id`.
    Cancelled(RequestId),
    /// Anything else, or nothing readable: for rmcp.
    Other,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[allow(dead_code)]
    jsonrpc: JsonRpcVersion2_0,
    id: Option<RequestId>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// Reads `body`.
pub(super) fn read(body: &[u8]) -> Message {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Message::Other;
    };
    let params = envelope.params.map(RawValue::get);
    match (envelope.id, envelope.method.as_ref(), params) {
        (Some(id), "tools/call", Some(p)) => call(id, p, |mut p: CallToolRequestParams| {
            let meta = p.meta.take();
            (ClientRequest::CallToolRequest(Request::new(p)), meta)
        }),
        (Some(id), "resources/read", Some(p)) => call(id, p, |mut p: ReadResourceRequestParams| {
            let meta = p.meta.take();
            (ClientRequest::ReadResourceRequest(Request::new(p)), meta)
        }),
        (Some(id), "prompts/get", Some(p)) => call(id, p, |mut p: GetPromptRequestParams| {
            let meta = p.meta.take();
            (ClientRequest::GetPromptRequest(Request::new(p)), meta)
        }),
        (None, "notifications/cancelled", Some(p)) => {
            match serde_json::from_str::<CancelledNotificationParam>(p) {
                Ok(CancelledNotificationParam {
                    request_id: Some(id),
                    ..
                }) => Message::Cancelled(id),
                _ => Message::Other,
            }
        }
        _ => Message::Other,
    }
}

/// Call `id` with parameters `params`, made by `make` into the request and its `_meta`;
/// rmcp keeps a request's `_meta` among its extensions, not in its parameters.
fn call<P: DeserializeOwned>(
    id: RequestId,
    params: &str,
    make: impl FnOnce(P) -> (ClientRequest, Option<RequestMetaObject>),
) -> Message {
    let Ok(params) = serde_json::from_str::<P>(params) else {
        return Message::Other;
    };
    let (mut request, meta) = make(params);
    if let Some(meta) = meta {
        use rmcp::model::GetExtensions as _;
        request.extensions_mut().insert(meta);
    }
    Message::Call(id, request)
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
