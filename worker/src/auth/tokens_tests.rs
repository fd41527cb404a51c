//! Token checks against a real HTTP identity provider on loopback, serving discovery and a
//! key set the test changes as it goes, with tokens signed by keys made for each test.

use super::*;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

const RESOURCE: &str = "https://mcp.example.com/t/acme/mcp";

struct TestKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // An uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]),
                "y": b64(&point[33..65]), "kid": kid, "alg": "ES256", "use": "sig"}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

#[derive(Default)]
struct Published {
    issuer: String,
    keys: Vec<Value>,
    /// Answer every request with 503.
    down: bool,
    /// Pad the key set past the size bound.
    oversized: bool,
}

#[derive(Clone, Default)]
struct Idp {
    published: Arc<Mutex<Published>>,
    served: Arc<AtomicU64>,
}

async fn discovery(State(idp): State<Idp>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let p = lock(&idp.published);
    if p.down {
        return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(
        json!({"issuer": p.issuer, "jwks_uri": format!("{}/jwks", p.issuer),
        "authorization_endpoint": format!("{}/auth", p.issuer),
        "token_endpoint": "ftp://weaker.example/token"}),
    )
    .into_response()
}

async fn jwks(State(idp): State<Idp>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    idp.served.fetch_add(1, Ordering::SeqCst);
    let p = lock(&idp.published);
    if p.down {
        return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let padding = if p.oversized {
        "x".repeat(MAX_DOCUMENT_BYTES)
    } else {
        String::new()
    };
    axum::Json(json!({"keys": p.keys, "padding": padding})).into_response()
}

impl Idp {
    /// A provider on loopback publishing `keys`: it and its issuer URL.
    async fn start(keys: &[&TestKey]) -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = Idp::default();
        {
            let mut p = lock(&idp.published);
            p.issuer.clone_from(&issuer);
            p.keys = keys.iter().map(|k| k.jwk.clone()).collect();
        }
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            // Discovery under another path that names the provider's own issuer.
            .route("/other/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (idp, issuer)
    }

    fn publish(&self, keys: &[&TestKey]) {
        lock(&self.published).keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }
}

fn loopback_allowed() -> UpstreamGuard {
    UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()])
}

fn tokens(timing: Timing) -> Tokens {
    Tokens::new(loopback_allowed()).unwrap().with_timing(timing)
}

fn provider(issuer: &str) -> Provider {
    Provider {
        issuer: issuer.into(),
        audience: String::new(),
        role_claim: "groups".into(),
        roles: vec![
            ("dev".into(), Role::Viewer),
            ("sre".into(), Role::Admin),
            ("eng".into(), Role::Editor),
        ],
        client_id: "switchyard".into(),
        sign_in_scopes: Vec::new(),
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": RESOURCE, "sub": "user-1", "exp": now() + 300,
        "iat": now(), "groups": ["dev", "sre"]})
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(field);
    } else {
        claims[field] = value;
    }
    claims
}

#[tokio::test]
async fn a_valid_token_gives_its_subject_and_the_strongest_mapped_role() {
    let key = TestKey::new("k1");
    let (_idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing::default());
    let p = provider(&issuer);
    let verified = t.verify(&p, RESOURCE, &key.sign(&claims(&issuer))).await;
    assert_eq!(
        verified,
        Ok(Verified {
            subject: "user-1".into(),
            role: Role::Admin
        })
    );
    // A claim holding one string, and an audience among several.
    let one = with(claims(&issuer), "groups", json!("eng"));
    let one = with(one, "aud", json!(["other", RESOURCE]));
    assert_eq!(
        t.verify(&p, RESOURCE, &key.sign(&one))
            .await
            .map(|v| v.role),
        Ok(Role::Editor)
    );
    // Within the allowed skew.
    let skewed = with(claims(&issuer), "exp", json!(now() - 30));
    assert!(t.verify(&p, RESOURCE, &key.sign(&skewed)).await.is_ok());
    assert_eq!(t.fetches(), 1, "keys are fetched once and cached");
}

