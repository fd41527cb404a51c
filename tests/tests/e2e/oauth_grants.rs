//! A tenant's grants through the admin API: what each sign-in gave a client is listed with
//! its holder, and revoking one ends its refresh token at once and its access token on
//! the worker once the revocation's policy applies, while the holder's other grant keeps
//! working. Bad ids, other tenants' grants and made-up tenants are refused by name.

use serde_json::Value;
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::oauth::{ClientDoc, param, pkce, redeem, sign_in, token};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, modern, violated_field};

const DEADLINE: Duration = Duration::from_secs(20);

/// Signs `client` in at `issuer` with `key`: the token answer.
async fn tokens(issuer: &str, client: &ClientDoc, key: &str) -> Value {
    let (verifier, challenge) = pkce();
    let back = sign_in(issuer, client, key, &challenge).await;
    let code = param(&back, "code").expect("a code");
    let (status, answer) = redeem(issuer, client, &client.id, &code, &verifier).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn list(stack: &Stack, tenant: &str, holder: &str) -> Result<Vec<Grant>, tonic::Status> {
    let req = ListGrantsRequest {
        tenant: tenant.into(),
        holder: holder.into(),
    };
    let answer = stack.cp.grants().list_grants(req).await?;
    Ok(answer.into_inner().grants)
}

async fn revoke(stack: &Stack, tenant: &str, id: &str) -> Result<Grant, tonic::Status> {
    let req = RevokeGrantRequest {
        tenant: tenant.into(),
        id: id.into(),
    };
    Ok(stack.cp.grants().revoke_grant(req).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_ends_its_tokens_and_no_other() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    let other_key = stack.tenant_with_connector("other", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    stack.wait_serving("other", &other_key).await;
    let endpoint = stack.worker().endpoint("acme");
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let client = ClientDoc::serve("Agent", None).await;
    let (first, second) = (
        tokens(&issuer, &client, &key).await,
        tokens(&issuer, &client, &key).await,
    );

    // Both sign-ins are listed, under the key that signed in.
    let key_id = switchyard_common::apikey::parse(&key).unwrap().0;
    let holder = format!("key:{key_id}");
    let grants = list(&stack, "acme", "").await.unwrap();
    assert_eq!(grants.len(), 2, "{grants:?}");
    for g in &grants {
        assert_eq!(
            (g.client_id.as_str(), g.holder.as_str()),
            (client.id.as_str(), holder.as_str())
        );
        assert_eq!(g.scopes, ["tools:read", "tools:write"]);
        assert!(g.create_time.is_some() && g.expire_time.is_some());
    }
    assert_eq!(list(&stack, "acme", &holder).await.unwrap().len(), 2);
    assert!(list(&stack, "acme", "key:nobody").await.unwrap().is_empty());
    assert!(
        list(&stack, "other", "").await.unwrap().is_empty(),
        "another tenant's are not shown"
    );

    // Which grant is the first: its refresh token starts with the grant's id.
    let refresh = first["refresh_token"].as_str().unwrap();
    let id = refresh.split('.').next().unwrap().to_owned();
    assert!(grants.iter().any(|g| g.id == id));
    // Another tenant cannot revoke it.
    let elsewhere = revoke(&stack, "other", &id).await.unwrap_err();
    assert_eq!(elsewhere.code(), tonic::Code::NotFound);
    let revoked = revoke(&stack, "acme", &id).await.unwrap();
    assert_eq!(revoked.holder, holder);

    // Its refresh token is refused at once, and its access token once the policy applies.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", client.id.as_str()),
    ];
    let (status, answer) = token(
        &reqwest::Client::new(),
        &format!("{issuer}/oauth/token"),
        &form,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let http = reqwest::Client::new();
    let access = |t: &Value| t["access_token"].as_str().unwrap().to_owned();
    let (dead, alive) = (access(&first), access(&second));
    assert_eventually!(
        modern::list(&http, &endpoint, &dead).await.status == 401,
        DEADLINE,
        "the revoked grant's access token is refused"
    );
    assert!(
        modern::list(&http, &endpoint, &alive).await.ok(),
        "the other grant works"
    );
    let left = list(&stack, "acme", "").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].id, id);

    // On the audit trail, as what was revoked and from whom.
    let object = format!("grant/acme/{id}");
    let records = crate::audit_refusals::records(&stack.cp, "acme", "admin").await;
    let record = records
        .iter()
        .find(|r| r.object == object)
        .expect("the revocation is on record");
    assert_eq!(record.action, "RevokeGrant");
    assert!(record.detail.contains(&holder), "{record:?}");
    // Revoked twice: the second finds nothing.
    assert_eq!(
        revoke(&stack, "acme", &id).await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    // A tenant deleted and made again under its name inherits no grant.
    stack
        .cp
        .tenants()
        .delete_tenant(DeleteTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    stack.cp.create_tenant("acme").await;
    assert!(list(&stack, "acme", "").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grant_requests_are_refused_by_name() {
    let stack = Stack::start().await;
    stack.cp.create_tenant("acme").await;
    for (id, field) in [("", "id"), ("short", "id"), (&*"!".repeat(43), "id")] {
        let refused = revoke(&stack, "acme", id).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(violated_field(&refused).as_deref(), Some(field));
    }
    let refused = revoke(&stack, "Not A Slug", &"a".repeat(43))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&refused).as_deref(), Some("tenant"));
    let unknown = revoke(&stack, "acme", &"a".repeat(43)).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let ghost = list(&stack, "ghost", "").await.unwrap_err();
    assert_eq!(ghost.code(), tonic::Code::NotFound);
    let long = list(&stack, "acme", &"k".repeat(301)).await.unwrap_err();
    assert_eq!(violated_field(&long).as_deref(), Some("holder"));
}

/// The key id a token's header names.
fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_signing_keys_end_every_access_token_and_refreshing_mends_it() {
    let (stack, _up, key) = switchyard_tests::oauth::acme().await;
    let endpoint = stack.worker().endpoint("acme");
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let client = ClientDoc::serve("Agent", None).await;
    let signed_in = tokens(&issuer, &client, &key).await;
    let old = signed_in["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    assert!(modern::list(&http, &endpoint, old).await.ok());

    let rotate = |tenant: &str| {
        let req = RotateSigningKeysRequest {
            tenant: tenant.into(),
        };
        let mut grants = stack.cp.grants();
        async move { grants.rotate_signing_keys(req).await }
    };
    let bad = rotate("Not A Slug").await.unwrap_err();
    assert_eq!(violated_field(&bad).as_deref(), Some("tenant"));
    assert_eq!(
        rotate("ghost").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let rotated = rotate("acme").await.unwrap().into_inner();
    assert!(rotated.not_before.is_some());
    assert_eventually!(
        modern::list(&http, &endpoint, old).await.status == 401,
        DEADLINE,
        "a token signed with a retired key is refused"
    );
    // The client refreshes, as it does when a token is refused, and carries on.
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            signed_in["refresh_token"].as_str().unwrap(),
        ),
        ("client_id", client.id.as_str()),
    ];
    let (status, refreshed) = token(
        &reqwest::Client::new(),
        &format!("{issuer}/oauth/token"),
        &form,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let new = refreshed["access_token"].as_str().unwrap();
    assert_ne!(kid(new), kid(old), "a new key signs");
    assert!(modern::list(&http, &endpoint, new).await.ok());
    let records = crate::audit_refusals::records(&stack.cp, "acme", "admin").await;
    assert!(
        records
            .iter()
            .any(|r| r.action == "RotateSigningKeys" && r.object == "signing-keys/acme"),
        "the retirement is on record"
    );
}
