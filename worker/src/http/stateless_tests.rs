use super::{plain, wanted};
use crate::http::envelope::{self, Message};
use http::HeaderMap;
use rmcp::model::ClientRequest;
use serde_json::{Value, json};

fn hosts() -> Vec<String> {
    vec!["mcp.example.com".into()]
}

/// The headers of a plain 2026-07-28 call of tool `echo`, with `changes` applied (`None`
/// removes the header).
fn headers(changes: &[(&'static str, Option<&str>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "mcp.example.com".parse().unwrap());
    h.insert(
        "accept",
        "application/json, text/event-stream".parse().unwrap(),
    );
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("mcp-protocol-version", "2026-07-28".parse().unwrap());
    h.insert("mcp-method", "tools/call".parse().unwrap());
    h.insert("mcp-name", "echo".parse().unwrap());
    for (name, value) in changes {
        match value {
            Some(v) => {
                h.insert(*name, v.parse().unwrap());
            }
            None => {
                h.remove(*name);
            }
        }
    }
    h
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
    })
}

/// The call `body` is, as the request path reads it.
fn request(body: Value) -> ClientRequest {
    match envelope::read(&serde_json::to_vec(&body).unwrap()) {
        Message::Call(_, request) => request,
        other => panic!("not a call: {other:?}"),
    }
}

fn echo(meta: Value) -> ClientRequest {
    request(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}}))
}

#[test]
fn a_plain_call_is_taken() {
    assert!(wanted(Some("tools/call"), &headers(&[]), &hosts()));
    assert!(plain(&echo(meta()), &headers(&[])));
    let read = request(
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
        "params": {"uri": "file:///a", "_meta": meta()}}),
    );
    let h = headers(&[
        ("mcp-method", Some("resources/read")),
        ("mcp-name", Some("file:///a")),
    ]);
    assert!(wanted(Some("resources/read"), &h, &hosts()));
    assert!(plain(&read, &h));
    let prompt = request(json!({"jsonrpc": "2.0", "id": 3, "method": "prompts/get",
        "params": {"name": "greet", "_meta": meta()}}));
    let h = headers(&[
        ("mcp-method", Some("prompts/get")),
        ("mcp-name", Some("greet")),
    ]);
    assert!(wanted(Some("prompts/get"), &h, &hosts()));
    assert!(plain(&prompt, &h));
}

#[test]
fn headers_rmcp_would_check_leave_the_call_to_it() {
    let refused: &[(&'static str, Option<&str>)] = &[
        // A session's request, or one of an older client.
        ("mcp-session-id", Some("s-1")),
        ("mcp-protocol-version", Some("2025-11-25")),
        ("mcp-protocol-version", None),
        // SEP-2243 headers missing or naming something else.
        ("mcp-method", None),
        ("mcp-method", Some("tools/list")),
        // A browser, another host, a body or answer kind rmcp refuses.
        ("origin", Some("https://mcp.example.com")),
        ("host", Some("evil.example")),
        ("accept", Some("application/json")),
        ("content-type", Some("text/plain")),
    ];
    for change in refused {
        assert!(
            !wanted(Some("tools/call"), &headers(&[*change]), &hosts()),
            "{change:?}"
        );
    }
    // Other methods, and none.
    for method in [Some("tools/list"), Some("initialize"), None] {
        let h = headers(&[("mcp-method", method)]);
        assert!(!wanted(method, &h, &hosts()), "{method:?}");
    }
    // A repeated header is rmcp's to refuse, even when both copies agree.
    let mut h = headers(&[]);
    h.append("mcp-method", "tools/call".parse().unwrap());
    assert!(!wanted(Some("tools/call"), &h, &hosts()));
}

#[test]
fn a_name_that_differs_or_needs_decoding_leaves_the_call_to_rmcp() {
    for name in [None, Some("other"), Some("=?base64?ZWNobw==?=")] {
        assert!(
            !plain(&echo(meta()), &headers(&[("mcp-name", name)])),
            "{name:?}"
        );
    }
    let mut h = headers(&[]);
    h.append("mcp-name", "echo".parse().unwrap());
    assert!(!plain(&echo(meta()), &h));
}

#[test]
fn a_call_that_follows_progress_takes_logs_or_lacks_its_meta_is_left_to_rmcp() {
    let with = |key: &str, value: Value| {
        let mut m = meta();
        m[key] = value;
        m
    };
    let without = |key: &str| {
        let mut m = meta();
        m.as_object_mut().unwrap().remove(key);
        m
    };
    for m in [
        with("progressToken", json!("p-1")),
        with("io.modelcontextprotocol/logLevel", json!("info")),
        // The version must be the header's, and the client's capabilities are required.
        with(
            "io.modelcontextprotocol/protocolVersion",
            json!("2025-11-25"),
        ),
        without("io.modelcontextprotocol/protocolVersion"),
        without("io.modelcontextprotocol/clientCapabilities"),
        json!({}),
    ] {
        assert!(!plain(&echo(m.clone()), &headers(&[])), "{m}");
    }
    let bare = request(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo"}}));
    assert!(!plain(&bare, &headers(&[])));
}
