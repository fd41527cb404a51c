//! Every admin RPC through gRPC against a real PostgreSQL: success paths and the error
//! paths an operator can hit.

use switchyard_tests::admin::{self as pb, *};
use switchyard_tests::{Stack, mcp_connector, violated_field};
use tonic::Code;

/// Asserts `r` failed with `code`; for INVALID_ARGUMENT also that it names `field`.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    field: Option<&str>,
) -> tonic::Status {
    let status = r.expect_err("call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    if let Some(field) = field {
        assert_eq!(
            violated_field(&status).as_deref(),
            Some(field),
            "{status:?}"
        );
        assert!(
            status.message().contains(field),
            "message names the field: {status:?}"
        );
    }
    status
}

#[tokio::test]
async fn tenants_create_get_update_suspend_resume_delete() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut api = cp.tenants();
    let created = api
        .create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            display_name: "Acme Inc.".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(5),
                max_connectors: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.slug, "acme");
    assert_eq!(created.state, TenantState::Active as i32);
    let q = created.quotas.unwrap();
    assert_eq!(q.requests_per_second, Some(5));
    assert_eq!(q.max_connectors, Some(3));
    assert!(q.burst.is_some(), "defaults are filled in");
    assert!(!created.etag.is_empty());

    let got = api
        .get_tenant(GetTenantRequest {
            slug: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // Get adds the publish status; without a policy bus nothing was published.
    let status = got.status.clone().expect("get shows the publish status");
    assert_eq!(status.published_revision, 0);
    assert!(status.publish_time.is_none() && status.publish_error.is_empty());
    assert_eq!(
        Tenant {
            status: None,
            ..got
        },
        created
    );

    // Update merges quota fields: unset ones keep their value.
    let updated = api
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: created.etag.clone(),
            display_name: Some("Acme".into()),
            quotas: Some(Quotas {
                burst: Some(77),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Acme");
    let uq = updated.quotas.unwrap();
    assert_eq!(uq.burst, Some(77));
    assert_eq!(uq.requests_per_second, Some(5));
    assert_ne!(updated.etag, created.etag);
    assert!(updated.policy_revision > created.policy_revision);

    let suspended = api
        .suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            etag: updated.etag.clone(),
            reason: "invoice overdue".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.state, TenantState::Suspended as i32);
    assert_eq!(suspended.suspend_reason, "invoice overdue");

    let resumed = api
        .resume_tenant(ResumeTenantRequest {
            slug: "acme".into(),
            etag: suspended.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.state, TenantState::Active as i32);
    assert_eq!(resumed.suspend_reason, "");

    api.delete_tenant(DeleteTenantRequest {
        slug: "acme".into(),
        etag: resumed.etag,
    })
    .await
    .unwrap();
    expect_err(
        api.get_tenant(GetTenantRequest {
            slug: "acme".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
}

#[tokio::test]
async fn tenant_errors() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut api = cp.tenants();
    for bad in ["", "Acme", "1acme", "acme-", "a_b", &"a".repeat(41)] {
        expect_err(
            api.create_tenant(CreateTenantRequest {
                slug: bad.into(),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            Some("slug"),
        );
    }
    expect_err(
        api.create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("quotas.requests_per_second"),
    );
    expect_err(
        api.create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            display_name: "tab\there".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("display_name"),
    );
    let t = cp.create_tenant("acme").await;
    expect_err(
        api.create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        None,
    );
    expect_err(
        api.get_tenant(GetTenantRequest {
            slug: "ghost".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.get_tenant(GetTenantRequest { slug: "No".into() }).await,
        Code::InvalidArgument,
        Some("slug"),
    );

    // A change moves the etag on; the old one is then stale everywhere it is accepted.
    let changed = api
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: t.etag.clone(),
            display_name: Some("x".into()),
            quotas: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stale = t.etag.clone();
    expect_err(
        api.update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: stale.clone(),
            display_name: Some("y".into()),
            quotas: None,
            ..Default::default()
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.suspend_tenant(SuspendTenantRequest {
            slug: "acme".into(),
            etag: stale.clone(),
            reason: String::new(),
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.resume_tenant(ResumeTenantRequest {
            slug: "acme".into(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.delete_tenant(DeleteTenantRequest {
            slug: "acme".into(),
            etag: stale,
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: "not-an-etag".into(),
            display_name: Some("y".into()),
            quotas: None,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("etag"),
    );
    expect_err(
        api.update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            etag: changed.etag.clone(),
            display_name: None,
            quotas: None,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("display_name"),
    );
    expect_err(
        api.update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                max_connectors: Some(5000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("quotas.max_connectors"),
    );
    for (name, r) in [
        (
            "update",
            api.update_tenant(UpdateTenantRequest {
                slug: "ghost".into(),
                display_name: Some("x".into()),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "suspend",
            api.suspend_tenant(SuspendTenantRequest {
                slug: "ghost".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "resume",
            api.resume_tenant(ResumeTenantRequest {
                slug: "ghost".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "delete",
            api.delete_tenant(DeleteTenantRequest {
                slug: "ghost".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ] {
        assert_eq!(r.unwrap_err().code(), Code::NotFound, "{name}");
    }
    // Nothing above changed the tenant.
    let now = api
        .get_tenant(GetTenantRequest {
            slug: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.etag, changed.etag);
}

#[tokio::test]
async fn tenant_list_pages() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut api = cp.tenants();
    let mut want: Vec<String> = (0..7).map(|i| format!("tenant-{i}")).collect();
    for slug in want.iter().rev() {
        cp.create_tenant(slug).await;
    }
    want.sort();
    let mut got = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = api
            .list_tenants(ListTenantsRequest {
                page_size: 3,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.tenants.len() <= 3);
        got.extend(page.tenants.into_iter().map(|t| t.slug));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(got, want);
    assert_eq!(pages, 3);
    expect_err(
        api.list_tenants(ListTenantsRequest {
            page_size: 3,
            page_token: "garbage!".into(),
        })
        .await,
        Code::InvalidArgument,
        Some("page_token"),
    );
}

#[tokio::test]
async fn connectors_crud() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.connectors();
    let mut req = mcp_connector(
        "acme",
        "github",
        "http://127.0.0.1:9/mcp",
        &[("Authorization", "Bearer tok-1"), ("X-Team", "core")],
    );
    if let Some(c) = req.connector.as_mut() {
        c.prefix = Some("gh".into());
        c.allow_tools = vec!["get_*".into()];
        c.deny_tools = vec!["*delete*".into()];
        c.timeout_ms = 5000;
        c.retry = Some(RetryPolicy {
            max_attempts: Some(2),
            retry_idempotent_tools: Some(true),
            ..Default::default()
        });
    }
    let created = api.create_connector(req).await.unwrap().into_inner();
    assert_eq!(created.name, "github");
    assert!(created.enabled);
    assert_eq!(created.prefix.as_deref(), Some("gh"));
    assert_eq!(created.timeout_ms, 5000);
    assert_eq!(created.allow_tools, ["get_*"]);
    assert_eq!(created.retry.unwrap().max_attempts, Some(2));
    let Some(connector::Kind::Mcp(mcp)) = &created.kind else {
        panic!("kind")
    };
    let names: Vec<_> = mcp.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["authorization", "x-team"]);
    assert!(mcp.headers.iter().all(|h| h.value_set && h.value.is_none()));

    let got = api
        .get_connector(GetConnectorRequest {
            tenant: "acme".into(),
            name: "github".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    // Update the URL (same origin), keep the authorization value, drop x-team, disable,
    // reset prefix.
    let updated = api
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "github".into(),
            etag: created.etag.clone(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: "http://127.0.0.1:9/v2/mcp".into(),
                headers: vec![Header {
                    name: "Authorization".into(),
                    value: None,
                    value_set: false,
                }],
            })),
            enabled: Some(false),
            reset_prefix: true,
            deny_tools: Some(PatternList { patterns: vec![] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(connector::Kind::Mcp(mcp)) = &updated.kind else {
        panic!("kind")
    };
    assert_eq!(mcp.url, "http://127.0.0.1:9/v2/mcp");
    assert_eq!(mcp.headers.len(), 1);
    assert!(updated.dropped_headers.is_empty());
    assert!(mcp.headers[0].value_set);
    assert!(!updated.enabled);
    assert_eq!(updated.prefix, None);
    assert!(updated.deny_tools.is_empty());
    assert_eq!(updated.allow_tools, ["get_*"], "unset lists stay");
    assert_eq!(updated.timeout_ms, 5000);

    cp.connectors()
        .create_connector(mcp_connector(
            "acme",
            "linear",
            "http://localhost:7/mcp",
            &[],
        ))
        .await
        .unwrap();
    let list = api
        .list_connectors(ListConnectorsRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.connectors.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["github", "linear"]);

    api.delete_connector(DeleteConnectorRequest {
        tenant: "acme".into(),
        name: "github".into(),
        etag: updated.etag,
    })
    .await
    .unwrap();
    expect_err(
        api.get_connector(GetConnectorRequest {
            tenant: "acme".into(),
            name: "github".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
}

#[tokio::test]
async fn connector_validation_names_the_field() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.connectors();
    let base = || {
        mcp_connector(
            "acme",
            "c",
            "http://127.0.0.1:9/mcp",
            &[("authorization", "x")],
        )
    };
    type Mutation = Box<dyn Fn(&mut pb::Connector)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("connector.name", Box::new(|c| c.name = "Bad_Name".into())),
        ("connector.tenant", Box::new(|c| c.tenant = "Nope".into())),
        ("connector.kind", Box::new(|c| c.kind = None)),
        (
            "connector.mcp.url",
            Box::new(|c| set_url(c, "ftp://127.0.0.1/x")),
        ),
        ("connector.mcp.url", Box::new(|c| set_url(c, "not a url"))),
        (
            "connector.mcp.url",
            Box::new(|c| set_url(c, "http://user:pw@127.0.0.1/mcp")),
        ),
        (
            "connector.mcp.url",
            Box::new(|c| set_url(c, "http://10.1.2.3/mcp")),
        ),
        (
            "connector.mcp.url",
            Box::new(|c| set_url(c, "http://169.254.169.254/latest")),
        ),
        (
            "connector.mcp.url",
            Box::new(|c| set_url(c, "http://[::1]:9/mcp")),
        ),
        (
            "connector.mcp.headers[0].name",
            Box::new(|c| set_header(c, "Host", Some("x"))),
        ),
        (
            "connector.mcp.headers[0].name",
            Box::new(|c| set_header(c, "bad header", Some("x"))),
        ),
        (
            "connector.mcp.headers[0].value",
            Box::new(|c| set_header(c, "x-a", Some("line\nbreak"))),
        ),
        (
            "connector.mcp.headers[0].value",
            Box::new(|c| set_header(c, "x-a", None)),
        ),
        (
            "connector.prefix",
            Box::new(|c| c.prefix = Some("a__b".into())),
        ),
        (
            "connector.prefix",
            Box::new(|c| c.prefix = Some("has space".into())),
        ),
        ("connector.timeout_ms", Box::new(|c| c.timeout_ms = 600_001)),
        (
            "connector.allow_tools[1]",
            Box::new(|c| c.allow_tools = vec!["ok".into(), "[".into()]),
        ),
        (
            "connector.deny_tools[0]",
            Box::new(|c| c.deny_tools = vec![String::new()]),
        ),
        (
            "connector.retry.max_attempts",
            Box::new(|c| {
                c.retry = Some(RetryPolicy {
                    max_attempts: Some(0),
                    ..Default::default()
                })
            }),
        ),
        (
            "connector.breaker.failure_rate_percent",
            Box::new(|c| {
                c.breaker = Some(BreakerPolicy {
                    failure_rate_percent: Some(101),
                    ..Default::default()
                })
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut req = base();
        mutate(req.connector.as_mut().unwrap());
        expect_err(
            api.create_connector(req).await,
            Code::InvalidArgument,
            Some(field),
        );
    }
    // Duplicate header names (case-insensitive).
    let mut req = base();
    if let Some(connector::Kind::Mcp(m)) = &mut req.connector.as_mut().unwrap().kind {
        m.headers.push(Header {
            name: "Authorization".into(),
            value: Some("y".into()),
            value_set: false,
        });
    }
    expect_err(
        api.create_connector(req).await,
        Code::InvalidArgument,
        Some("connector.mcp.headers[1].name"),
    );
    expect_err(
        api.create_connector(CreateConnectorRequest::default())
            .await,
        Code::InvalidArgument,
        Some("connector"),
    );
    // None of the rejected requests left anything behind.
    let list = api
        .list_connectors(ListConnectorsRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.connectors.is_empty());
}

fn set_url(c: &mut pb::Connector, url: &str) {
    if let Some(connector::Kind::Mcp(m)) = &mut c.kind {
        m.url = url.into();
    }
}

fn set_header(c: &mut pb::Connector, name: &str, value: Option<&str>) {
    if let Some(connector::Kind::Mcp(m)) = &mut c.kind {
        m.headers = vec![Header {
            name: name.into(),
            value: value.map(Into::into),
            value_set: false,
        }];
    }
}

#[tokio::test]
async fn connector_errors() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.tenants()
        .create_tenant(CreateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                max_connectors: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut api = cp.connectors();
    expect_err(
        api.create_connector(mcp_connector("ghost", "c", "http://127.0.0.1:9/", &[]))
            .await,
        Code::NotFound,
        None,
    );
    let a = api
        .create_connector(mcp_connector("acme", "a", "http://127.0.0.1:9/", &[]))
        .await
        .unwrap()
        .into_inner();
    expect_err(
        api.create_connector(mcp_connector("acme", "a", "http://127.0.0.1:9/", &[]))
            .await,
        Code::AlreadyExists,
        None,
    );
    api.create_connector(mcp_connector("acme", "b", "http://127.0.0.1:9/", &[]))
        .await
        .unwrap();
    let over = expect_err(
        api.create_connector(mcp_connector("acme", "c", "http://127.0.0.1:9/", &[]))
            .await,
        Code::FailedPrecondition,
        None,
    );
    assert!(over.message().contains("max_connectors"), "{over:?}");

    expect_err(
        api.get_connector(GetConnectorRequest {
            tenant: "acme".into(),
            name: "zzz".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.list_connectors(ListConnectorsRequest {
            tenant: "ghost".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    let moved = api
        .update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            etag: a.etag.clone(),
            timeout_ms: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    expect_err(
        api.update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            etag: a.etag.clone(),
            timeout_ms: Some(2000),
            ..Default::default()
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.delete_connector(DeleteConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            etag: a.etag,
        })
        .await,
        Code::Aborted,
        None,
    );
    expect_err(
        api.update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            kind: Some(update_connector_request::Kind::Mcp(McpConnector {
                url: "http://127.0.0.1:9/".into(),
                headers: vec![Header {
                    name: "x-new".into(),
                    value: None,
                    value_set: false,
                }],
            })),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("mcp.headers[0].value"),
    );
    expect_err(
        api.update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
            prefix: Some("p".into()),
            reset_prefix: true,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("reset_prefix"),
    );
    expect_err(
        api.update_connector(UpdateConnectorRequest {
            tenant: "acme".into(),
            name: "zzz".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.delete_connector(DeleteConnectorRequest {
            tenant: "acme".into(),
            name: "zzz".into(),
            etag: String::new(),
        })
        .await,
        Code::NotFound,
        None,
    );
    let still = api
        .get_connector(GetConnectorRequest {
            tenant: "acme".into(),
            name: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.etag, moved.etag);
    assert_eq!(still.timeout_ms, 1000);
}

#[tokio::test]
async fn api_keys() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.keys_api();
    let created = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            description: "laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key = created.key.unwrap();
    assert_eq!(
        key.role,
        ApiKeyRole::Editor as i32,
        "editor is the default role"
    );
    assert_eq!(key.prefix, format!("sy_{}_", key.id));
    assert!(created.secret.starts_with(&key.prefix));
    let (id, secret) = switchyard_common::apikey::parse(&created.secret).unwrap();
    assert_eq!(id.as_str(), key.id);
    assert!(secret.len() >= 22, "at least 128 random bits");
    assert!(key.last_used_time.is_none());

    let viewer = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Viewer as i32,
            requests_per_second: Some(3),
            burst: Some(6),
            expire_time: Some(prost_types::Timestamp {
                seconds: 4_102_444_800,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(viewer.role, ApiKeyRole::Viewer as i32);
    assert_eq!(viewer.requests_per_second, Some(3));
    assert_eq!(viewer.expire_time.unwrap().seconds, 4_102_444_800);

    let got = api
        .get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, key);
    let revoked = api
        .revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let active = api
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.keys.len(), 1);
    assert_eq!(active.keys[0].id, viewer.id);
    let all = api
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.keys.len(), 2);
    // No response carries a verifier or the secret.
    assert!(!format!("{all:?}").contains(secret));
}

#[tokio::test]
async fn api_key_errors() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    let mut api = cp.keys_api();
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "ghost".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "BAD".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("tenant"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            role: 42,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("role"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            burst: Some(10),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("burst"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            requests_per_second: Some(0),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("requests_per_second"),
    );
    expect_err(
        api.create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 1_000,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        Some("expire_time"),
    );
    expect_err(
        api.get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: "abcdefghijkl".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.get_api_key(GetApiKeyRequest {
            tenant: "acme".into(),
            id: "short".into(),
        })
        .await,
        Code::InvalidArgument,
        Some("id"),
    );
    expect_err(
        api.revoke_api_key(RevokeApiKeyRequest {
            tenant: "acme".into(),
            id: "abcdefghijkl".into(),
        })
        .await,
        Code::NotFound,
        None,
    );
    expect_err(
        api.list_api_keys(ListApiKeysRequest {
            tenant: "ghost".into(),
            include_revoked: true,
        })
        .await,
        Code::NotFound,
        None,
    );
    // A key of one tenant is invisible through another.
    cp.create_tenant("other").await;
    let key = api
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    expect_err(
        api.revoke_api_key(RevokeApiKeyRequest {
            tenant: "other".into(),
            id: key.id,
        })
        .await,
        Code::NotFound,
        None,
    );
}

#[tokio::test]
async fn every_service_needs_an_operator_token() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    cp.create_tenant("acme").await;
    for token in [None, Some("wrong-token-wrong-token-wrong-token"), Some("")] {
        let ch = cp.channel_with(token);
        let e = tenant_service_client::TenantServiceClient::new(ch.clone())
            .get_tenant(GetTenantRequest {
                slug: "acme".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
        let e = connector_service_client::ConnectorServiceClient::new(ch.clone())
            .list_connectors(ListConnectorsRequest {
                tenant: "acme".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = api_key_service_client::ApiKeyServiceClient::new(ch)
            .create_api_key(CreateApiKeyRequest {
                tenant: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // A rejected call changed nothing.
    let keys = cp
        .keys_api()
        .list_api_keys(ListApiKeysRequest {
            tenant: "acme".into(),
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(keys.keys.is_empty());
    // The store holds the token's hash, never the token.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM operator_tokens")
        .fetch_all(cp.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&cp.token));
    assert_eq!(
        stored[0],
        switchyard_control_plane::auth::hash_token(&cp.token)
    );
}
