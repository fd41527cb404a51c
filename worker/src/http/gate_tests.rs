use super::*;
use crate::policy::{Key, Role, Status};
use crate::principal::{KeyId, TenantSlug};
use std::sync::Arc;
use switchyard_bus::{BusError, MemorySessions, SessionKv};
use switchyard_common::apikey;

fn resource() -> Option<String> {
    Some("http://127.0.0.1:8080/t/acme/mcp".into())
}

fn principal(tenant: &str, key: &str) -> Principal {
    Principal::api_key(
        TenantSlug::parse(tenant).unwrap(),
        KeyId::parse(key).unwrap(),
    )
}

/// A tenant with one API key, and that key's credential.
fn tenant_with_key() -> (Tenant, String) {
    let key = apikey::generate().unwrap();
    let mut tenant = Tenant::for_test("acme");
    tenant.keys.insert(
        key.id.clone(),
        Key {
            verifier: key.verifier.clone(),
            role: Role::Admin,
            requests_per_second: 0,
            burst: 0,
            expires: None,
        },
    );
    (tenant, key.credential.to_string())
}

fn bearer(credential: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {credential}").parse().unwrap(),
    );
    headers
}

#[test]
fn a_draining_or_starting_worker_refuses_and_says_which() {
    assert!(matches!(serving(true, true), Err(Error::Draining)));
    assert!(matches!(serving(true, false), Err(Error::Draining)));
    assert!(matches!(serving(false, false), Err(Error::Starting)));
    assert!(serving(false, true).is_ok());
}

#[tokio::test]
async fn authentication_names_the_caller_or_the_credential_problem() {
    let auth = Authenticator::default();
    let (tenant, credential) = tenant_with_key();
    let p = authenticate(&auth, Some(&tenant), &bearer(&credential), None, resource)
        .await
        .unwrap();
    assert_eq!(p.tenant.as_str(), "acme");
    assert_eq!(credential.split('_').nth(1), p.key_id().map(|k| k.as_str()));

    let missing = authenticate(&auth, Some(&tenant), &HeaderMap::new(), None, resource).await;
    assert!(matches!(missing, Err(Error::MissingCredential)));
    // The same key id with another secret (its last character changed).
    let last = if credential.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &credential[..credential.len() - 1]);
    let invalid = authenticate(&auth, Some(&tenant), &bearer(&wrong), None, resource).await;
    assert!(matches!(invalid, Err(Error::InvalidCredential)));
    // A good key for an unknown tenant is as invalid as a wrong one.
    let unknown = authenticate(&auth, None, &bearer(&credential), None, resource).await;
    assert!(matches!(unknown, Err(Error::InvalidCredential)));

    let mut suspended = tenant;
    suspended.status = Status::Suspended;
    suspended.suspend_reason = "unpaid".into();
    let refused = authenticate(
        &auth,
        Some(&suspended),
        &bearer(&credential),
        None,
        resource,
    )
    .await;
    assert!(matches!(refused, Err(Error::Suspended(r)) if r == "unpaid"));
}

#[tokio::test]
async fn a_bearer_that_is_not_a_key_is_invalid_where_no_provider_takes_it() {
    let (mut tenant, _) = tenant_with_key();
    let token = bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
    // No token check configured, or a tenant without a provider: as invalid as a bad key.
    let plain = Authenticator::default();
    let refused = authenticate(&plain, Some(&tenant), &token, None, resource).await;
    assert!(matches!(refused, Err(Error::InvalidCredential)));
    let tokens = crate::auth::tokens::Tokens::new(Default::default()).unwrap();
    let checking = Authenticator::default().with_tokens(tokens);
    let refused = authenticate(&checking, Some(&tenant), &token, None, resource).await;
    assert!(matches!(refused, Err(Error::InvalidCredential)));
    // With a provider, a malformed token is refused without reaching it.
    tenant.provider = Some(Arc::new(crate::auth::tokens::Provider {
        issuer: "https://idp.example.com".into(),
        audience: String::new(),
        role_claim: "groups".into(),
        roles: Vec::new(),
        client_id: String::new(),
        sign_in_scopes: Vec::new(),
    }));
    let refused = authenticate(
        &checking,
        Some(&tenant),
        &bearer("not.a.jwt"),
        None,
        resource,
    )
    .await;
    assert!(matches!(refused, Err(Error::InvalidCredential)));
}

#[test]
fn a_shared_worker_hands_a_dedicated_tenant_over() {
    let mut tenant = Tenant::for_test("acme");
    assert!(served_here(false, &tenant).is_ok());
    tenant.dedicated = true;
    assert!(matches!(served_here(false, &tenant), Err(Error::Dedicated)));
    assert!(served_here(true, &tenant).is_ok());
}

