//! An upstream that closes a call's stream before it answers and expects the client to come
//! back for the answer (SEP-1699): the worker resumes the stream from the last event the
//! upstream named, after the interval it asked for, and the client gets the answer.
//! The upstream is a small real HTTP server that speaks just enough of the session era.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use switchyard_tests::Stack;

const SESSION: &str = "resumable-1";

#[derive(Default)]
struct Upstream {
    /// The id of the call whose stream was closed, to answer when it is resumed.
    pending: Mutex<Option<Value>>,
    /// `Last-Event-ID`s of the GETs that resumed a stream.
    resumed_from: Mutex<Vec<String>>,
}

fn sse(body: String) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

fn json_answer(id: &Value, result: Value) -> Response {
    let headers = [
        ("content-type", "application/json"),
        ("mcp-session-id", SESSION),
    ];
    (
        headers,
        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    )
        .into_response()
}

async fn post(State(up): State<Arc<Upstream>>, body: String) -> Response {
    let message: Value = serde_json::from_str(&body).unwrap_or_default();
    let id = message["id"].clone();
    match message["method"].as_str().unwrap_or_default() {
        "initialize" => json_answer(
            &id,
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "resumable", "version": "1"}}),
        ),
        "tools/list" => json_answer(
            &id,
            json!({"tools": [{"name": "later", "inputSchema": {"type": "object"}}]}),
        ),
        "tools/call" => {
            // A priming event names the stream and the retry interval; then the stream ends.
            *up.pending.lock().unwrap() = Some(id);
            sse("id: call-1\nretry: 20\ndata: \n\n".into())
        }
        _ if id.is_null() => StatusCode::ACCEPTED.into_response(),
        _ => {
            let error = json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not found"}});
            ([("content-type", "application/json")], error.to_string()).into_response()
        }
    }
}

async fn get(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response {
    let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    up.resumed_from.lock().unwrap().push(last.to_owned());
    let Some(id) = up.pending.lock().unwrap().take() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let answer = json!({"jsonrpc": "2.0", "id": id,
        "result": {"content": [{"type": "text", "text": "answered after a resume"}]}});
    sse(format!("id: call-2\ndata: {answer}\n\n"))
}

#[tokio::test]
async fn a_stream_the_upstream_closed_before_answering_is_resumed() {
    let up = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(post).get(get))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let stack = Stack::start().await;
    let key = stack.tenant_with_connector("acme", "a", &url).await;
    stack.wait_serving("acme", &key).await;
    let client = stack.client("acme", &key).await;
    let answer = client
        .peer()
        .call_tool(CallToolRequestParams::new("a__later"))
        .await
        .unwrap();
    assert_eq!(
        answer.content[0].as_text().map(|t| t.text.as_str()),
        Some("answered after a resume")
    );
    assert_eq!(*up.resumed_from.lock().unwrap(), ["call-1"]);
}
