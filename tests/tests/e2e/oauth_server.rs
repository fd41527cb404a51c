//! The built-in authorization server, against a real stack: a client found from its
//! metadata document signs in on the consent page with one of the tenant's API keys, gets
//! tokens, calls a tool; codes and refresh tokens work once; a replayed refresh token ends
//! its grant; the token dies with the key. And what a hostile page or client tries.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::oauth::{
    ClientDoc, Page, acme, authorize_url, browser, param, pkce, redeem, sign_in, token,
};
use switchyard_tests::{assert_eventually, modern};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_signs_in_with_a_key_calls_a_tool_and_loses_access_with_the_key() {
    let (stack, _up, key) = acme().await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    // Discovery, as a client does it: resource metadata, then the server's metadata.
    let origin = issuer.trim_end_matches("/t/acme");
    let meta: Value = http
        .get(format!(
            "{origin}/.well-known/oauth-authorization-server/t/acme"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], issuer.as_str());
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let token_endpoint = meta["token_endpoint"].as_str().unwrap().to_owned();

    let client = ClientDoc::serve("Test Agent", None).await;
    let (verifier, challenge) = pkce();
    let callback = sign_in(&issuer, &client, &key, &challenge).await;
    assert!(callback.starts_with(&client.redirect_uri), "{callback}");
    assert_eq!(param(&callback, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&callback, "iss").as_deref(), Some(issuer.as_str()));
    let code = param(&callback, "code").unwrap();
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client.id.as_str()),
        ("resource", endpoint.as_str()),
    ];
    let (status, tokens) = token(&http, &token_endpoint, &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "tools:read tools:write");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The token calls tools, and the audit trail names the key it was signed in with.
    let echo = modern::call(&http, &endpoint, &access, "up__echo", json!({"text": "hi"})).await;
    assert!(echo.ok(), "{echo:?}");
    // Minted for acme: refused at another tenant's endpoint.
    let elsewhere = modern::call(
        &http,
        &stack.worker().endpoint("other"),
        &access,
        "up__echo",
        json!({}),
    )
    .await;
    assert_eq!(elsewhere.status, 401);

    // A code works once.
    let (again, body) = token(&http, &token_endpoint, &redeem).await;
    assert_eq!(
        (again, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A refresh token works once; one used again ends the grant, current token included.
    let refresh_form = |t: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", t.to_owned()),
            ("client_id", client.id.clone()),
        ]
    };
    let (status, rotated) = token(&http, &token_endpoint, &as_refs(&refresh_form(&refresh))).await;
    assert_eq!(status, 200, "{rotated}");
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    let (status, replay) = token(&http, &token_endpoint, &as_refs(&refresh_form(&refresh))).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, after) = token(&http, &token_endpoint, &as_refs(&refresh_form(&next))).await;
    assert_eq!(
        (status, after["error"].as_str()),
        (400, Some("invalid_grant")),
        "the replay revoked the whole grant"
    );

    // On the audit trail: the sign-in allowed for the key, and the replay that ended it.
    let key_id = switchyard_common::apikey::parse(&key)
        .unwrap()
        .0
        .to_string();
    let object = format!("client/acme/{}", client.id);
    let actor = format!("key:{key_id}");
    let decided = |action: &'static str, outcome: &'static str| {
        let (stack, object, actor) = (&stack, object.clone(), actor.clone());
        async move {
            crate::audit_refusals::records(&stack.cp, "acme", "authorization")
                .await
                .iter()
                .any(|r| {
                    r.action == action
                        && r.outcome == outcome
                        && r.object == object
                        && r.actor == actor
                })
        }
    };
    assert_eventually!(
        decided("signed_in", "allowed").await,
        DEADLINE,
        "the sign-in is on record"
    );
    assert_eventually!(
        decided("refresh_token_reused", "refused").await,
        DEADLINE,
        "the replayed refresh token is on record"
    );
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "call")
            .await
            .iter()
            .any(|r| r.actor == actor),
        DEADLINE,
        "the token's call is on record under its key"
    );

    // The token is taken by every worker: a second one, serving the same public URL as
    // workers behind one load balancer do, checks it with the same keys.
    let mut origin = url::Url::parse(&endpoint).unwrap();
    origin.set_path("/");
    let second = stack
        .start_worker(|c| c.public_url = Some(origin.clone()))
        .await;
    let elsewhere = second.endpoint("acme");
    assert_eventually!(
        modern::call(&http, &elsewhere, &access, "up__echo", json!({}))
            .await
            .ok(),
        DEADLINE,
        "another worker takes the token"
    );
    // Revoking the key ends the token, on each worker once it applies the revocation.
    stack
        .cp
        .keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: key_id,
        })
        .await
        .unwrap();
    for at in [&endpoint, &elsewhere] {
        assert_eventually!(
            modern::call(&http, at, &access, "up__echo", json!({}))
                .await
                .status
                == 401,
            DEADLINE,
            "the token dies with its key at {at}"
        );
    }
}

