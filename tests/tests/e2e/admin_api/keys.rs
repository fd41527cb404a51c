//! The API key service: create, get, revoke, list, and their errors.

use super::expect_err;
use switchyard_tests::Stack;
use switchyard_tests::admin::*;
use tonic::Code;

#[tokio::test]
async fn api_keys() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.keys_api();
    let created = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            description: "laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key = created.key.unwrap();
    assert_eq!(
        key.role,
        ApiKeyRole::Editor as i32,
        "editor is the default role"
    );
    assert_eq!(key.prefix, format!("sy_{}_", key.id));
    assert!(created.secret.starts_with(&key.prefix));
    let (id, secret) = switchyard_common::apikey::parse(&created.secret).unwrap();
    assert_eq!(id.as_str(), key.id);
    assert!(secret.len() >= 22, "at least 128 random bits");
    assert!(key.last_used_time.is_none());

    let viewer = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Viewer as i32,
            requests_per_second: Some(3),
            burst: Some(6),
            expire_time: Some(prost_types::Timestamp {
                seconds: 4_102_444_800,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(viewer.role, ApiKeyRole::Viewer as i32);
    assert_eq!(viewer.requests_per_second, Some(3));
    assert_eq!(viewer.expire_time.unwrap().seconds, 4_102_444_800);

    let got = api
        .get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, key);
    let revoked = api
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let active = api
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.keys.len(), 1);
    assert_eq!(active.keys[0].id, viewer.id);
    let all = api
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.keys.len(), 2);
    // No response carries a verifier or the secret.
    assert!(!format!("{all:?}").contains(secret));
}

#[tokio::test]
async fn api_key_errors() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.keys_api();
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "ghost".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "BAD".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("tenant"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: 42,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("role"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            burst: Some(10),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("burst"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            requests_per_second: Some(0),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("requests_per_second"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 1_000,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("expire_time"),
    );
    expect_err(
        api.get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: "abcdefghijkl".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: "short".into(),
        })
        .await,
        Code::InvalidArgument,
        Some("id"),
    );
    expect_err(
        api.revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: "abcdefghijkl".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.list_api_keys(ListApiKeysRequest {
            tenant: "ghost".into(),
            include_revoked: true,
        })
        .await,
        Code::NotFound,
        None,
    );
    // A key of one tenant is invisible through another.
    cp.create_tenant("other").await;
    let key = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    expect_err(
        api.revoke_api_key(RevokeApiKeyRequest {
            tenant: "other".into(),
            id: key.id,
        })
        .await,
        Code::NotFound,
        None,
    );
}
