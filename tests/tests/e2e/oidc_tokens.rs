//! Access tokens from a real OpenID Connect provider (npm `oidc-provider`): checked by the
//! worker's token check, and through a real stack at a tenant's endpoint. A token minted
//! for the tenant's resource gives its subject and the role its groups map to; a token
//! minted for another tenant's resource, one whose groups map to no role, and one of
//! another provider are refused, each for its own reason, and on the audit trail.

use serde_json::json;
use std::time::Duration;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_tests::admin::*;
use switchyard_tests::idp::{Client, OidcProvider};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, legacy, modern};
use switchyard_worker::auth::tokens::{Provider, TokenError, Tokens, Verified};
use switchyard_worker::policy::Role;

const ACME: &str = "https://mcp.example.com/t/acme/mcp";
const OTHER: &str = "https://mcp.example.com/t/other/mcp";
const AGENT: Client = Client {
    id: "agent",
    secret: "agent-secret-agent-secret",
    groups: &["dev", "sre"],
};
const VIEWER: Client = Client {
    id: "viewer",
    secret: "viewer-secret-viewer-secret",
    groups: &["dev"],
};
const INTERN: Client = Client {
    id: "intern",
    secret: "intern-secret-intern-secret",
    groups: &["marketing"],
};

fn provider(issuer: &str) -> Provider {
    Provider {
        issuer: issuer.into(),
        audience: String::new(),
        role_claim: "groups".into(),
        roles: vec![("dev".into(), Role::Viewer), ("sre".into(), Role::Admin)],
        client_id: String::new(),
        sign_in_scopes: Vec::new(),
    }
}

fn tokens() -> Tokens {
    Tokens::new(UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()])).unwrap()
}

#[tokio::test]
async fn tokens_of_a_real_provider_are_checked_for_the_tenants_resource_and_role() {
    let idp = OidcProvider::start(&[AGENT, INTERN], 300).await;
    let tokens = tokens();
    let acme = provider(&idp.issuer);

    let token = idp.client_token(&AGENT, ACME).await;
    assert_eq!(
        tokens.verify(&acme, ACME, &token).await,
        Ok(Verified {
            subject: "agent".into(),
            role: Role::Admin,
        })
    );
    // Minted for another tenant's resource: not for this one.
    let other = idp.client_token(&AGENT, OTHER).await;
    assert!(matches!(
        tokens.verify(&acme, ACME, &other).await,
        Err(TokenError::Invalid(_))
    ));
    // Groups that map to no role.
    let intern = idp.client_token(&INTERN, ACME).await;
    assert_eq!(
        tokens.verify(&acme, ACME, &intern).await,
        Err(TokenError::NoRole("groups".into()))
    );
    // A token of another provider, though well formed and for this resource.
    let elsewhere = OidcProvider::start(&[AGENT], 300).await;
    let foreign = elsewhere.client_token(&AGENT, ACME).await;
    assert!(matches!(
        tokens.verify(&acme, ACME, &foreign).await,
        Err(TokenError::Invalid(_))
    ));
    assert_eq!(tokens.fetches(), 1, "the provider's keys were fetched once");
}

/// `tenant` takes `issuer`'s tokens: `dev` gives the viewer role, `sre` the editor role.
async fn take_tokens_of(stack: &Stack, tenant: &str, issuer: &str) {
    stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: tenant.into(),
            identity: Some(IdentitySettings {
                provider: Some(IdentityProvider {
                    issuer: issuer.into(),
                    role_claim: "groups".into(),
                    roles: vec![
                        RoleMapping {
                            value: "dev".into(),
                            role: ApiKeyRole::Viewer as i32,
                        },
                        RoleMapping {
                            value: "sre".into(),
                            role: ApiKeyRole::Editor as i32,
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_endpoint_takes_its_providers_tokens_for_it_and_no_other() {
    const DEADLINE: Duration = Duration::from_secs(20);
    let idp = OidcProvider::start(&[AGENT, VIEWER, INTERN], 300).await;
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    let other_key = stack.tenant_with_connector("other", "up", &up.url).await;
    take_tokens_of(&stack, "acme", &idp.issuer).await;
    take_tokens_of(&stack, "other", &idp.issuer).await;
    stack.wait_serving("acme", &key).await;
    stack.wait_serving("other", &other_key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let token = idp.client_token(&AGENT, &endpoint).await;
    let echo = |bearer: String, endpoint: String| {
        let http = http.clone();
        async move { modern::call(&http, &endpoint, &bearer, "up__echo", json!({"text": "hi"})).await }
    };
    assert_eventually!(
        echo(token.clone(), endpoint.clone()).await.ok(),
        DEADLINE,
        "the provider's token is taken once the policy applies"
    );
    // A session opened with a token, and the tenant's API key beside it.
    let session = legacy::Session::open(&http, &endpoint, &token).await;
    assert!(session.call("up__echo", json!({"text": "s"})).await.ok());
    assert!(echo(key.clone(), endpoint.clone()).await.ok());

    // Minted for acme: refused at another tenant's endpoint of the same provider.
    let elsewhere = echo(token.clone(), stack.worker().endpoint("other")).await;
    assert_eq!(elsewhere.status, 401, "{elsewhere:?}");
    // A viewer may call read-only tools only.
    let viewer = idp.client_token(&VIEWER, &endpoint).await;
    let denied = echo(viewer, endpoint.clone()).await;
    assert_eq!(
        denied.body["result"]["_meta"]["reason"], "permission_denied",
        "{denied:?}"
    );
    let text = denied.body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("This access token has the viewer role"),
        "{text}"
    );
    // Groups that give no role: 403 with an insufficient_scope challenge.
    let intern = idp.client_token(&INTERN, &endpoint).await;
    let refused = http
        .post(&endpoint)
        .bearer_auth(&intern)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // On the audit trail: the call under the token's subject, the refusal by its reason.
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "call")
            .await
            .iter()
            .any(|r| r.actor == "user:agent"),
        DEADLINE,
        "the token's calls are on record under its subject"
    );
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "refusal")
            .await
            .iter()
            .any(|r| r.action == "permission_denied" && r.actor == "user:viewer"),
        DEADLINE,
        "the viewer's refused call is on record under its subject"
    );
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "auth_failure")
            .await
            .iter()
            .any(|r| r.action == "insufficient_scope"),
        DEADLINE,
        "the refused token is on record"
    );

    // Once the tenant drops the provider, its tokens are refused and its key goes on.
    stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            identity: Some(IdentitySettings::default()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        echo(token.clone(), endpoint.clone()).await.status == 401,
        DEADLINE,
        "the provider's tokens are refused"
    );
    assert!(echo(key, endpoint).await.ok());
}
