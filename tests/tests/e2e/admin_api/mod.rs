//! Every admin RPC through gRPC against a real PostgreSQL: success paths and the error
//! paths an operator can hit, one module per service.

use switchyard_tests::admin::*;
use switchyard_tests::{Stack, violated_field};
use tonic::Code;

mod connectors;
mod keys;
mod tenants;

/// Asserts `r` failed with `code`; for INVALID_ARGUMENT also that it names `field`.
#[track_caller]
pub(super) fn expect_err<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    field: Option<&str>,
) -> tonic::Status {
    let status = r.expect_err("call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    if let Some(field) = field {
        assert_eq!(
            violated_field(&status).as_deref(),
            Some(field),
            "{status:?}"
        );
        assert!(
            status.message().contains(field),
            "message names the field: {status:?}"
        );
    }
    status
}

#[tokio::test]
async fn every_service_needs_an_operator_token() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    for token in [None, Some("wrong-token-wrong-token-wrong-token"), Some("")] {
        let ch = cp.channel_with(token);
        let e = tenant_service_client::TenantServiceClient::new(ch.clone())
            .get_tenant(GetTenantRequest {
                slug: "acme".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
        let e = connector_service_client::ConnectorServiceClient::new(ch.clone())
            .list_connectors(ListConnectorsRequest {
                tenant: "acme".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = api_key_service_client::ApiKeyServiceClient::new(ch)
            .create_api_key(CreateApiKeyRequest {
                tenant: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // A rejected call changed nothing.
    let keys = cp
        .keys_api()
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(keys.keys.is_empty());
    // The store holds the token's hash, never the token.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM operator_tokens")
        .fetch_all(cp.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&cp.token));
    assert_eq!(
        stored[0],
        switchyard_control_plane::auth::hash_token(&cp.token)
    );
}
