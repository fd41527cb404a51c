//! Clients that register themselves (RFC 7591) with a tenant's built-in authorization
//! server: the MCP Python SDK's OAuth client signs in end to end through a real stack (this
//! test plays the person at the consent page), and what registration refuses.

use serde_json::{Value, json};
use switchyard_tests::oauth::{Page, browser};
use switchyard_tests::python::OAuthClient;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, modern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_signs_in_by_registering_and_calls_a_tool() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let endpoint = stack.worker().endpoint("acme");
    // Where the browser would be sent back to: nobody listens, the test reads the redirect.
    let redirect_uri = "http://127.0.0.1:9/callback";
    let mut client = OAuthClient::start(&endpoint, "up__echo", redirect_uri);
    let browser = browser();
    let (mut registered, mut result) = (None, None);
    while let Some(line) = client.line().await {
        if let Some(id) = line.strip_prefix("client_id=") {
            registered = Some(id.to_owned());
        } else if let Some(url) = line.strip_prefix("authorize=") {
            let page = Page::open(&browser, url).await;
            assert_eq!(page.status, 200, "{}", page.body);
            assert!(
                page.body.contains("Python SDK test client"),
                "{}",
                page.body
            );
            let answer = page.submit(&browser, url, &key, "allow", None).await;
            assert_eq!(answer.status().as_u16(), 303);
            let location = answer.headers()["location"].to_str().unwrap();
            assert!(location.starts_with(redirect_uri), "{location}");
            client.send(location).await;
        } else if let Some(json) = line.strip_prefix("result=") {
            result = Some(serde_json::from_str::<Value>(json).unwrap());
        }
    }
    assert!(client.succeeded().await, "the client failed");
    assert!(registered.is_some(), "the client registered itself");
    let result = result.expect("the client called the tool");
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["text"]
            .as_str()
            .unwrap_or_default()
            .contains("signed in"),
        "{result}"
    );
}

async fn register(http: &reqwest::Client, issuer: &str, body: &Value) -> (u16, Value) {
    let resp = http
        .post(format!("{issuer}/oauth/register"))
        .json(body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_takes_public_clients_with_safe_redirects_and_is_bounded() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let issuer = stack
        .worker()
        .endpoint("acme")
        .trim_end_matches("/mcp")
        .to_owned();
    let good = json!({"client_name": "Agent", "redirect_uris": ["http://127.0.0.1:9/cb"]});
    for (body, error) in [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
        ),
        (json!("not an object"), "invalid_client_metadata"),
    ] {
        let (status, answer) = register(&http, &issuer, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
    }
    // A registration is one tenant's: another tenant's server does not know it.
    let (status, answer) = register(&http, &issuer, &good).await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["client_id"].as_str().unwrap().to_owned();
    assert_eq!(answer["token_endpoint_auth_method"], "none");
    let other = issuer.replace("/t/acme", "/t/other");
    let (_, challenge) = switchyard_tests::oauth::pkce();
    let elsewhere = format!(
        "{other}/oauth/authorize?response_type=code&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_challenge={challenge}&code_challenge_method=S256"
    );
    let page = Page::open(&browser(), &elsewhere).await;
    assert_eq!(page.status, 400, "{}", page.body);
    // A tenant that does not exist is answered alike, and an address's registrations are
    // bounded: ten an hour (two were taken above).
    let ghost = issuer.replace("/t/acme", "/t/ghost");
    let (status, _) = register(&http, &ghost, &good).await;
    assert_eq!(status, 201);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(register(&http, &issuer, &good).await.0);
    }
    assert_eq!(statuses, [201; 8]);
    let (status, answer) = register(&http, &issuer, &good).await;
    assert_eq!((status, answer["error"].as_str()), (429, Some("slow_down")));
    // An address may begin 30 sign-ins a minute (one was begun above, at `other`).
    let url = format!(
        "{issuer}/oauth/authorize?response_type=code&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_challenge={challenge}&code_challenge_method=S256"
    );
    let mut opened = Vec::new();
    for _ in 0..30 {
        opened.push(Page::open(&browser(), &url).await.status);
    }
    assert_eq!(opened[..29], [200; 29]);
    assert_eq!(opened[29], 429, "the 31st sign-in is refused");
    // The endpoint itself still serves the tenant's key.
    let echo = modern::call(
        &http,
        &stack.worker().endpoint("acme"),
        &key,
        "up__echo",
        json!({"text": "x"}),
    )
    .await;
    assert!(echo.ok());
}
