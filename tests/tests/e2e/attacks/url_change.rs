//! Moving a connector to another host must not take its stored secrets along.

use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_connector, violated_field};

const DEADLINE: Duration = Duration::from_secs(20);
const SECRET: &str = "Bearer upstream-secret-7f3a";

fn seen_secret(upstream: &TestUpstream) -> bool {
    upstream
        .seen_headers()
        .iter()
        .any(|h| h.values().any(|v| v.as_bytes() == SECRET.as_bytes()))
}

#[tokio::test]
async fn a_url_moved_to_another_origin_drops_the_stored_secrets() {
    let stack = Stack::start().await;
    let home = TestUpstream::start("home").await;
    let elsewhere = TestUpstream::start("elsewhere").await;
    stack.tenant("acme").await;
    stack
        .cp
        .connectors()
        .create_connector(mcp_connector(
            "acme",
            "gh",
            &home.url,
            &[("authorization", SECRET)],
        ))
        .await
        .unwrap();
    let key = stack.key("acme").await;
    let client = stack.client("acme", &key).await;
    assert_eventually!(
        seen_secret(&home),
        DEADLINE,
        "the secret reaches its own upstream"
    );

    // The operator points the connector elsewhere, keeping the header "as stored", as
    // `switchyard connector update --url` does.
    let keep = Header {
        name: "authorization".into(),
        value: None,
        value_set: false,
    };
    let updated = stack
        .cp
        .connectors()
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "gh".into(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: elsewhere.url.clone(),
                headers: vec![keep.clone()],
            })),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.dropped_headers, ["authorization"]);
    let Some(connector::Kind::Mcp(mcp)) = &updated.kind else {
        panic!("an MCP connector");
    };
    assert!(mcp.headers.is_empty(), "{:?}", mcp.headers);
    // The worker now lists the new upstream, which never sees the secret.
    assert_eventually!(
        client
            .peer()
            .list_all_tools()
            .await
            .is_ok_and(|_| !elsewhere.seen_headers().is_empty()),
        DEADLINE,
        "the worker reaches the new upstream"
    );
    assert!(!seen_secret(&elsewhere), "the secret followed the URL");

    // On the same origin (another path) a kept header stays.
    let same_origin = format!("{}?v=2", elsewhere.url);
    let kept = stack
        .cp
        .connectors()
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "gh".into(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: same_origin,
                headers: vec![Header {
                    name: "x-api-key".into(),
                    value: Some("given-again".into()),
                    value_set: false,
                }],
            })),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.dropped_headers.is_empty());
}

#[tokio::test]
async fn credentials_in_a_url_are_refused_with_a_pointer_to_headers() {
    let stack = Stack::builder().without_nats().start().await;
    stack.tenant("acme").await;
    for url in [
        "http://127.0.0.1:9/mcp?token=abc",
        "http://127.0.0.1:9/mcp?api_key=abc",
        "http://127.0.0.1:9/mcp?x=1&Access-Token=abc",
        "http://127.0.0.1:9/mcp?key=abc",
        "http://user:pw@127.0.0.1:9/mcp",
    ] {
        let err = stack
            .cp
            .connectors()
            .create_connector(mcp_connector("acme", "gh", url, &[]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}");
        assert_eq!(
            violated_field(&err).as_deref(),
            Some("connector.mcp.url"),
            "{url}"
        );
        assert!(err.message().contains("header"), "{url}: {}", err.message());
        assert!(
            !err.message().contains("abc"),
            "the secret is echoed: {}",
            err.message()
        );
    }
    // An ordinary query stays allowed.
    stack
        .cp
        .connectors()
        .create_connector(mcp_connector(
            "acme",
            "gh",
            "http://127.0.0.1:9/mcp?region=eu",
            &[],
        ))
        .await
        .unwrap();
}
