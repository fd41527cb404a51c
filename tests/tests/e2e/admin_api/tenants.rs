//! The tenant service: create, get, update, suspend, resume, delete, list, and their errors.

use super::expect_err;
use switchyard_tests::Stack;
use switchyard_tests::admin::*;
use tonic::Code;

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
