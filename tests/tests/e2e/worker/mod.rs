//! The worker end to end: real PostgreSQL, a real NATS server, the control plane, a worker,
//! rmcp clients and rmcp upstream servers. Tenants onboarded through gRPC reach their
//! connectors' tools through the worker; credentials, suspensions, revocations and removed
//! connectors are enforced. The helpers the modules share live here.

use rmcp::model::CallToolRequestParams;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, mcp_connector};

mod access;
mod failures;
mod tools;

pub(super) const DEADLINE: Duration = Duration::from_secs(20);

pub(super) async fn new_key(stack: &Stack, tenant: &str, role: ApiKeyRole) -> String {
    stack
        .cp
        .keys_api()
        .create_api_key(CreateApiKeyRequest {
            tenant: tenant.into(),
            role: role as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

pub(super) async fn add_connector(
    stack: &Stack,
    tenant: &str,
    name: &str,
    upstream: &TestUpstream,
    prefix: Option<&str>,
    headers: &[(&str, &str)],
) {
    let mut req = mcp_connector(tenant, name, &upstream.url, headers);
    req.connector.as_mut().unwrap().prefix = prefix.map(Into::into);
    stack.cp.connectors().create_connector(req).await.unwrap();
}

/// POSTs a JSON-RPC message to `tenant`'s endpoint with the given bearer token.
pub(super) async fn post(
    stack: &Stack,
    tenant: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    post_to(&stack.worker().endpoint(tenant), token, body).await
}

/// POSTs a JSON-RPC message to an MCP endpoint with the given bearer token.
pub(super) async fn post_to(
    endpoint: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(endpoint)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

pub(super) fn initialize() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    })
}

pub(super) fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

pub(super) async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &str,
    args: serde_json::Value,
) -> rmcp::model::CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let serde_json::Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.peer().call_tool(params).await.unwrap()
}

pub(super) async fn tool_names(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
) -> Vec<String> {
    let mut names: Vec<String> = client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}
