//! A direct call's POST on the upstream session's own connections (`conns`): written, and
//! its answer read, by the call's task. What the answer's status and media type mean
//! follows rmcp's client: a session the upstream no longer knows is `Lost` (404, or an
//! error that names no request), an error answering the call is the upstream's error,
//! any other failure says its status and the start of its body.

use super::{Direct, Failed, Kind, read_event, unexpected};
use crate::conns::{self, Conns, ConnsError};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use rmcp::model::{ClientJsonRpcMessage, ProtocolVersion, RequestId, ServerResult};
use rmcp::service::ServiceError;
use rmcp::transport::DynamicTransportError;
use rmcp::transport::streamable_http_client::StreamableHttpError;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const SESSION: HeaderName = HeaderName::from_static("mcp-session-id");
/// The start of a failure's body kept to say what went wrong.
const FAILURE_TEXT_MAX: usize = 4096;

/// A request on the session, in parts: where, and with which headers.
pub(super) struct Posted<'a> {
    pub session: Option<Arc<str>>,
    pub version: &'a ProtocolVersion,
    pub headers: HashMap<HeaderName, HeaderValue>,
    pub id: &'a RequestId,
    pub kind: Kind,
}

impl Direct {
    /// Sends `message` as `posted` says on `conns`, and reads its answer.
    pub(super) async fn post(
        &self,
        conns: &Conns,
        message: ClientJsonRpcMessage,
        posted: Posted<'_>,
    ) -> Result<ServerResult, Failed> {
        let body = serde_json::to_vec(&message).map_err(|e| transport(Box::new(e)))?;
        let request = request(conns, body, posted.session.as_deref(), &posted.headers)
            .map_err(|e| transport(Box::new(e)))?;
        let response = conns.send(request).await.map_err(connection)?;
        let (parts, body) = response.into_parts();
        let on_session = posted.session.is_some();
        if parts.status == StatusCode::NOT_FOUND && on_session {
            return Err(Failed::Lost);
        }
        let media = media_type(parts.headers.get(CONTENT_TYPE));
        if !parts.status.is_success() {
            let bound = if media == JSON {
                self.limits.max_json_response_size
            } else {
                FAILURE_TEXT_MAX
            };
            let text = body.first(bound).await.map(|(t, _)| t).unwrap_or_default();
            return Err(failure(parts.status, &text, on_session, posted.id));
        }
        match media.as_str() {
            JSON => {
                let whole = body
                    .collect(self.limits.max_json_response_size)
                    .await
                    .map_err(connection_http)?
                    .ok_or_else(|| too_large(self.limits.max_json_response_size))?;
                let data = std::str::from_utf8(&whole).map_err(|e| transport(Box::new(e)))?;
                read_event(data, posted.id, posted.kind)?.unwrap_or(Err(unexpected()))
            }
            EVENT_STREAM => {
                let stream = conns::sse::events(body, self.limits.max_sse_event_size);
                let call = match &message {
                    ClientJsonRpcMessage::Request(r) => self.http.call_of(
                        rmcp::model::GetExtensions::extensions(&r.request),
                        (&self.uri, &posted.session, &None),
                        &posted.headers,
                    ),
                    _ => None,
                };
                let stream = self.http.post_stream(stream, call);
                self.read_stream(
                    stream,
                    posted.session,
                    posted.version,
                    posted.id,
                    posted.kind,
                )
                .await
            }
            // Accepted without an answer, or an answer of no kind a call is answered with.
            _ => Err(unexpected()),
        }
    }
}

/// The POST of `body` on upstream session `session`, with the connector's and the
/// call's `headers`.
fn request(
    conns: &Conns,
    body: Vec<u8>,
    session: Option<&str>,
    headers: &HashMap<HeaderName, HeaderValue>,
) -> Result<http::Request<conns::Body>, http::Error> {
    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(conns.origin().target.clone())
        .body(Full::new(Bytes::from(body)))?;
    let h = request.headers_mut();
    h.reserve(headers.len() + 4);
    h.insert(HOST, conns.origin().host_header().clone());
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(
        ACCEPT,
        HeaderValue::from_static("text/event-stream, application/json"),
    );
    if let Some(session) = session {
        h.insert(SESSION, HeaderValue::from_str(session)?);
    }
    for (name, value) in headers {
        h.insert(name.clone(), value.clone());
    }
    Ok(request)
}

/// The media type of a `Content-Type`, lower case, without parameters.
fn media_type(value: Option<&HeaderValue>) -> String {
    let value = value.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = value.split(';').next().unwrap_or_default();
    media.trim().to_ascii_lowercase()
}

/// What a failed answer with `status` and body `text` to request `id` means.
fn failure(status: StatusCode, text: &[u8], on_session: bool, id: &RequestId) -> Failed {
    if let Ok(rmcp::model::ServerJsonRpcMessage::Error(e)) = serde_json::from_slice(text) {
        match e.id {
            // An error that names no request: the session is not known (see `resume`).
            None if on_session => return Failed::Lost,
            Some(named) if named == *id => {
                return Failed::Service(ServiceError::McpError(e.error));
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&text[..text.len().min(FAILURE_TEXT_MAX)]);
    http_failed(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
        format!("HTTP {status}: {text}"),
    )))
}

fn too_large(max_size: usize) -> Failed {
    http_failed(StreamableHttpError::ResponseBodyTooLarge { max_size })
}

/// An error of the kind rmcp's client reports (so `error::says_too_large` reads it alike).
fn http_failed(e: StreamableHttpError<reqwest::Error>) -> Failed {
    transport(Box::new(e))
}

fn connection(e: ConnsError) -> Failed {
    transport(Box::new(e))
}

fn connection_http(e: hyper::Error) -> Failed {
    connection(ConnsError::Http(e))
}

fn transport(e: Box<dyn std::error::Error + Send + Sync>) -> Failed {
    Failed::Service(ServiceError::TransportSend(
        DynamicTransportError::from_parts("streamable-http", std::any::TypeId::of::<Conns>(), e),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    fn id() -> RequestId {
        NumberOrString::String("sy-3".into())
    }

    #[test]
    fn an_error_naming_no_request_on_a_session_is_a_lost_session() {
        let text = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, text, true, &id()),
            Failed::Lost
        ));
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, text, false, &id()),
            Failed::Service(ServiceError::TransportSend(_))
        ));
    }

    #[test]
    fn an_error_answering_the_call_is_the_upstreams_error() {
        let text =
            br#"{"jsonrpc":"2.0","id":"sy-3","error":{"code":-32602,"message":"no such tool"}}"#;
        let Failed::Service(ServiceError::McpError(e)) =
            failure(StatusCode::BAD_REQUEST, text, true, &id())
        else {
            panic!("not the upstream's error");
        };
        assert_eq!(e.message, "no such tool");
    }

    #[test]
    fn any_other_failure_says_its_status_and_body() {
        let failed = failure(StatusCode::BAD_GATEWAY, b"upstream down", true, &id());
        let Failed::Service(e) = failed else {
            panic!("not a failure");
        };
        let text = e.to_string();
        assert!(
            text.contains("502") && text.contains("upstream down"),
            "{text}"
        );
    }

    #[test]
    fn media_types_are_read_without_parameters_or_case() {
        let v = HeaderValue::from_static("Application/JSON; charset=utf-8");
        assert_eq!(media_type(Some(&v)), JSON);
        assert_eq!(media_type(None), "");
    }
}
