//! Listing a tenant's audit records by key, connector and tool, through a real worker, and
//! a tool filter that a hostile name cannot widen: `%` and `_` match themselves.

use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, assert_eventually, violated_field};

async fn list(cp: &ControlPlane, req: ListAuditEventsRequest) -> Vec<AuditEvent> {
    cp.audit()
        .list_audit_events(ListAuditEventsRequest {
            tenant: "acme".into(),
            ..req
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

fn target(e: &AuditEvent) -> String {
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
    detail["target"].as_str().unwrap_or_default().to_owned()
}

async fn call(stack: &Stack, key: &str, tool: &str) {
    let answer = switchyard_tests::modern::call(
        &reqwest::Client::new(),
        &stack.worker().endpoint("acme"),
        key,
        tool,
        serde_json::json!({"text": "hi", "a": 1, "b": 2}),
    )
    .await;
    assert!(answer.ok(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_listed_by_key_connector_and_tool() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let first = stack.tenant_with_connector("acme", "gh", &up.url).await;
    stack.connector("acme", "db", &up.url).await;
    let second = stack.key("acme").await;
    stack.wait_serving("acme", &first).await;
    stack.wait_serving("acme", &second).await;
    for tool in ["gh__echo", "gh__echo", "gh__add"] {
        call(&stack, &first, tool).await;
    }
    call(&stack, &second, "db__echo").await;
    let (first_id, _) = switchyard_common::apikey::parse(&first).unwrap();
    let all_calls = |events: Vec<AuditEvent>| -> Vec<AuditEvent> {
        events.into_iter().filter(|e| e.kind == "call").collect()
    };
    assert_eventually!(
        all_calls(list(&stack.cp, ListAuditEventsRequest::default()).await).len() >= 4,
        std::time::Duration::from_secs(20),
        "the calls are on record"
    );

    let by_key = list(
        &stack.cp,
        ListAuditEventsRequest {
            key: first_id.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        by_key.iter().all(|e| e.actor == format!("key:{first_id}")),
        "{by_key:?}"
    );
    assert_eq!(all_calls(by_key).len(), 3);

    let by_connector = list(
        &stack.cp,
        ListAuditEventsRequest {
            connector: "db".into(),
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<(&str, String)> = by_connector
        .iter()
        .map(|e| (e.kind.as_str(), target(e)))
        .collect();
    assert_eq!(
        kinds,
        [("call", "db__echo".to_owned()), ("admin", String::new())],
        "the call to it and its creation"
    );

    let by_tool = |tool: &str, key: String| {
        let cp = &stack.cp;
        let tool = tool.to_owned();
        async move {
            list(
                cp,
                ListAuditEventsRequest {
                    tool,
                    key,
                    ..Default::default()
                },
            )
            .await
        }
    };
    let echoes = by_tool("gh__echo", String::new()).await;
    assert_eq!(
        echoes.iter().map(target).collect::<Vec<_>>(),
        ["gh__echo"; 2]
    );
    assert!(
        by_tool("gh_%", String::new()).await.is_empty(),
        "no wildcards"
    );
    assert!(
        by_tool("gh__ech_", String::new()).await.is_empty(),
        "no wildcards"
    );
    assert!(
        by_tool("echo", String::new()).await.is_empty(),
        "whole names only"
    );
    let (second_id, _) = switchyard_common::apikey::parse(&second).unwrap();
    assert!(by_tool("gh__echo", second_id.to_string()).await.is_empty());

    for (req, field) in [
        (
            ListAuditEventsRequest {
                key: "not a key".into(),
                ..Default::default()
            },
            "key",
        ),
        (
            ListAuditEventsRequest {
                connector: "Bad Name".into(),
                ..Default::default()
            },
            "connector",
        ),
        (
            ListAuditEventsRequest {
                tool: "x".repeat(300),
                ..Default::default()
            },
            "tool",
        ),
    ] {
        let refused = stack
            .cp
            .audit()
            .list_audit_events(ListAuditEventsRequest {
                tenant: "acme".into(),
                ..req
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(violated_field(&refused).as_deref(), Some(field));
    }
}