fn as_refs<'a>(form: &'a [(&'static str, String); 3]) -> [(&'static str, &'a str); 3] {
    [
        (form[0].0, form[0].1.as_str()),
        (form[1].0, form[1].1.as_str()),
        (form[2].0, form[2].1.as_str()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_granted_read_only_cannot_call_a_tool_that_changes_things() {
    let (stack, _up, key) = acme().await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    let client = ClientDoc::serve("Reader", None).await;
    let (verifier, challenge) = pkce();
    let browser = browser();
    let url = authorize_url(&issuer, &client, &challenge, "s") + "&scope=tools%3Aread";
    let page = Page::open(&browser, &url).await;
    assert!(page.body.contains("tools:read"), "{}", page.body);
    assert!(
        !page.body.contains("tools:write"),
        "it shows only what is asked"
    );
    let answer = page.submit(&browser, &url, &key, "allow", None).await;
    let code = param(answer.headers()["location"].to_str().unwrap(), "code").unwrap();
    let (status, tokens) = redeem(&issuer, &client, &client.id, &code, &verifier).await;
    assert_eq!(
        (status, tokens["scope"].as_str()),
        (200, Some("tools:read"))
    );
    let access = tokens["access_token"].as_str().unwrap();
    // The key may write; the token was granted reading only: 403 and a challenge asking for
    // the scope, so the client can sign in again for more (step-up), in both eras.
    let denied = http
        .post(&endpoint)
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "up__echo", "arguments": {"text": "x"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let challenge = denied.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"tools:read tools:write\""),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let body: Value = denied.json().await.unwrap();
    assert_eq!(
        body["error"]["data"]["reason"], "insufficient_scope",
        "{body}"
    );
    let session = switchyard_tests::legacy::Session::open(&http, &endpoint, access).await;
    let in_session = session.call("up__echo", json!({"text": "x"})).await;
    assert_eq!(in_session.status, 403, "{in_session:?}");
    // Reading stays allowed.
    let listed = modern::list(&http, &endpoint, access).await;
    assert!(listed.ok(), "{listed:?}");
    // An admin key's full grant is whole, though scopes give at most the editor role: it is
    // not sent round asking for more.
    let admin = stack
        .key_with(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Admin as i32,
            ..Default::default()
        })
        .await;
    let (verifier, challenge) = pkce();
    let callback = sign_in(&issuer, &client, &admin, &challenge).await;
    let code = param(&callback, "code").unwrap();
    let (status, tokens) = redeem(&issuer, &client, &client.id, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let full = tokens["access_token"].as_str().unwrap();
    let call = modern::call(&http, &endpoint, full, "up__echo", json!({"text": "x"})).await;
    assert!(call.ok(), "{call:?}");
    assert!(
        modern::call(&http, &endpoint, &key, "up__echo", json!({"text": "x"}))
            .await
            .ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_code_is_useless_without_the_verifier_and_the_client() {
    let (stack, _up, key) = acme().await;
    let issuer = stack
        .worker()
        .endpoint("acme")
        .trim_end_matches("/mcp")
        .to_owned();
    let client = ClientDoc::serve("Test Agent", None).await;
    let (verifier, challenge) = pkce();
    let (other_verifier, _) = pkce();
    for (client_id, verifier_sent) in [
        (client.id.as_str(), other_verifier.as_str()),
        ("http://127.0.0.1:9/evil.json", verifier.as_str()),
    ] {
        let callback = sign_in(&issuer, &client, &key, &challenge).await;
        let code = param(&callback, "code").unwrap();
        let (status, body) = redeem(&issuer, &client, client_id, &code, verifier_sent).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // Nor does a second try with the right values: the code was spent.
        let (status, _) = redeem(&issuer, &client, &client.id, &code, &verifier).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_page_resists_forged_posts_framing_and_unlisted_redirects() {
    let (stack, _up, key) = acme().await;
    let http = browser();
    let issuer = stack
        .worker()
        .endpoint("acme")
        .trim_end_matches("/mcp")
        .to_owned();
    let client = ClientDoc::serve("<script>alert(1)</script>", None).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&issuer, &client, &challenge, "s");
    let page = Page::open(&http, &url).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("<script>"),
        "the client's name is escaped"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // Another site's post: no cookie of this sign-in, or a cross-site fetch.
    let forged = page
        .submit(&http, &url, &key, "allow", Some("sy_signin=x"))
        .await;
    assert_eq!(forged.status().as_u16(), 400);
    let cross = http
        .post(url.split('?').next().unwrap())
        .header("sec-fetch-site", "cross-site")
        .header("cookie", page.cookie.clone().unwrap())
        .header("content-type", switchyard_tests::oauth::FORM)
        .body(switchyard_tests::oauth::encode(&[
            ("signin", &page.field("signin")),
            ("csrf", &page.field("csrf")),
            ("api_key", &key),
            ("decision", "allow"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    // A wrong key is refused on the page, on the audit trail, and the sign-in goes on.
    let wrong = page.submit(&http, &url, "sy_nope", "allow", None).await;
    assert_eq!(wrong.status().as_u16(), 401);
    let object = format!("client/acme/{}", client.id);
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "auth_failure")
            .await
            .iter()
            .any(|r| r.object == object && r.action == "invalid_credential"),
        DEADLINE,
        "the failed sign-in is on record"
    );
    let right = page.submit(&http, &url, &key, "allow", None).await;
    assert_eq!(right.status().as_u16(), 303);
    // Used once.
    let again = page.submit(&http, &url, &key, "allow", None).await;
    assert_eq!(again.status().as_u16(), 400);

    // A redirect URI the client's document does not list is never sent anything.
    let mut evil = url::Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = evil
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "redirect_uri" {
                "https://evil.example/cb".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    evil.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = Page::open(&http, evil.as_str()).await;
    assert_eq!(refused.status, 400);
    assert!(refused.headers.get("location").is_none());
    // PKCE is required: without it the client is told so at its own redirect URI.
    let plain = url.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let answer = http.get(&plain).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    let location = answer.headers()["location"].to_str().unwrap();
    assert_eq!(param(location, "error").as_deref(), Some("invalid_request"));
    // A denial is sent back as access_denied.
    let page = Page::open(&http, &url).await;
    let denied = page.submit(&http, &url, "", "deny", None).await;
    let location = denied.headers()["location"].to_str().unwrap();
    assert_eq!(param(location, "error").as_deref(), Some("access_denied"));
    assert_eventually!(
        crate::audit_refusals::records(&stack.cp, "acme", "authorization")
            .await
            .iter()
            .any(|r| r.object == object
                && r.action == "sign_in_declined"
                && r.outcome == "refused"),
        DEADLINE,
        "the declined sign-in is on record"
    );
}
