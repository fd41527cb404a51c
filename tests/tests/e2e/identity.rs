//! A tenant's identity settings through the admin API: bad settings are refused naming the
//! field and change nothing; good ones read back as given and are on the audit trail.
//! (Turning API keys off on a real worker: `attacks::revocation`.)

use switchyard_tests::admin::*;
use switchyard_tests::{ControlPlane, Stack, violated_field};

const EDITOR: i32 = ApiKeyRole::Editor as i32;

async fn set_identity(
    cp: &ControlPlane,
    tenant: &str,
    identity: IdentitySettings,
) -> Result<Tenant, tonic::Status> {
    cp.tenants()
        .update_tenant(UpdateTenantRequest {
            slug: tenant.into(),
            identity: Some(identity),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

fn provider(issuer: &str) -> IdentityProvider {
    IdentityProvider {
        issuer: issuer.into(),
        ..Default::default()
    }
}

fn with_provider(p: IdentityProvider) -> IdentitySettings {
    IdentitySettings {
        provider: Some(p),
        ..Default::default()
    }
}

fn mapping(value: &str, role: i32) -> RoleMapping {
    RoleMapping {
        value: value.into(),
        role,
    }
}

fn bad_cases() -> Vec<(IdentitySettings, &'static str)> {
    let issuer = "identity.provider.issuer";
    let mut cases = vec![
        (
            IdentitySettings {
                access_token_seconds: 59,
                ..Default::default()
            },
            "identity.access_token_seconds",
        ),
        (
            IdentitySettings {
                access_token_seconds: 86_401,
                ..Default::default()
            },
            "identity.access_token_seconds",
        ),
        (
            IdentitySettings {
                refresh_token_seconds: 3_599,
                ..Default::default()
            },
            "identity.refresh_token_seconds",
        ),
    ];
    for bad in [
        "",
        "idp.example.com",
        "http://idp.example.com",
        "ftp://idp.example.com",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/?tenant=acme",
        "https://idp.example.com/#x",
    ] {
        cases.push((with_provider(provider(bad)), issuer));
    }
    cases.push((
        with_provider(provider(&format!("https://{}.example", "a".repeat(510)))),
        issuer,
    ));
    let ok = "https://idp.example.com";
    let p = |f: fn(&mut IdentityProvider)| {
        let mut p = provider(ok);
        f(&mut p);
        with_provider(p)
    };
    cases.extend([
        (
            p(|p| p.audience = "api\nx".into()),
            "identity.provider.audience",
        ),
        (
            p(|p| p.role_claim = "c".repeat(65)),
            "identity.provider.role_claim",
        ),
        (
            p(|p| p.roles = vec![mapping("eng", EDITOR), mapping("", EDITOR)]),
            "identity.provider.roles[1].value",
        ),
        (
            p(|p| p.roles = vec![mapping("eng", EDITOR), mapping("eng", EDITOR)]),
            "identity.provider.roles[1].value",
        ),
        (
            p(|p| p.roles = vec![mapping("eng", 0)]),
            "identity.provider.roles[0].role",
        ),
        (
            p(|p| p.roles = vec![mapping("eng", 9)]),
            "identity.provider.roles[0].role",
        ),
        (
            p(|p| {
                p.roles = (0..65)
                    .map(|i| mapping(&format!("g{i}"), ApiKeyRole::Viewer as i32))
                    .collect();
            }),
            "identity.provider.roles",
        ),
        (
            p(|p| p.client_id = "c".repeat(257)),
            "identity.provider.client_id",
        ),
        (
            p(|p| p.client_id = "switch\tyard".into()),
            "identity.provider.client_id",
        ),
        (
            p(|p| p.sign_in_scopes = vec!["groups".into(), "a b".into()]),
            "identity.provider.sign_in_scopes[1]",
        ),
        (
            p(|p| p.sign_in_scopes = vec![String::new()]),
            "identity.provider.sign_in_scopes[0]",
        ),
        (
            p(|p| p.sign_in_scopes = vec!["openid".into()]),
            "identity.provider.sign_in_scopes[0]",
        ),
        (
            p(|p| p.sign_in_scopes = vec!["groups".into(), "groups".into()]),
            "identity.provider.sign_in_scopes[1]",
        ),
        (
            p(|p| p.sign_in_scopes = (0..9).map(|i| format!("s{i}")).collect()),
            "identity.provider.sign_in_scopes",
        ),
    ]);
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_identity_settings_are_refused_naming_the_field_and_change_nothing() {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    for (settings, field) in bad_cases() {
        let refused = set_identity(&stack.cp, "acme", settings.clone())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{field}");
        assert_eq!(
            violated_field(&refused).as_deref(),
            Some(field),
            "{refused:?}"
        );
        // The same settings on a new tenant create nothing.
        let created = stack
            .cp
            .tenants()
            .create_tenant(CreateTenantRequest {
                slug: "other".into(),
                identity: Some(settings),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_field(&created).as_deref(), Some(field));
    }
    let tenant = stack.cp.tenant("acme").await;
    assert_eq!(tenant.identity, Some(IdentitySettings::default()));
    let missing = stack
        .cp
        .tenants()
        .get_tenant(GetTenantRequest {
            slug: "other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_settings_read_back_as_given_and_are_on_record() {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    let settings = IdentitySettings {
        api_keys_disabled: true,
        provider: Some(IdentityProvider {
            // Plain http is accepted on a loopback address, for development.
            issuer: "http://127.0.0.1:9/realms/acme".into(),
            audience: "api://switchyard".into(),
            role_claim: String::new(),
            roles: vec![
                mapping("sre", ApiKeyRole::Admin as i32),
                mapping("dev=ops", ApiKeyRole::Viewer as i32),
            ],
            client_id: "switchyard-acme".into(),
            sign_in_scopes: vec!["groups".into(), "api://acme/.default".into()],
        }),
        access_token_seconds: 600,
        refresh_token_seconds: 0,
    };
    let updated = set_identity(&stack.cp, "acme", settings.clone())
        .await
        .unwrap();
    let mut expected = settings;
    // An empty role claim means the default one, and is shown as such.
    expected.provider.as_mut().unwrap().role_claim = "roles".into();
    assert_eq!(updated.identity.as_ref(), Some(&expected));
    assert_eq!(stack.cp.tenant("acme").await.identity, Some(expected));

    let records = crate::audit_refusals::records(&stack.cp, "acme", "admin").await;
    let change = records
        .iter()
        .find(|r| r.action == "UpdateTenant")
        .expect("the change is on record");
    assert!(
        change.detail.contains("http://127.0.0.1:9/realms/acme"),
        "{change:?}"
    );
}