#[tokio::test]
async fn tokens_for_another_resource_issuer_or_time_are_refused() {
    let key = TestKey::new("k1");
    let (_idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing::default());
    let p = provider(&issuer);
    let c = || claims(&issuer);
    let cases = [
        (
            "another tenant's resource",
            with(c(), "aud", json!("https://mcp.example.com/t/other/mcp")),
        ),
        ("no audience", with(c(), "aud", Value::Null)),
        (
            "another issuer",
            with(c(), "iss", json!("https://evil.example")),
        ),
        (
            "the issuer with a trailing slash",
            with(c(), "iss", json!(format!("{issuer}/"))),
        ),
        ("expired", with(c(), "exp", json!(now() - 120))),
        ("no expiry", with(c(), "exp", Value::Null)),
        ("not yet valid", with(c(), "nbf", json!(now() + 600))),
        ("no subject", with(c(), "sub", Value::Null)),
        ("an empty subject", with(c(), "sub", json!(""))),
        (
            "a subject too long",
            with(c(), "sub", json!("u".repeat(256))),
        ),
        (
            "a subject with a line break",
            with(c(), "sub", json!("alice\nkey:abcdefabcdef")),
        ),
    ];
    for (what, claims) in cases {
        let refused = t.verify(&p, RESOURCE, &key.sign(&claims)).await;
        assert!(
            matches!(refused, Err(TokenError::Invalid(_))),
            "{what}: {refused:?}"
        );
    }
    // A provider that cannot mint tokens for the resource: its configured audience, and
    // only that, is accepted.
    let mut fixed = provider(&issuer);
    fixed.audience = "api://switchyard".into();
    let for_api = with(c(), "aud", json!("api://switchyard"));
    assert!(
        t.verify(&fixed, RESOURCE, &key.sign(&for_api))
            .await
            .is_ok()
    );
    assert!(t.verify(&fixed, RESOURCE, &key.sign(&c())).await.is_err());
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let key = TestKey::new("k1");
    let forger = TestKey::new("k1");
    let (_idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing::default());
    let p = provider(&issuer);
    let good = key.sign(&claims(&issuer));
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = good.split('.').nth(1).unwrap();
    // The admin group added to a signed token.
    let mut raised = claims(&issuer);
    raised["groups"] = json!(["sre", "dev", "admin"]);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&raised), parts[2]);
    // The public key used as an HMAC secret.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let hmac = jsonwebtoken::encode(
        &hs,
        &claims(&issuer),
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    let cases = [
        (
            "signed by another key under its id",
            forger.sign(&claims(&issuer)),
        ),
        ("tampered", tampered),
        ("HS256", hmac),
        (
            "alg none",
            format!("{}.{payload}.", b64(&json!({"alg": "none", "kid": "k1"}))),
        ),
        ("not a token", "sy_abcdefabcdef_secret".into()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let refused = t.verify(&p, RESOURCE, &token).await;
        assert!(
            matches!(refused, Err(TokenError::Invalid(_))),
            "{what}: {refused:?}"
        );
    }
    assert!(t.verify(&p, RESOURCE, &good).await.is_ok());
}

#[tokio::test]
async fn a_token_whose_claim_maps_to_no_role_is_refused_as_such() {
    let key = TestKey::new("k1");
    let (_idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing::default());
    for groups in [json!(["marketing"]), json!(7), Value::Null] {
        let token = key.sign(&with(claims(&issuer), "groups", groups.clone()));
        assert_eq!(
            t.verify(&provider(&issuer), RESOURCE, &token).await,
            Err(TokenError::NoRole("groups".into())),
            "{groups}"
        );
    }
}

#[tokio::test]
async fn keys_rotate_without_refusing_anyone() {
    let old = TestKey::new("old");
    let new = TestKey::new("new");
    let (idp, issuer) = Idp::start(&[&old]).await;
    let t = tokens(Timing {
        refetch_after: Duration::ZERO,
        ..Timing::default()
    });
    let p = provider(&issuer);
    let old_token = old.sign(&claims(&issuer));
    assert!(t.verify(&p, RESOURCE, &old_token).await.is_ok());
    // The provider publishes its next key beside the current one, then signs with it.
    idp.publish(&[&old, &new]);
    assert!(
        t.verify(&p, RESOURCE, &new.sign(&claims(&issuer)))
            .await
            .is_ok()
    );
    assert!(t.verify(&p, RESOURCE, &old_token).await.is_ok());
    // Once the old key is withdrawn, its tokens stop working at the next fetch.
    idp.publish(&[&new]);
    let unknown = old.sign_as("retired-probe", &claims(&issuer));
    assert!(t.verify(&p, RESOURCE, &unknown).await.is_err());
    assert!(t.verify(&p, RESOURCE, &old_token).await.is_err());
}

