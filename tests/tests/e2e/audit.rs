//! The audit trail through the admin API on PostgreSQL: every change recorded with its
//! actor and a diff without secrets, reading recorded too, and a chain that names the first
//! record edited, removed or moved behind the platform's back.

use super::admin_api::expect_err;
use switchyard_tests::admin::*;
use switchyard_tests::{ControlPlane, Stack, mcp_connector};
use tonic::Code;

async fn list(cp: &ControlPlane, req: ListAuditEventsRequest) -> ListAuditEventsResponse {
    cp.audit()
        .list_audit_events(req)
        .await
        .unwrap()
        .into_inner()
}

/// Every admin record of `tenant`, newest first.
async fn admin_events(cp: &ControlPlane, tenant: &str) -> Vec<AuditEvent> {
    let all = list(
        cp,
        ListAuditEventsRequest {
            tenant: tenant.into(),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    all.events
        .into_iter()
        .filter(|e| e.kind == "admin")
        .collect()
}

pub(crate) async fn verify(cp: &ControlPlane, tenant: &str) -> VerifyAuditChainResponse {
    cp.audit()
        .verify_audit_chain(VerifyAuditChainRequest {
            tenant: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn set_rate(cp: &ControlPlane, tenant: &str, rps: u32) {
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: tenant.into(),
            quotas: Some(Quotas {
                requests_per_second: Some(rps),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_changes_are_recorded_with_their_actor_and_a_diff_without_secrets() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let tenant = cp.create_tenant("acme").await;
    let rate = tenant.quotas.unwrap().requests_per_second.unwrap();
    set_rate(cp, "acme", rate + 1).await;
    let secret = "Bearer upstream-secret-7f3a9c";
    cp.connectors()
        .create_connector(mcp_connector(
            "acme",
            "github",
            "http://127.0.0.1:9/mcp",
            &[("Authorization", secret)],
        ))
        .await
        .unwrap();
    let key = cp.api_key("acme").await;
    let (key_id, _) = switchyard_common::apikey::parse(&key).unwrap();
    cp.keys_api()
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: key_id.as_str().into(),
        })
        .await
        .unwrap();

    let events = admin_events(cp, "acme").await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "RevokeApiKey",
            "CreateApiKey",
            "CreateConnector",
            "UpdateTenant",
            "CreateTenant"
        ]
    );
    for e in &events {
        assert!(e.actor.starts_with("operator:"), "{e:?}");
        assert!(!e.detail.contains("upstream-secret"), "secret in {e:?}");
        assert!(!e.detail.contains("argon2"), "key verifier in {e:?}");
        assert_eq!(e.outcome, "ok");
    }
    let update: serde_json::Value = serde_json::from_str(&events[3].detail).unwrap();
    assert_eq!(
        update["diff"],
        serde_json::json!({"quotas.requests_per_second": {"from": rate, "to": rate + 1}}),
        "only the changed field, with both sides"
    );
    assert_eq!(events[2].object, "connector/acme/github");
    let created: serde_json::Value = serde_json::from_str(&events[2].detail).unwrap();
    let header = created["diff"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(path, _)| path.eq_ignore_ascii_case("headers.authorization"))
        .map(|(_, change)| change["to"].clone());
    assert!(
        header
            .as_ref()
            .and_then(|h| h.as_str())
            .is_some_and(|h| h.starts_with("sealed:")),
        "the header by a digest of its sealed value: {created}"
    );
    assert_eq!(events[0].object, format!("key/acme/{}", key_id.as_str()));
    let revoke: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
    assert!(revoke["diff"]["revoked_at"]["to"].is_i64(), "{revoke}");

    let checked = verify(cp, "acme").await;
    assert!(checked.intact, "{checked:?}");
    // The listing above and this verification are on record in the chain they read.
    let newest = list(
        cp,
        ListAuditEventsRequest {
            tenant: "acme".into(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<&str> = newest.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["audit_read", "audit_read"]);
    assert_eq!(newest.events[0].action, "VerifyAuditChain");
}

#[tokio::test]
async fn a_refused_change_leaves_no_record_and_operator_tokens_have_their_own_chain() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let stale = cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: "999".into(),
            display_name: Some("x".into()),
            ..Default::default()
        })
        .await;
    expect_err(stale, Code::Aborted, None);
    assert_eq!(admin_events(cp, "acme").await.len(), 1, "only the creation");

    let token = operator_token_service_client::OperatorTokenServiceClient::new(cp.authed())
        .create_operator_token(CreateOperatorTokenRequest {
            name: "ci".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = token.token.unwrap().id;
    let platform = admin_events(cp, "").await;
    let created = platform
        .iter()
        .find(|e| e.action == "CreateOperatorToken" && e.object == format!("operator-token/{id}"))
        .expect("the new token's creation is on record");
    assert!(!created.detail.contains(&token.secret), "{created:?}");
}

#[tokio::test]
async fn pages_cover_every_record_once_and_bad_requests_name_their_field() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    for rps in 1..=4 {
        set_rate(cp, "acme", rps).await;
    }
    let filter = |page_token: String| ListAuditEventsRequest {
        tenant: "acme".into(),
        page_size: 2,
        page_token,
        actor: String::new(),
        object: "tenant/acme".into(),
        ..Default::default()
    };
    let mut seqs = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(cp, filter(token)).await;
        seqs.extend(page.events.iter().map(|e| e.seq));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seqs, [5, 4, 3, 2, 1], "the five changes, newest first");

    let mut api = cp.audit();
    for (req, field) in [
        (
            ListAuditEventsRequest {
                tenant: "Not A Slug".into(),
                ..Default::default()
            },
            "tenant",
        ),
        (
            ListAuditEventsRequest {
                page_token: "zzz".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            ListAuditEventsRequest {
                page_size: 5000,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListAuditEventsRequest {
                start_time: Some(prost_types::Timestamp {
                    seconds: 2000,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: 1000,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "end_time",
        ),
    ] {
        expect_err(
            api.list_audit_events(req).await,
            Code::InvalidArgument,
            Some(field),
        );
    }
    let e = audit_service_client::AuditServiceClient::new(cp.channel_with(None))
        .verify_audit_chain(VerifyAuditChainRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

/// Four changes to `tenant` (records 1 to 4).
pub(crate) async fn four_changes(cp: &ControlPlane, tenant: &str) {
    cp.create_tenant(tenant).await;
    for rps in [11, 12, 13] {
        set_rate(cp, tenant, rps).await;
    }
}

async fn sql(cp: &ControlPlane, statement: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(cp.store.pool())
        .await
        .map(drop)
}

#[tokio::test]
async fn edits_removals_and_reorders_made_in_the_database_are_named() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    for t in ["edited", "removed", "swapped", "cut"] {
        four_changes(cp, t).await;
        assert!(verify(cp, t).await.intact);
    }
    let refused = sql(
        cp,
        "UPDATE audit_events SET outcome = 'x' WHERE chain = 'edited'",
    )
    .await;
    assert!(
        refused.unwrap_err().to_string().contains("append-only"),
        "the table refuses updates"
    );
    sql(
        cp,
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    )
    .await
    .unwrap();
    // Records 5 on are the verifications' own; the changes are 1 to 4.
    sql(
        cp,
        "UPDATE audit_events SET actor = 'operator:someone-else' \
         WHERE chain = 'edited' AND seq = 2",
    )
    .await
    .unwrap();
    sql(
        cp,
        "DELETE FROM audit_events WHERE chain = 'removed' AND seq = 3",
    )
    .await
    .unwrap();
    for step in [
        "UPDATE audit_events SET seq = -1 WHERE chain = 'swapped' AND seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE chain = 'swapped' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE chain = 'swapped' AND seq = -1",
    ] {
        sql(cp, step).await.unwrap();
    }
    sql(
        cp,
        "DELETE FROM audit_events WHERE chain = 'cut' \
         AND seq = (SELECT MAX(seq) FROM audit_events WHERE chain = 'cut')",
    )
    .await
    .unwrap();
    for (tenant, first_bad, why) in [
        ("edited", 2, "edited"),
        ("removed", 3, "missing"),
        ("swapped", 2, "links to"),
        ("cut", 5, "chain head"),
    ] {
        let r = verify(cp, tenant).await;
        assert!(!r.intact, "{tenant}: {r:?}");
        assert_eq!(r.first_bad_seq, first_bad, "{tenant}: {r:?}");
        assert!(r.reason.contains(why), "{tenant}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_a_worker_is_on_the_tenants_trail_with_its_key_and_outcome() {
    use switchyard_tests::upstream::TestUpstream;
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "gh", &up.url).await;
    let (key_id, _) = switchyard_common::apikey::parse(&key).unwrap();
    stack.wait_serving("acme", &key).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    for text in ["hi", "again"] {
        let answer = switchyard_tests::modern::call(
            &http,
            &endpoint,
            &key,
            "gh__echo",
            serde_json::json!({ "text": text }),
        )
        .await;
        assert!(answer.ok(), "{answer:?}");
    }
    let cp = &stack.cp;
    let mut calls: Vec<AuditEvent>;
    switchyard_tests::assert_eventually!(
        {
            calls = list(
                cp,
                ListAuditEventsRequest {
                    tenant: "acme".into(),
                    object: "connector/acme/gh".into(),
                    outcome: "ok".into(),
                    ..Default::default()
                },
            )
            .await
            .events
            .into_iter()
            .filter(|e| e.kind == "call")
            .collect();
            calls.len() >= 2
        },
        std::time::Duration::from_secs(20),
        "the calls reach the audit trail"
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    let first_uses = list(
        cp,
        ListAuditEventsRequest {
            tenant: "acme".into(),
            object: format!("key/acme/{}", key_id.as_str()),
            ..Default::default()
        },
    )
    .await
    .events
    .into_iter()
    .filter(|e| e.kind == "key_first_use")
    .count();
    assert_eq!(first_uses, 1, "the key's first use is on record once");
    let call = &calls[0];
    assert_eq!(call.actor, format!("key:{}", key_id.as_str()));
    assert_eq!(call.action, "tools/call");
    let detail: serde_json::Value = serde_json::from_str(&call.detail).unwrap();
    assert_eq!(detail["target"], "gh__echo");
    assert!(detail["worker"].is_string(), "{detail}");
    assert!(
        detail["error"].is_null() && detail["session"].is_null(),
        "{detail}"
    );
    assert!(!call.detail.contains(&key), "no key secret on record");
    assert!(verify(cp, "acme").await.intact);

    // A session's failed call names why it failed, and the session by a digest only.
    let session = switchyard_tests::legacy::Session::open(&http, &endpoint, &key).await;
    up.set_faults(switchyard_tests::upstream::Faults {
        reset_before: 1.0,
        ..Default::default()
    });
    let failed = session
        .call("gh__echo", serde_json::json!({"text": "x"}))
        .await;
    assert_eq!(failed.body["result"]["isError"], true, "{failed:?}");
    let mut errors: Vec<AuditEvent>;
    switchyard_tests::assert_eventually!(
        {
            errors = list(
                cp,
                ListAuditEventsRequest {
                    tenant: "acme".into(),
                    outcome: "error".into(),
                    ..Default::default()
                },
            )
            .await
            .events;
            !errors.is_empty()
        },
        std::time::Duration::from_secs(20),
        "the failed call reaches the audit trail"
    );
    let detail: serde_json::Value = serde_json::from_str(&errors[0].detail).unwrap();
    assert_eq!(detail["error"], "upstream_error", "{detail}");
    let digest = detail["session"].as_str().unwrap_or_default();
    assert_eq!(digest.len(), 16, "{detail}");
    assert!(!errors[0].detail.contains(&session.id), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_appending_at_once_leave_one_chain_that_verifies() {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    let other = stack.replica(None).await;
    let per_replica = 20;
    let mut tasks = Vec::new();
    for cp in [&stack.cp, &other] {
        for _ in 0..per_replica {
            let mut keys = cp.keys_api();
            tasks.push(tokio::spawn(async move {
                keys.create_api_key(CreateApiKeyRequest {
                    tenant: "acme".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = admin_events(&other, "acme")
        .await
        .into_iter()
        .filter(|e| e.action.ends_with("CreateApiKey"))
        .count();
    assert_eq!(keys, 2 * per_replica, "every change on record once");
    let checked = verify(&stack.cp, "acme").await;
    assert!(checked.intact, "{checked:?}");
}
