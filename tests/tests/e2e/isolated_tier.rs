//! The isolated tier end to end, on PostgreSQL and NATS, with the namespace reconciler
//! against the Kubernetes fake: a tenant moved to the isolated tier is served by a
//! `--only-tenant` worker holding only its derived key; shared workers keep serving it until
//! the pool is ready, then answer 503 with Retry-After (never 401), and serve it again when
//! it moves back. A worker holding one tenant's key cannot open another tenant's secrets.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::KubeConfig;
use switchyard_control_plane::compile::Keys;
use switchyard_control_plane::kube::{GatewayRef, KubeSettings};
use switchyard_tests::admin::*;
use switchyard_tests::kube_fake::{KubeFake, key};
use switchyard_tests::modern::call;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, mcp_connector};

const DEADLINE: Duration = Duration::from_secs(30);

fn settings() -> KubeSettings {
    KubeSettings {
        namespace_prefix: "sy-t-".into(),
        lease_namespace: "switchyard".into(),
        identity: "control-plane-0".into(),
        worker_image: "registry.example.com/switchyard:test".into(),
        nats_url: "nats://127.0.0.1:4222".into(),
        nats_port: 4222,
        public_url: None,
        upstream_allow: Vec::new(),
        ingress_namespace: "ingress-nginx".into(),
        monitoring_namespace: "monitoring".into(),
        gateway: GatewayRef::parse("gateways/public"),
        resync: Duration::from_secs(1),
        nats_signer: None,
        worker_env: Vec::new(),
    }
}

/// What answered a 2026-07-28 call of `tool` at `endpoint` with `key`, if it succeeded.
async fn answered_by(endpoint: &str, key: &str, tool: &str) -> Option<String> {
    call(&reqwest::Client::new(), endpoint, key, tool, json!({}))
        .await
        .text()
        .map(str::to_owned)
}

async fn status_of(endpoint: &str, key: &str, tool: &str) -> (u16, Option<u64>, Value) {
    let a = call(&reqwest::Client::new(), endpoint, key, tool, json!({})).await;
    (a.status, a.retry_after, a.body)
}

/// A stack with `workers` shared workers whose control plane reconciles tenant namespaces
/// against a Kubernetes fake.
async fn stack(workers: usize) -> (KubeFake, Stack) {
    switchyard_tests::install_tls();
    let fake = KubeFake::start(1).await;
    let client = fake.client(0);
    // NATS in operator mode: dedicated workers run on credentials limited to their tenant.
    let stack = Stack::builder()
        .workers(workers)
        .nats_accounts()
        .control_plane(|c| {
            c.kube = Some(KubeConfig {
                client,
                settings: settings(),
            });
        })
        .start()
        .await;
    (fake, stack)
}

/// Keys of a worker that holds only `policy` (a dedicated worker's derived key).
fn worker_keys(policy: SecretKey) -> Keys {
    Keys {
        master: Keyring::new(SecretKey::generate()),
        policy: Keyring::new(policy),
    }
}

