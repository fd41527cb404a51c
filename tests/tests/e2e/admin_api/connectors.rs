//! The connector service: CRUD, field validation, and its errors.

use super::expect_err;
use switchyard_tests::admin::{self as pb, *};
use switchyard_tests::{Stack, mcp_connector};
use tonic::Code;

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
