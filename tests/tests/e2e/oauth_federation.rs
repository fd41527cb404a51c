//! A tenant's own OpenID provider (npm `oidc-provider`) behind the built-in authorization
//! server: the MCP Python SDK's OAuth client discovers the server, registers, and its user
//! consents and then signs in at the provider's login and consent pages (this test plays
//! the person), and the client calls a tool with the token it gets. Then what is refused,
//! each with its status and challenge: the token at another tenant, a token of the
//! provider that expired or names another issuer, a refresh token used again, the token
//! once the user's group no longer maps to a role; and at the callback, an answer replayed,
//! one reaching another browser, one naming another issuer, a user the provider declined
//! and one with no role.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::idp::{Browser, OidcProvider};
use switchyard_tests::oauth::{ClientDoc, authorize_url, param, pkce, token};
use switchyard_tests::python::OAuthClient;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, modern};

const DEADLINE: Duration = Duration::from_secs(20);
const CLIENT_AT_IDP: &str = "switchyard-acme";

/// Tenant `acme`'s users sign in at `idp`, groups `eng` (editor) and `dev` (viewer).
async fn sign_in_at(stack: &Stack, idp: &OidcProvider, roles: &[(&str, ApiKeyRole)]) {
    let roles = roles
        .iter()
        .map(|(value, role)| RoleMapping {
            value: (*value).into(),
            role: *role as i32,
        })
        .collect();
    stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            identity: Some(IdentitySettings {
                provider: Some(IdentityProvider {
                    issuer: idp.issuer.clone(),
                    role_claim: "groups".into(),
                    roles,
                    client_id: CLIENT_AT_IDP.into(),
                    sign_in_scopes: vec!["groups".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

const ROLES: [(&str, ApiKeyRole); 2] = [("eng", ApiKeyRole::Editor), ("dev", ApiKeyRole::Viewer)];

/// A stack whose tenant `acme` signs its users in at a provider of its own: the stack,
/// its upstream, the provider, acme's endpoint and key.
async fn federated() -> (Stack, TestUpstream, OidcProvider, String, String) {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let endpoint = stack.worker().endpoint("acme");
    let callback = endpoint.replace("/mcp", "/oauth/callback");
    let users: [(&str, &[&str]); 2] = [("alice", &["eng", "staff"]), ("mallory", &["staff"])];
    let idp = OidcProvider::with_users(&[], 300, &users, &[(CLIENT_AT_IDP, &callback)]).await;
    sign_in_at(&stack, &idp, &ROLES).await;
    // Applied once a token of the provider itself is taken at the endpoint.
    let direct = idp.sign(&claims(&idp.issuer, &endpoint, 300)).await;
    let http = reqwest::Client::new();
    assert_eventually!(
        modern::list(&http, &endpoint, &direct).await.ok(),
        DEADLINE,
        "the tenant's provider is applied"
    );
    (stack, up, idp, endpoint, key)
}

/// Claims of a token of `iss` for `aud`, alice's, expiring in `seconds`.
fn claims(iss: &str, aud: &str, seconds: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"iss": iss, "aud": aud, "sub": "alice", "groups": ["eng"],
        "iat": now - 600, "exp": now + seconds})
}

/// The status of a `tools/list` with `token` at `endpoint`, and its challenge.
async fn refusal(endpoint: &str, token: &str) -> (u16, String) {
    let answer = reqwest::Client::new()
        .post(endpoint)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
        .send()
        .await
        .unwrap();
    let challenge = answer
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (answer.status().as_u16(), challenge)
}

/// Consents on the page at `url`: where the browser is sent, at `idp`.
async fn consent(browser: &Browser, idp: &OidcProvider, url: &str) -> String {
    let page = browser.get(url).await;
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("You will sign in at"), "{page}");
    assert!(!page.contains("api_key"), "no API key is asked for: {page}");
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).unwrap() + marker.len();
        page[start..start + page[start..].find('"').unwrap()].to_owned()
    };
    let (signin, csrf) = (field("signin"), field("csrf"));
    let form = [
        ("signin", signin.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "allow"),
    ];
    let sent = browser
        .post_form(url.split('?').next().unwrap(), &form)
        .await;
    assert_eq!(sent.status().as_u16(), 303);
    let at_idp = sent.headers()["location"].to_str().unwrap().to_owned();
    assert!(at_idp.starts_with(&idp.issuer), "{at_idp}");
    assert_eq!(
        param(&at_idp, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&at_idp, "scope").as_deref(), Some("openid groups"));
    at_idp
}

/// Consents on the page at `url` and signs `login` in at `idp`: where the browser ends.
async fn consent_and_sign_in(
    browser: &Browser,
    idp: &OidcProvider,
    url: &str,
    login: &str,
) -> String {
    let at_idp = consent(browser, idp, url).await;
    idp.sign_in(browser, &at_idp, login).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_signs_in_at_the_tenants_provider_and_calls_a_tool() {
    let (stack, up, idp, endpoint, _key) = federated().await;
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let redirect_uri = "http://127.0.0.1:9/callback";
    let mut client = OAuthClient::start(&endpoint, "up__echo", redirect_uri);
    let browser = Browser::new();
    let (mut result, mut tokens) = (None, None);
    while let Some(line) = client.line().await {
        if let Some(url) = line.strip_prefix("authorize=") {
            let back = consent_and_sign_in(&browser, &idp, url, "alice").await;
            assert!(
                back.starts_with(&format!("{issuer}/oauth/callback")),
                "{back}"
            );
            let answer = browser.get(&back).await;
            assert_eq!(answer.status().as_u16(), 303);
            let location = answer.headers()["location"].to_str().unwrap().to_owned();
            assert!(location.starts_with(redirect_uri), "{location}");
            assert_eq!(param(&location, "iss").as_deref(), Some(issuer.as_str()));
            // The provider's answer is used once.
            assert_eq!(browser.get(&back).await.status().as_u16(), 400);
            client.send(&location).await;
        } else if let Some(json) = line.strip_prefix("result=") {
            result = Some(serde_json::from_str::<Value>(json).unwrap());
        } else if let Some(json) = line.strip_prefix("tokens=") {
            tokens = Some(serde_json::from_str::<Value>(json).unwrap());
        }
    }
    assert!(client.succeeded().await, "the client failed");
    let result = result.expect("the client called the tool");
    assert_eq!(result["is_error"], false, "{result}");
    let tokens = tokens.expect("the client showed its tokens");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The user is the caller, on the audit trail.
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "call")
            .await
            .iter()
            .any(|r| r.actor == "user:alice"),
        DEADLINE,
        "the call is on record under the user"
    );
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "authorization")
            .await
            .iter()
            .any(|r| r.action == "signed_in" && r.actor == "user:alice"),
        DEADLINE,
        "the sign-in is on record"
    );
    refused_tokens((&stack, &up), &idp, &endpoint, (&access, &refresh)).await;
}