#[tokio::test]
async fn an_isolated_tenant_is_handed_to_its_dedicated_workers_and_back() {
    let (fake, stack) = stack(1).await;
    let (cp, shared) = (&stack.cp, stack.worker());
    let up = TestUpstream::start("acme-up").await;
    cp.create_tenant("acme").await;
    cp.connectors()
        .create_connector(mcp_connector(
            "acme",
            "up",
            &up.url,
            &[("x-api-key", "acme-secret")],
        ))
        .await
        .unwrap();
    let key_a = cp.api_key("acme").await;
    cp.create_tenant("other").await;
    let other_up = TestUpstream::start("other-up").await;
    cp.connectors()
        .create_connector(mcp_connector("other", "up", &other_up.url, &[]))
        .await
        .unwrap();
    let key_o = cp.api_key("other").await;
    let at_shared = shared.endpoint("acme");
    assert_eventually!(
        answered_by(&at_shared, &key_a, "up__whoami")
            .await
            .as_deref()
            == Some("upstream acme-up"),
        DEADLINE,
        "the shared fleet serves acme"
    );

    // Into the isolated tier.
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            tier: Some(TenantTier::Isolated as i32),
            ..Default::default()
        })
        .await
        .unwrap();
    let ns = "sy-t-acme";
    let secret = key("api/v1", "secrets", Some(ns), "switchyard-worker");
    assert_eventually!(
        fake.get(&secret).is_some(),
        DEADLINE,
        "the pool's key Secret"
    );
    use base64::Engine as _;
    let derived = base64::engine::general_purpose::STANDARD
        .decode(
            fake.get(&secret).unwrap()["data"]["policy-key"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let derived = SecretKey::from_base64(std::str::from_utf8(&derived).unwrap()).unwrap();
    let dedicated = stack
        .start_worker_with_keys(&worker_keys(derived), |c| {
            c.only_tenant = Some("acme".into());
        })
        .await;
    let at_dedicated = dedicated.endpoint("acme");

    // Make before break: until the pool is ready the shared fleet still serves; the
    // dedicated worker opens the tenant's secret with its own key.
    assert_eventually!(
        answered_by(&at_dedicated, &key_a, "up__whoami")
            .await
            .as_deref()
            == Some("upstream acme-up"),
        DEADLINE,
        "the dedicated worker serves acme"
    );
    let (status, _, _) = status_of(&at_shared, &key_a, "up__whoami").await;
    assert_eq!(status, 200, "shared workers serve until the pool is ready");
    assert!(
        up.seen_headers()
            .iter()
            .all(|h| h.get("x-api-key").is_none_or(|v| v == "acme-secret")),
        "the secret header arrives intact"
    );
    // The dedicated worker serves no other tenant.
    let (status, _, _) = status_of(&dedicated.endpoint("other"), &key_o, "up__whoami").await;
    assert_eq!(status, 401);

    // The pool is ready: shared workers hand acme over with 503 + Retry-After, never 401.
    fake.set_ready(
        &key("apis/apps/v1", "deployments", Some(ns), "switchyard-worker"),
        2,
    );
    assert_eventually!(
        status_of(&at_shared, &key_a, "up__whoami").await.0 == 503,
        DEADLINE,
        "shared workers hand the tenant over"
    );
    let (status, retry, answer) = status_of(&at_shared, &key_a, "up__whoami").await;
    assert_eq!((status, retry), (503, Some(1)), "{answer}");
    assert!(answer.to_string().contains("dedicated workers"), "{answer}");
    assert!(
        fake.get(&key(
            "apis/gateway.networking.k8s.io/v1",
            "httproutes",
            Some(ns),
            "switchyard-worker"
        ))
        .is_some()
    );
    assert_eq!(
        answered_by(&at_dedicated, &key_a, "up__whoami")
            .await
            .as_deref(),
        Some("upstream acme-up")
    );
    assert_eq!(
        answered_by(&shared.endpoint("other"), &key_o, "up__whoami")
            .await
            .as_deref(),
        Some("upstream other-up"),
        "other tenants are untouched"
    );
    let t = cp.tenant("acme").await;
    assert_eq!(t.tier, TenantTier::Isolated as i32);
    let isolation = t.status.unwrap().isolation.unwrap();
    assert_eq!(isolation.namespace, ns);
    assert!(isolation.dedicated_workers_serving);

    // Back to shared: the shared fleet serves again at once.
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            tier: Some(TenantTier::Shared as i32),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eventually!(
        answered_by(&at_shared, &key_a, "up__whoami")
            .await
            .as_deref()
            == Some("upstream acme-up"),
        DEADLINE,
        "the shared fleet serves acme again"
    );
}

#[tokio::test]
async fn a_worker_with_one_tenants_key_cannot_open_another_tenants_secrets() {
    let (_fake, stack) = stack(0).await;
    let cp = &stack.cp;
    let up = TestUpstream::start("up").await;
    for (slug, tier) in [
        ("acme", TenantTier::Isolated),
        ("other", TenantTier::Isolated),
    ] {
        cp.tenants()
            .create_tenant(CreateTenantRequest {
                slug: slug.into(),
                tier: tier as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        cp.connectors()
            .create_connector(mcp_connector(
                slug,
                "up",
                &up.url,
                &[("x-api-key", "s3cret")],
            ))
            .await
            .unwrap();
    }
    let key_other = cp.api_key("other").await;
    // A worker of other's pool, but holding acme's key (a stolen or misplaced Secret).
    let acme_key = cp.keys.policy.primary().for_tenant("acme");
    let wrong = stack
        .start_worker_with_keys(&worker_keys(acme_key), |c| {
            c.only_tenant = Some("other".into());
        })
        .await;
    // The right key for comparison: other's own.
    let right = stack
        .start_worker_with_keys(
            &worker_keys(cp.keys.policy.primary().for_tenant("other")),
            |c| c.only_tenant = Some("other".into()),
        )
        .await;
    assert_eventually!(
        answered_by(&right.endpoint("other"), &key_other, "up__whoami")
            .await
            .as_deref()
            == Some("upstream up"),
        DEADLINE,
        "other's own key opens its connector"
    );
    // With acme's key the connector's secret does not open: the connector is left out, so
    // its tool is unknown rather than called without (or with another's) credentials.
    let (status, _, answer) = status_of(&wrong.endpoint("other"), &key_other, "up__whoami").await;
    assert_eq!(status, 200);
    assert!(
        answer["result"]["content"][0]["text"] != "upstream up",
        "{answer}"
    );
    assert!(
        answer["error"].is_object() || answer["result"]["isError"] == true,
        "{answer}"
    );
    // And the policy key alone (a shared worker's) does not open a tenant-sealed secret
    // without deriving: the sealing really is per tenant.
    let bus = stack.policy_bus().await;
    let policy = bus.get("other").await.unwrap().unwrap();
    assert!(policy.tenant_sealed);
    let Some(switchyard_proto::policy::v1::connector::Kind::Mcp(m)) = &policy.connectors[0].kind
    else {
        panic!("an MCP connector");
    };
    let aad = switchyard_common::seal::policy_header_aad("other", "up", "x-api-key");
    let sealed = &m.headers[0].sealed_value;
    assert!(cp.keys.policy.open(&aad, sealed).is_err());
    assert!(
        cp.keys
            .policy
            .for_tenant("acme")
            .open(&aad, sealed)
            .is_err()
    );
    assert!(
        cp.keys
            .policy
            .for_tenant("other")
            .open(&aad, sealed)
            .is_ok()
    );
}