#[tokio::test]
async fn a_session_serves_only_the_principal_that_opened_it() {
    let records = SessionRecords::new(Arc::new(MemorySessions::default()));
    let owner = principal("acme", "abcdef123456");
    records.bind("s1", &owner).await.unwrap();
    assert_eq!(
        bind_session(&records, &owner, "s1").await.unwrap(),
        SessionCheck::Bound
    );
    for other in [
        principal("acme", "abcdef654321"),
        principal("other", "abcdef123456"),
    ] {
        let refused = bind_session(&records, &other, "s1").await;
        assert!(matches!(refused, Err(Error::SessionNotFound)), "{other:?}");
    }
    // Another tenant naming the session neither ends nor takes it.
    assert_eq!(
        bind_session(&records, &owner, "s1").await.unwrap(),
        SessionCheck::Bound
    );
    assert_eq!(
        bind_session(&records, &owner, "never-opened")
            .await
            .unwrap(),
        SessionCheck::Ended
    );
    for bad in ["", "has space", "../x", &"a".repeat(129)] {
        let refused = bind_session(&records, &owner, bad).await;
        assert!(matches!(refused, Err(Error::SessionNotFound)), "{bad:?}");
    }
}

/// A session store that cannot be reached.
#[derive(Debug)]
struct Unreachable;

#[async_trait::async_trait]
impl SessionKv for Unreachable {
    async fn get(&self, _: &str) -> std::result::Result<Option<Bytes>, BusError> {
        Err(BusError::Unavailable("down".into()))
    }
    async fn put(&self, _: &str, _: Bytes) -> std::result::Result<(), BusError> {
        Err(BusError::Unavailable("down".into()))
    }
    async fn delete(&self, _: &str) -> std::result::Result<(), BusError> {
        Err(BusError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn an_unknown_session_with_the_store_away_is_unavailable_not_missing() {
    let records = SessionRecords::new(Arc::new(Unreachable));
    let refused = bind_session(&records, &principal("acme", "abcdef123456"), "s1").await;
    assert!(matches!(refused, Err(Error::SessionStore)));
}

#[tokio::test]
async fn a_body_is_read_within_its_cap_and_classified() {
    let body = |s: &str| axum::body::Body::from(s.to_owned());
    let none = HeaderMap::new();
    let wait = Duration::from_secs(5);
    let too_big = read_body(&none, body(&"x".repeat(11)), 10, wait).await;
    assert!(matches!(too_big, Err(Error::PayloadTooLarge(10))));
    let not_json = read_body(&none, body("{not json"), 100, wait).await;
    assert!(matches!(not_json, Err(Error::Malformed)));
    // JSON that is not one message has no head: rmcp answers it.
    let (_, head) = read_body(&none, body("[1,2]"), 100, wait).await.unwrap();
    assert!(head.is_none());
    let (bytes, head) = read_body(&none, body(r#"{"id":7,"method":"tools/call"}"#), 100, wait)
        .await
        .unwrap();
    let head = head.unwrap();
    assert_eq!(head.id, Some(serde_json::json!(7)));
    assert_eq!(head.method.as_deref(), Some("tools/call"));
    assert_eq!(bytes.len(), 30);
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_reading() {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_LENGTH, "1000000".parse().unwrap());
    // A body that never ends: refused without waiting for it.
    let (_tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(1);
    let endless = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let refused = read_body(&headers, endless, 100, Duration::from_secs(3600)).await;
    assert!(matches!(refused, Err(Error::PayloadTooLarge(100))));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_past_its_time_is_refused() {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from_static(b"{"))).await.unwrap();
    let slow = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let refused = read_body(&HeaderMap::new(), slow, 100, Duration::from_secs(30)).await;
    assert!(matches!(refused, Err(Error::BodyTimeout(_))));
    drop(tx);
}

#[test]
fn the_head_names_a_calls_tool_whatever_shape_the_parameters_have() {
    let head = |body: &str| serde_json::from_str::<Head>(body).unwrap();
    let call = head(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"not this"},"name":"up__echo"}}"#,
    );
    assert_eq!(call.tool(), Some("up__echo"));
    let prompt = head(r#"{"id":1,"method":"prompts/get","params":{"name":"p"}}"#);
    assert_eq!(prompt.tool(), None, "only a tools/call names a tool");
    for odd in [
        r#"{"id":1,"method":"tools/call","params":[1,{"name":"x"}]}"#,
        r#"{"id":1,"method":"tools/call","params":"x"}"#,
        r#"{"id":1,"method":"tools/call","params":null}"#,
        r#"{"id":1,"method":"tools/call","params":{"name":7}}"#,
        r#"{"id":1,"method":"tools/call"}"#,
    ] {
        let h = head(odd);
        assert_eq!(
            h.method.as_deref(),
            Some("tools/call"),
            "{odd}: still admitted"
        );
        assert_eq!(h.tool(), None, "{odd}");
    }
}
