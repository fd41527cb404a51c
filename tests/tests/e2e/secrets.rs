//! Connector secrets: sealed at rest and in the compiled policy, absent from the database
//! in plaintext, from logs and from API responses; a sealed value moved to another
//! connector's row fails to open.

use prost::Message as _;
use switchyard_common::seal::policy_header_aad;
use switchyard_common::{TenantSlug, apikey};
use switchyard_control_plane::compile;
use switchyard_tests::admin::*;
use switchyard_tests::{ControlPlane, Stack, logs, mcp_connector};

/// Every row of every table as text (bytea shown as hex), for a plaintext search.
async fn dump(cp: &ControlPlane) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(cp.store.pool())
    .await
    .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    let mut out = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM \"{table}\" t"
        )))
        .fetch_all(cp.store.pool())
        .await
        .unwrap();
        out.push_str(&rows.join("\n"));
    }
    out
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn connector_secrets_are_sealed_everywhere() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let mut api = cp.connectors();
    let created = api
        .create_connector(mcp_connector(
            "acme",
            "github",
            "http://127.0.0.1:9/mcp",
            &[("Authorization", &format!("Bearer {canary}"))],
        ))
        .await
        .unwrap()
        .into_inner();
    // Responses say only that a value is set.
    let listed = api
        .list_connectors(ListConnectorsRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let got = api
        .get_connector(GetConnectorRequest {
            tenant: "acme".into(),
            name: "github".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for response in [
        format!("{created:?}"),
        format!("{listed:?}"),
        format!("{got:?}"),
    ] {
        assert!(!response.contains(&canary), "{response}");
        assert!(response.contains("value_set: true"), "{response}");
    }
    // An update that keeps the value keeps it sealed too.
    api.update_connector(UpdateConnectorRequest {
        tenant: "acme".into(),
        name: "github".into(),
        timeout_ms: Some(1234),
        ..Default::default()
    })
    .await
    .unwrap();

    let db = dump(cp).await;
    assert!(
        db.contains("authorization"),
        "the dump covers the header rows"
    );
    assert!(!db.contains(&canary), "plaintext secret in the database");
    assert!(
        !db.contains(&hex(&canary)),
        "plaintext secret in a bytea column"
    );

    // The compiled policy carries it sealed under the policy key, bound to tenant,
    // connector and header name.
    let state = cp
        .store
        .tenant_state(&TenantSlug::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let policy = compile::compile(&state, &cp.keys, 0).unwrap();
    let encoded = policy.encode_to_vec();
    assert!(
        !encoded
            .windows(canary.len())
            .any(|w| w == canary.as_bytes())
    );
    let Some(switchyard_proto::policy::v1::connector::Kind::Mcp(mcp)) = &policy.connectors[0].kind
    else {
        panic!("kind");
    };
    let header = &mcp.headers[0];
    let opened = cp
        .keys
        .policy
        .open(
            &policy_header_aad("acme", "github", &header.name),
            &header.sealed_value,
        )
        .unwrap();
    assert_eq!(&opened[..], format!("Bearer {canary}").as_bytes());
    assert!(
        cp.keys
            .policy
            .open(
                &policy_header_aad("other", "github", &header.name),
                &header.sealed_value
            )
            .is_err(),
        "a policy value moved to another tenant does not open"
    );
    assert!(
        cp.keys.master.open(b"", &header.sealed_value).is_err(),
        "the master key does not open policy values"
    );

    assert!(!logs().is_empty(), "logs were captured");
    assert!(!logs().contains(&canary), "secret in the logs");
}

#[tokio::test]
async fn sealed_value_moved_to_another_connector_fails_to_open() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    cp.create_tenant("evil").await;
    let mut api = cp.connectors();
    for (tenant, name, value) in [
        ("acme", "victim", "Bearer victim-secret"),
        ("acme", "sibling", "Bearer sibling-secret"),
        ("evil", "thief", "Bearer thief-secret"),
    ] {
        api.create_connector(mcp_connector(
            tenant,
            name,
            "http://127.0.0.1:9/mcp",
            &[("authorization", value)],
        ))
        .await
        .unwrap();
    }
    let acme = TenantSlug::parse("acme").unwrap();
    let evil = TenantSlug::parse("evil").unwrap();
    // Both tenants compile before tampering.
    for slug in [&acme, &evil] {
        let state = cp.store.tenant_state(slug).await.unwrap().unwrap();
        compile::compile(&state, &cp.keys, 0).unwrap();
    }
    // Copy the victim's sealed value onto the other connectors' rows, as an attacker with
    // write access to the database might.
    for target in ["sibling", "thief"] {
        sqlx::query(
            "UPDATE connector_headers SET sealed_value = \
             (SELECT h.sealed_value FROM connector_headers h JOIN connectors c \
              ON c.id = h.connector_id WHERE c.name = 'victim') \
             WHERE connector_id = (SELECT id FROM connectors WHERE name = $1)",
        )
        .bind(target)
        .execute(cp.store.pool())
        .await
        .unwrap();
    }
    for (slug, connector) in [(&acme, "sibling"), (&evil, "thief")] {
        let state = cp.store.tenant_state(slug).await.unwrap().unwrap();
        let err = compile::compile(&state, &cp.keys, 0).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(connector) && msg.contains("does not open"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn policy_holds_what_workers_enforce() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.tenants()
        .create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(9),
                monthly_tool_calls: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut connectors = cp.connectors();
    connectors
        .create_connector(mcp_connector("acme", "on", "http://127.0.0.1:9/mcp", &[]))
        .await
        .unwrap();
    let mut off = mcp_connector("acme", "off", "http://127.0.0.1:9/mcp", &[]);
    off.enabled = Some(false);
    connectors.create_connector(off).await.unwrap();
    let mut keys = cp.keys_api();
    let live = keys
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Viewer as i32,
            requests_per_second: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let dead = keys
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    keys.revoke_api_key(RevokeApiKeyRequest {
        tenant: "acme".into(),
        id: dead.key.unwrap().id,
    })
    .await
    .unwrap();
    let suspended = cp
        .tenants()
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            reason: "billing".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let state = cp
        .store
        .tenant_state(&TenantSlug::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let policy = compile::compile(&state, &cp.keys, 0).unwrap();
    use switchyard_proto::policy::v1 as p;
    assert_eq!(policy.revision, suspended.policy_revision);
    assert_eq!(policy.status(), p::Status::Suspended);
    assert_eq!(policy.suspend_reason, "billing");
    assert_eq!(policy.quotas.unwrap().requests_per_second, 9);
    assert_eq!(policy.quotas.unwrap().monthly_tool_calls, 1000);
    let names: Vec<_> = policy.connectors.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["on"], "disabled connectors are left out");
    assert_eq!(
        policy.connectors[0].prefix, "on",
        "the name is the default prefix"
    );
    assert_eq!(policy.keys.len(), 1, "revoked keys are left out");
    let verifier = &policy.keys[0];
    assert_eq!(verifier.role(), p::Role::Viewer);
    assert_eq!(verifier.requests_per_second, 2);
    let (_, secret) = apikey::parse(&live.secret).unwrap();
    assert!(apikey::verify_secret(secret, &verifier.verifier));
}
