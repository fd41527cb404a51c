//! Operator tokens can be revoked, and a revoked one stays revoked: also the bootstrap
//! token, given again at the next start.

use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::{ControlPlane, Stack, eventually};

const DEADLINE: Duration = Duration::from_secs(10);

fn tokens(
    cp: &ControlPlane,
    token: &str,
) -> operator_token_service_client::OperatorTokenServiceClient<switchyard_tests::Authed> {
    operator_token_service_client::OperatorTokenServiceClient::new(cp.channel_with(Some(token)))
}

/// Whether `token` is refused by `cp` as unauthenticated.
async fn refused(cp: &ControlPlane, token: &str) -> bool {
    let r = tenant_service_client::TenantServiceClient::new(cp.channel_with(Some(token)))
        .list_tenants(ListTenantsRequest::default())
        .await;
    matches!(r, Err(s) if s.code() == tonic::Code::Unauthenticated)
}

async fn create(cp: &ControlPlane, with: &str, name: &str) -> (String, String) {
    let created = tokens(cp, with)
        .create_operator_token(CreateOperatorTokenRequest {
            name: name.into(),
            expire_time: None,
        })
        .await
        .unwrap()
        .into_inner();
    (created.token.unwrap().id, created.secret)
}

#[tokio::test]
async fn revoked_operator_tokens_stay_revoked_across_restarts() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let bootstrap = cp.token.clone();
    let (ci_id, ci) = create(cp, &bootstrap, "ci").await;
    assert!(!refused(cp, &ci).await);

    tokens(cp, &bootstrap)
        .revoke_operator_token(RevokeOperatorTokenRequest { id: ci_id.clone() })
        .await
        .unwrap();
    eventually(DEADLINE, "the revoked token is refused", || async {
        if refused(cp, &ci).await {
            Ok(())
        } else {
            Err("still accepted")
        }
    })
    .await;

    // The bootstrap token is retired through another token...
    let (ops_id, ops) = create(cp, &bootstrap, "ops").await;
    let listed = tokens(cp, &ops)
        .list_operator_tokens(ListOperatorTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let bootstrap_id = listed
        .iter()
        .find(|t| t.name == "bootstrap")
        .map(|t| t.id.clone())
        .unwrap();
    tokens(cp, &ops)
        .revoke_operator_token(RevokeOperatorTokenRequest { id: bootstrap_id })
        .await
        .unwrap();
    eventually(DEADLINE, "the bootstrap token is refused", || async {
        if refused(cp, &bootstrap).await {
            Ok(())
        } else {
            Err("still accepted")
        }
    })
    .await;
    // ...and stays revoked when a control plane starts again with the same one.
    let restarted = stack.replica(None).await;
    assert!(refused(&restarted, &bootstrap).await);
    assert!(!refused(&restarted, &ops).await);

    // The last valid token cannot be revoked.
    let err = tokens(&restarted, &ops)
        .revoke_operator_token(RevokeOperatorTokenRequest { id: ops_id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    // Revoked tokens stay listed, as revoked; secrets are never listed.
    let all = tokens(&restarted, &ops)
        .list_operator_tokens(ListOperatorTokensRequest {
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all.iter().filter(|t| t.revoke_time.is_some()).count(), 2);
    assert!(!format!("{all:?}").contains(&ops));
}

#[tokio::test]
async fn a_token_needs_a_name_and_a_future_expiry() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut api = tokens(cp, &cp.token);
    let err = api
        .create_operator_token(CreateOperatorTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        switchyard_tests::violated_field(&err).as_deref(),
        Some("name")
    );
    let err = api
        .create_operator_token(CreateOperatorTokenRequest {
            name: "old".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        switchyard_tests::violated_field(&err).as_deref(),
        Some("expire_time")
    );
}
