//! What call records keep of arguments, per tenant, through a real worker: nothing by
//! default, a digest that tells equal arguments from different ones, or the arguments with
//! sensitive keys and recognisable secrets masked. A careless client's password, email
//! address and bearer token reach no audit record and no log line; bad settings are refused
//! naming the field; changing them is itself on record.

use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, assert_eventually, violated_field};

/// `tenant`'s call records (their details), oldest first, once there are `n`.
async fn call_details(cp: &ControlPlane, tenant: &str, n: usize) -> Vec<serde_json::Value> {
    let mut details: Vec<serde_json::Value>;
    assert_eventually!(
        {
            details = crate::audit_refusals::records(cp, tenant, "call")
                .await
                .into_iter()
                .rev()
                .map(|e| serde_json::from_str(&e.detail).unwrap())
                .collect();
            details.len() >= n
        },
        std::time::Duration::from_secs(20),
        "{n} call records of {tenant}"
    );
    details
}

async fn set_audit(
    cp: &ControlPlane,
    tenant: &str,
    audit: AuditSettings,
) -> Result<Tenant, tonic::Status> {
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: tenant.into(),
            audit: Some(audit),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn call(stack: &Stack, tenant: &str, key: &str, args: serde_json::Value) {
    let answer = switchyard_tests::modern::call(
        &reqwest::Client::new(),
        &stack.worker().endpoint(tenant),
        key,
        "up__echo",
        args,
    )
    .await;
    assert!(answer.ok(), "{answer:?}");
}

/// Tenant `slug` with `audit` settings from the start, a connector `up` at `url`, and a
/// key, once the worker serves it: the key.
async fn audited_tenant(stack: &Stack, slug: &str, url: &str, audit: AuditSettings) -> String {
    stack
        .tenant_with(CreateTenantRequest {
            slug: slug.into(),
            audit: Some(audit),
            ..Default::default()
        })
        .await;
    stack.connector(slug, "up", url).await;
    let key = stack.key(slug).await;
    stack.wait_serving(slug, &key).await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_tell_equal_arguments_apart_and_keep_none_of_them() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let digest = AuditSettings {
        arguments: AuditArguments::Digest as i32,
        ..Default::default()
    };
    let key = audited_tenant(&stack, "acme", &up.url, digest.clone()).await;
    let plain = stack.tenant_with_connector("plain", "up", &up.url).await;
    stack.wait_serving("plain", &plain).await;
    call(&stack, "plain", &plain, serde_json::json!({"text": "same"})).await;
    for text in ["same", "same", "other"] {
        call(&stack, "acme", &key, serde_json::json!({"text": text})).await;
    }
    let off = call_details(&stack.cp, "plain", 1).await;
    assert!(
        off[0].get("arguments_digest").is_none(),
        "off by default: {}",
        off[0]
    );
    assert!(
        off[0].get("arguments").is_none(),
        "off by default: {}",
        off[0]
    );
    let details = call_details(&stack.cp, "acme", 3).await;
    let digests: Vec<&str> = details
        .iter()
        .map(|d| d["arguments_digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests[0], digests[1], "equal arguments, equal digest");
    assert_ne!(digests[1], digests[2]);
    assert!(digests[0].starts_with("sha256:"));
    for d in &details {
        assert!(d.get("arguments").is_none(), "{d}");
        assert!(!d.to_string().contains("same"), "{d}");
    }
    set_audit(&stack.cp, "plain", digest).await.unwrap();
    // The change of settings is on record as a diff.
    let changes = stack
        .cp
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            tenant: "plain".into(),
            object: "tenant/plain".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        changes.iter().any(|e| e.detail.contains("audit.arguments")),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_arguments_keep_no_secret_in_any_record_or_log() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let redacted = AuditSettings {
        arguments: AuditArguments::Redacted as i32,
        sensitive_keys: vec!["customer_ref".into()],
        ..Default::default()
    };
    let key = audited_tenant(&stack, "acme", &up.url, redacted).await;
    call(
        &stack,
        "acme",
        &key,
        serde_json::json!({
            "text": "write to canary.person@example.com with Bearer canarytoken123",
            "password": "canary-hunter2",
            "customerRef": "canary-C-9",
            "limit": 5,
        }),
    )
    .await;
    let details = call_details(&stack.cp, "acme", 1).await;
    let args = &details[0]["arguments"];
    assert_eq!(args["limit"], 5, "{args}");
    assert_eq!(args["password"], "[redacted]");
    assert_eq!(args["customerRef"], "[redacted]");
    let text = args["text"].as_str().unwrap();
    assert!(
        text.starts_with("write to [email] with Bearer [redacted]"),
        "{text}"
    );
    let everything = stack
        .cp
        .audit()
        .list_audit_events(ListAuditEventsRequest {
            tenant: "acme".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let records = format!("{everything:?}");
    let logs = switchyard_tests::logs();
    for canary in [
        "canary.person",
        "canarytoken123",
        "canary-hunter2",
        "canary-C-9",
    ] {
        assert!(!records.contains(canary), "{canary} in an audit record");
        assert!(!logs.contains(canary), "{canary} in a log line");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audit_settings_are_refused_naming_the_field() {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    let cases = [
        (
            AuditSettings {
                arguments: 9,
                ..Default::default()
            },
            "audit.arguments",
        ),
        (
            AuditSettings {
                sensitive_keys: vec!["ok".into(), " ".into()],
                ..Default::default()
            },
            "audit.sensitive_keys[1]",
        ),
        (
            AuditSettings {
                sensitive_keys: (0..65).map(|i| format!("k{i}")).collect(),
                ..Default::default()
            },
            "audit.sensitive_keys",
        ),
        (
            AuditSettings {
                retention_days: 36_501,
                ..Default::default()
            },
            "audit.retention_days",
        ),
    ];
    for (settings, field) in cases {
        let refused = set_audit(&stack.cp, "acme", settings).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            violated_field(&refused).as_deref(),
            Some(field),
            "{refused:?}"
        );
    }
    let tenant = stack.cp.tenant("acme").await;
    let audit = tenant.audit.unwrap();
    assert_eq!(
        (
            audit.arguments,
            audit.sensitive_keys.len(),
            audit.retention_days
        ),
        (AuditArguments::None as i32, 0, 0),
        "nothing was changed"
    );
}
