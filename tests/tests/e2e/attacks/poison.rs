//! One tenant's policy that cannot be published holds up no other tenant, and the admin
//! API refuses a policy too large to publish.

use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_client, mcp_connector, violated_field};

const DEADLINE: Duration = Duration::from_secs(30);

/// `count` headers of 8 KiB each.
fn big_headers(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-big-{i}"), "v".repeat(8 * 1024)))
        .collect()
}

fn connector_with(
    tenant: &str,
    name: &str,
    url: &str,
    headers: &[(String, String)],
) -> CreateConnectorRequest {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    mcp_connector(tenant, name, url, &refs)
}

#[tokio::test]
async fn a_policy_the_bus_refuses_stops_only_its_tenant() {
    // NATS takes at most 64 KiB per message here; "big" gets a policy of about 80 KiB.
    let stack = Stack::builder().nats_max_payload(64 * 1024).start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("small", "up", &up.url).await;
    stack.wait_serving("small", &key).await;
    stack.tenant("big").await;
    stack
        .cp
        .connectors()
        .create_connector(connector_with("big", "up", &up.url, &big_headers(10)))
        .await
        .unwrap();
    let status = || async { stack.cp.tenant("big").await.status.unwrap_or_default() };
    assert_eventually!(
        !status().await.publish_error.is_empty(),
        DEADLINE,
        "big's failed publish shows in its status"
    );

    // Meanwhile another tenant's key is revoked, and the workers apply it.
    let id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    stack
        .cp
        .keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "small".into(),
            id,
        })
        .await
        .unwrap();
    let endpoint = stack.worker().endpoint("small");
    assert_eventually!(
        mcp_client(&endpoint, &key).await.is_err(),
        DEADLINE,
        "the revocation reaches the worker while big's policy is stuck"
    );
    // big is still failing, and says so.
    assert!(!status().await.publish_error.is_empty());
}

#[tokio::test]
async fn a_policy_over_the_bound_is_refused_naming_the_field() {
    let stack = Stack::builder().without_nats().start().await;
    stack.tenant("acme").await;
    let url = "http://127.0.0.1:9/mcp";
    // 32 headers of 8 KiB: one such connector fits, a second one would not.
    stack
        .cp
        .connectors()
        .create_connector(connector_with("acme", "one", url, &big_headers(32)))
        .await
        .unwrap();
    let err = stack
        .cp
        .connectors()
        .create_connector(connector_with("acme", "two", url, &big_headers(32)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violated_field(&err).as_deref(),
        Some("connector.mcp.headers")
    );
    assert!(err.message().contains("524288"), "{}", err.message());
    // A smaller second one fits; growing it past the bound is refused the same way.
    stack
        .cp
        .connectors()
        .create_connector(connector_with("acme", "two", url, &big_headers(16)))
        .await
        .unwrap();
    let headers = big_headers(32)
        .into_iter()
        .map(|(name, value)| Header {
            name,
            value: Some(value),
            value_set: false,
        })
        .collect();
    let err = stack
        .cp
        .connectors()
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "two".into(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: url.into(),
                headers,
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_field(&err).as_deref(),
        Some("mcp.headers"),
        "{err:?}"
    );
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}
