//! Access tokens from a real OpenID Connect provider (npm `oidc-provider`), checked by the
//! worker's token check as a tenant's endpoint will: a token minted for the tenant's
//! resource gives its subject and the role its groups map to; a token minted for another
//! tenant's resource, a token whose groups map to no role, and a token of another
//! provider are refused, each for its own reason.

use switchyard_common::netguard::UpstreamGuard;
use switchyard_tests::idp::{Client, OidcProvider};
use switchyard_worker::auth::tokens::{Provider, TokenError, Tokens, Verified};
use switchyard_worker::policy::Role;

const ACME: &str = "https://mcp.example.com/t/acme/mcp";
const OTHER: &str = "https://mcp.example.com/t/other/mcp";
const AGENT: Client = Client {
    id: "agent",
    secret: "agent-secret-agent-secret",
    groups: &["dev", "sre"],
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
