//! How a signing-in client finds a tenant's authorization server (RFC 9728), against a real
//! stack: a refused request names the endpoint's metadata, the metadata names the resource
//! the client dialed, and neither says whether the tenant exists.

use http::HeaderMap;
use serde_json::{Value, json};
use switchyard_tests::Stack;
use switchyard_tests::upstream::TestUpstream;

/// What a client without a credential learns about `endpoint`: status, challenge, and the
/// metadata the challenge points at (its status, CORS and cache headers, and document).
async fn probe(http: &reqwest::Client, endpoint: &str, bearer: Option<&str>) -> Seen {
    let mut request = http
        .post(endpoint)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    if let Some(b) = bearer {
        request = request.bearer_auth(b);
    }
    let refused = request.send().await.unwrap();
    let status = refused.status().as_u16();
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = param(&challenge, "resource_metadata").expect("the challenge names metadata");
    let metadata = http
        .get(&url)
        .header("origin", "https://inspector.example")
        .send()
        .await
        .unwrap();
    Seen {
        status,
        challenge,
        metadata_status: metadata.status().as_u16(),
        metadata_headers: metadata.headers().clone(),
        document: metadata.json().await.unwrap(),
    }
}

#[derive(Debug)]
struct Seen {
    status: u16,
    challenge: String,
    metadata_status: u16,
    metadata_headers: HeaderMap,
    document: Value,
}

/// The value of auth-param `name` in `challenge`.
fn param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_is_pointed_at_metadata_naming_the_resource_it_dialed() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let seen = probe(&http, &endpoint, None).await;
    assert_eq!(seen.status, 401, "{seen:?}");
    assert_eq!(
        param(&seen.challenge, "scope").as_deref(),
        Some("tools:read tools:write")
    );
    assert_eq!(seen.metadata_status, 200, "{seen:?}");
    // RFC 9728 §3.3: the resource is exactly the URL the client dialed.
    assert_eq!(seen.document["resource"], endpoint.as_str());
    let issuer = endpoint.trim_end_matches("/mcp");
    assert_eq!(seen.document["authorization_servers"], json!([issuer]));
    assert_eq!(seen.document["bearer_methods_supported"], json!(["header"]));
    assert_eq!(seen.metadata_headers["access-control-allow-origin"], "*");
    // A wrong key is refused as an invalid token, still pointing at the metadata.
    let wrong = probe(&http, &endpoint, Some("sy_acme_wrongwrongwrong")).await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.challenge.contains("error=\"invalid_token\""),
        "{wrong:?}"
    );
    assert_eq!(wrong.document, seen.document);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_does_not_exist_is_answered_like_one_that_does() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let real = probe(&http, &stack.worker().endpoint("acme"), None).await;
    let ghost = probe(&http, &stack.worker().endpoint("ghost"), None).await;
    let as_acme = |s: &str| s.replace("ghost", "acme");
    assert_eq!(
        (ghost.status, as_acme(&ghost.challenge)),
        (real.status, real.challenge.clone())
    );
    assert_eq!(ghost.metadata_status, real.metadata_status);
    let ghost_doc: Value = serde_json::from_str(&as_acme(&ghost.document.to_string())).unwrap();
    assert_eq!(ghost_doc, real.document);
    for header in [
        "content-type",
        "cache-control",
        "access-control-allow-origin",
    ] {
        assert_eq!(
            ghost.metadata_headers.get(header),
            real.metadata_headers.get(header),
            "{header}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_not_made_up_for_a_forged_host_or_an_impossible_tenant() {
    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    let base = stack.worker().endpoint("acme");
    let origin = base.trim_end_matches("/t/acme/mcp");
    let get = |path: String, host: Option<&'static str>| {
        let mut request = http.get(format!("{origin}{path}"));
        if let Some(h) = host {
            request = request.header("host", h);
        }
        request.send()
    };
    // A worker without a public URL serves loopback hosts only: a forged Host gets no
    // metadata pointing elsewhere, and its refusals name none.
    let forged = get(
        "/.well-known/oauth-protected-resource/t/acme/mcp".into(),
        Some("evil.example"),
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), 404);
    let refused = http
        .post(&base)
        .header("host", "evil.example")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(!challenge.contains("evil.example"), "{challenge}");
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    // A name no tenant can have, and the host-wide fallback: no document.
    for path in [
        "/.well-known/oauth-protected-resource/t/ACME/mcp",
        "/.well-known/oauth-protected-resource/t/a%22b/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let answer = get(path.into(), None).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
}