/// What is refused of `access` and `refresh`, alice's, and of tokens like them.
async fn refused_tokens(
    (stack, up): (&Stack, &TestUpstream),
    idp: &OidcProvider,
    endpoint: &str,
    (access, refresh): (&str, &str),
) {
    let issuer = endpoint.trim_end_matches("/mcp");
    let metadata = |tenant: &str| format!("/.well-known/oauth-protected-resource/t/{tenant}/mcp");
    // At another tenant's endpoint, the token is not a credential.
    let other_key = stack.tenant_with_connector("other", "up", &up.url).await;
    stack.wait_serving("other", &other_key).await;
    let (status, challenge) = refusal(&endpoint.replace("/t/acme/", "/t/other/"), access).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(&metadata("other")), "{challenge}");
    // The provider's own tokens: expired, or of another issuer, or for another resource.
    for (claims, why) in [
        (claims(&idp.issuer, endpoint, -600), "expired"),
        (
            claims("https://idp.example", endpoint, 300),
            "another issuer",
        ),
        (
            claims(&idp.issuer, &endpoint.replace("/t/acme/", "/t/other/"), 300),
            "another resource",
        ),
    ] {
        let (status, challenge) = refusal(endpoint, &idp.sign(&claims).await).await;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.starts_with("Bearer "), "{why}: {challenge}");
        assert!(challenge.contains(&metadata("acme")), "{why}: {challenge}");
    }
    // A refresh token used twice ends the grant: the one it was replaced by is dead too.
    let with_client = |t: String, client: String| async move {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", t.as_str()),
            ("client_id", client.as_str()),
        ];
        token(
            &reqwest::Client::new(),
            &format!("{issuer}/oauth/token"),
            &form,
        )
        .await
    };
    let client = registered_client(access);
    let (status, next) = with_client(refresh.to_owned(), client.clone()).await;
    assert_eq!(status, 200, "{next}");
    let rotated = next["refresh_token"].as_str().unwrap().to_owned();
    let (status, again) = with_client(refresh.to_owned(), client.clone()).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, after) = with_client(rotated, client).await;
    assert_eq!(
        (status, after["error"].as_str()),
        (400, Some("invalid_grant")),
        "{after}"
    );
    // Once the user's group maps to no role, the token is refused for want of one.
    sign_in_at(stack, idp, &[("dev", ApiKeyRole::Viewer)]).await;
    let fresh = next["access_token"].as_str().unwrap().to_owned();
    assert_eventually!(
        refusal(endpoint, &fresh).await.0 == 403,
        DEADLINE,
        "the token's role is mapped again at every check"
    );
}