#[tokio::test]
async fn a_flood_of_made_up_key_ids_costs_the_provider_one_fetch() {
    let key = TestKey::new("k1");
    let (idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing::default());
    let p = provider(&issuer);
    assert!(
        t.verify(&p, RESOURCE, &key.sign(&claims(&issuer)))
            .await
            .is_ok()
    );
    let floods = (0..50).map(|i| {
        let token = key.sign_as(&format!("made-up-{i}"), &claims(&issuer));
        let (t, p) = (&t, &p);
        async move { t.verify(p, RESOURCE, &token).await }
    });
    for refused in futures::future::join_all(floods).await {
        assert!(
            matches!(refused, Err(TokenError::Invalid(_))),
            "{refused:?}"
        );
    }
    assert_eq!(idp.served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_provider_is_away() {
    let key = TestKey::new("k1");
    let (idp, issuer) = Idp::start(&[&key]).await;
    let t = tokens(Timing {
        fresh: Duration::ZERO,
        refetch_after: Duration::ZERO,
        ..Timing::default()
    });
    let p = provider(&issuer);
    assert!(
        t.verify(&p, RESOURCE, &key.sign(&claims(&issuer)))
            .await
            .is_ok()
    );
    lock(&idp.published).down = true;
    assert!(
        t.verify(&p, RESOURCE, &key.sign(&claims(&issuer)))
            .await
            .is_ok()
    );
    assert!(t.fetches() >= 2, "a fetch was tried");
    // With nothing cached, a provider that is away is said to be so.
    let cold = tokens(Timing::default());
    assert!(matches!(
        cold.verify(&p, RESOURCE, &key.sign(&claims(&issuer))).await,
        Err(TokenError::Unavailable(_))
    ));
}

#[tokio::test]
async fn providers_that_misbehave_or_sit_in_a_guarded_range_are_not_trusted() {
    let key = TestKey::new("k1");
    let (idp, issuer) = Idp::start(&[&key]).await;
    let token = key.sign(&claims(&issuer));
    // A worker whose guard does not allow loopback fetches nothing from there.
    let unavailable = |r: Result<Verified, TokenError>, why: &str| match r {
        Err(TokenError::Unavailable(e)) => assert!(e.contains(why), "{e}"),
        other => panic!("{why}: {other:?}"),
    };
    let guarded = Tokens::new(UpstreamGuard::default()).unwrap();
    unavailable(
        guarded.verify(&provider(&issuer), RESOURCE, &token).await,
        "range",
    );
    assert_eq!(idp.served.load(Ordering::SeqCst), 0);
    // Discovery naming another issuer than the one configured.
    let t = tokens(Timing::default());
    let elsewhere = format!("{issuer}/other");
    let forged = key.sign(&claims(&elsewhere));
    unavailable(
        t.verify(&provider(&elsewhere), RESOURCE, &forged).await,
        "names another issuer",
    );
    // A key set over the size bound.
    lock(&idp.published).oversized = true;
    unavailable(
        t.verify(&provider(&issuer), RESOURCE, &token).await,
        "bytes",
    );
}

#[tokio::test]
async fn an_id_token_counts_only_for_its_client_and_sign_in() {
    let key = TestKey::new("k1");
    let (_idp, issuer) = Idp::start(&[&key]).await;
    let tokens = tokens(Timing::default());
    let p = provider(&issuer);
    let claims = |aud: &str, nonce: &str, groups: &[&str]| {
        json!({"iss": issuer, "aud": aud, "sub": "alice", "exp": now() + 300,
            "nonce": nonce, "groups": groups})
    };
    let signed_in = tokens
        .verify_id_token(
            &p,
            &key.sign(&claims("switchyard", "n1", &["eng", "x"])),
            "n1",
        )
        .await
        .unwrap();
    assert_eq!(signed_in.subject, "alice");
    assert_eq!(signed_in.values, ["eng"], "only values the mapping names");
    let refused = |t: &Value, nonce: &'static str| {
        let (tokens, p, token) = (&tokens, &p, key.sign(t));
        async move { tokens.verify_id_token(p, &token, nonce).await.unwrap_err() }
    };
    // Another sign-in's, another client's, or an access token for the resource.
    let other_nonce = refused(&claims("switchyard", "n2", &["eng"]), "n1").await;
    assert!(matches!(other_nonce, TokenError::Invalid(_)));
    let other_client = refused(&claims("other", "n1", &["eng"]), "n1").await;
    assert!(matches!(other_client, TokenError::Invalid(_)));
    let for_resource = refused(&claims(RESOURCE, "n1", &["eng"]), "n1").await;
    assert!(matches!(for_resource, TokenError::Invalid(_)));
    // Issued to another client among several audiences, or to several without saying.
    let with = |aud: Value, azp: Option<&str>| {
        let mut c = claims("switchyard", "n1", &["eng"]);
        c["aud"] = aud;
        if let Some(azp) = azp {
            c["azp"] = json!(azp);
        }
        c
    };
    for (aud, azp) in [
        (json!(["switchyard", "other"]), Some("other")),
        (json!(["switchyard", "other"]), None),
        (json!("switchyard"), Some("other")),
    ] {
        let t = with(aud.clone(), azp);
        assert!(
            matches!(refused(&t, "n1").await, TokenError::Invalid(_)),
            "{t}"
        );
    }
    let named = with(json!(["switchyard", "other"]), Some("switchyard"));
    tokens
        .verify_id_token(&p, &key.sign(&named), "n1")
        .await
        .unwrap();
    let no_role = refused(&claims("switchyard", "n1", &["x"]), "n1").await;
    assert_eq!(no_role, TokenError::NoRole("groups".into()));
    // A token endpoint at a weaker URL than the issuer's is not taken.
    let missing = tokens.endpoints(&issuer).await.unwrap_err();
    assert!(matches!(missing, TokenError::Unavailable(_)));
}