/// Follows `back`, the provider's answer, to the client: refused, with no code.
async fn denied(browser: &Browser, back: &str) {
    let answer = browser.get(back).await;
    assert_eq!(answer.status().as_u16(), 303);
    let location = answer.headers()["location"].to_str().unwrap();
    let error = param(location, "error");
    assert_eq!(error.as_deref(), Some("access_denied"), "{location}");
    assert!(param(location, "code").is_none());
}

/// The client id an access token of the built-in server was issued to.
fn registered_client(access: &str) -> String {
    use base64::Engine as _;
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_takes_only_its_own_browsers_fresh_answer_for_a_user_with_a_role() {
    let (stack, _up, idp, endpoint, _key) = federated().await;
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let client = ClientDoc::serve("Doc client", None).await;
    let begin = |browser: &'static str| {
        let (_, challenge) = pkce();
        authorize_url(&issuer, &client, &challenge, browser)
    };
    // An answer reaching another browser is not taken, and leaves the sign-in as it was.
    let browser = Browser::new();
    let back = consent_and_sign_in(&browser, &idp, &begin("a"), "alice").await;
    let thief = Browser::new();
    assert_eq!(thief.get(&back).await.status().as_u16(), 400);
    let answer = browser.get(&back).await;
    assert_eq!(answer.status().as_u16(), 303);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(param(&location, "code").is_some(), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("a"));

    // A user whose groups map to no role is sent back refused, and it is on record.
    let browser = Browser::new();
    let back = consent_and_sign_in(&browser, &idp, &begin("b"), "mallory").await;
    denied(&browser, &back).await;

    // A user who gives up at the provider: the client hears access_denied.
    let browser = Browser::new();
    let at_idp = consent(&browser, &idp, &begin("c")).await;
    let back = idp.decline(&browser, &at_idp).await;
    denied(&browser, &back).await;

    // An answer naming another issuer than the provider the user was sent to (a mix-up,
    // RFC 9207) is refused, and its sign-in is spent.
    let browser = Browser::new();
    let back = consent_and_sign_in(&browser, &idp, &begin("d"), "alice").await;
    let mut mixed = url::Url::parse(&back).unwrap();
    let pairs: Vec<(String, String)> = mixed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| k != "iss")
        .collect();
    mixed
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("iss", "https://attacker.example");
    denied(&browser, mixed.as_str()).await;
    assert_eq!(browser.get(&back).await.status().as_u16(), 400);

    // A made-up answer, with no sign-in behind it.
    let forged = format!("{issuer}/oauth/callback?code=x&state={}", "A".repeat(43));
    assert_eq!(browser.get(&forged).await.status().as_u16(), 400);

    let object = format!("client/acme/{}", client.id);
    for (action, kind) in [
        ("sign_in_declined", "authorization"),
        ("insufficient_scope", "auth_failure"),
    ] {
        assert_eventually!(
            crate::audit_refusals::records(&stack.cp, "acme", kind)
                .await
                .iter()
                .any(|r| r.object == object && r.action == action),
            DEADLINE,
            "{action} is on record"
        );
    }
}
