//! Tenants in the store: their lifecycle, conflicts, stale etags, paging, quota patches and
//! the complete state of one tenant.

use super::{add_connector, name, new_key, slug};
use switchyard_common::KeyId;
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{Store, TenantChange};

switchyard_tests::store_contract!(
    tenant_lifecycle,
    duplicate_tenant_is_rejected,
    missing_things_are_not_found,
    stale_etag_aborts,
    list_pages_in_slug_order,
    tenant_state_is_complete,
    quota_patch_keeps_other_fields,
    identity_settings_are_kept_and_other_changes_leave_them,
    revocations_outlive_settings_changes_until_they_are_past,
);

async fn tenant_lifecycle(store: Store) {
    let quotas = Quotas {
        requests_per_second: 7,
        ..Quotas::default()
    };
    let t = store
        .create_tenant(&slug("acme"), "Acme", quotas)
        .await
        .unwrap();
    assert_eq!(t.slug.as_str(), "acme");
    assert_eq!(t.display_name, "Acme");
    assert_eq!(t.status, TenantStatus::Active);
    assert_eq!(t.quotas, quotas);
    assert_eq!(t.revision, t.policy_revision);

    let got = store.get_tenant(&slug("acme")).await.unwrap();
    assert_eq!(got.id, t.id);

    let suspended = store
        .update_tenant(
            &slug("acme"),
            Some(t.revision),
            TenantChange {
                status: Some((TenantStatus::Suspended, "unpaid".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(suspended.suspend_reason, "unpaid");
    assert!(suspended.revision > t.revision);

    let updated = store
        .update_tenant(
            &slug("acme"),
            None,
            TenantChange {
                display_name: Some("Acme Corp".into()),
                quotas: Some(
                    Quotas {
                        burst: 99,
                        ..quotas
                    }
                    .into(),
                ),
                status: Some((TenantStatus::Active, String::new())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Acme Corp");
    assert_eq!(updated.quotas.burst, 99);
    assert_eq!(updated.status, TenantStatus::Active);

    store
        .delete_tenant(&slug("acme"), Some(updated.revision))
        .await
        .unwrap();
    assert!(matches!(
        store.get_tenant(&slug("acme")).await,
        Err(Error::NotFound(_))
    ));
}

async fn duplicate_tenant_is_rejected(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    let before = store.current_revision().await.unwrap();
    let err = store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    assert_eq!(store.current_revision().await.unwrap(), before);
}

async fn missing_things_are_not_found(store: Store) {
    let ghost = slug("ghost");
    assert!(matches!(
        store.get_tenant(&ghost).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store
            .update_tenant(&ghost, None, TenantChange::default())
            .await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.delete_tenant(&ghost, None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.list_connectors(&ghost).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        add_connector(&store, "ghost", "c").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.create_api_key(&ghost, new_key("abcdefghijkl")).await,
        Err(Error::NotFound(_))
    ));
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    let acme = slug("acme");
    assert!(matches!(
        store.get_connector(&acme, &name("nope")).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.delete_connector(&acme, &name("nope"), None).await,
        Err(Error::NotFound(_))
    ));
    let id = KeyId::parse("abcdefghijkl").unwrap();
    assert!(matches!(
        store.get_api_key(&acme, &id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_api_key(&acme, &id).await,
        Err(Error::NotFound(_))
    ));
    assert!(store.tenant_state(&ghost).await.unwrap().is_none());
}

async fn stale_etag_aborts(store: Store) {
    let t = store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    let newer = store
        .update_tenant(
            &slug("acme"),
            Some(t.revision),
            TenantChange {
                display_name: Some("one".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = store
        .update_tenant(
            &slug("acme"),
            Some(t.revision),
            TenantChange {
                display_name: Some("two".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StaleEtag { .. }), "{err}");
    assert!(matches!(
        store.delete_tenant(&slug("acme"), Some(t.revision)).await,
        Err(Error::StaleEtag { .. })
    ));
    assert_eq!(
        store.get_tenant(&slug("acme")).await.unwrap().display_name,
        "one"
    );

    let c = add_connector(&store, "acme", "c").await.unwrap();
    store
        .update_connector(&slug("acme"), &name("c"), Some(c.revision), |_, c| {
            c.enabled = false;
            Ok(())
        })
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_connector(&slug("acme"), &name("c"), Some(c.revision), |_, _| Ok(()))
            .await,
        Err(Error::StaleEtag { .. })
    ));
    assert!(matches!(
        store
            .delete_connector(&slug("acme"), &name("c"), Some(c.revision))
            .await,
        Err(Error::StaleEtag { .. })
    ));
    assert!(newer.revision > t.revision);
}

async fn list_pages_in_slug_order(store: Store) {
    for s in ["delta", "alpha", "charlie", "bravo", "echo"] {
        store
            .create_tenant(&slug(s), "", Quotas::default())
            .await
            .unwrap();
    }
    let first = store.list_tenants(None, 2).await.unwrap();
    let names: Vec<_> = first.iter().map(|t| t.slug.to_string()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    let rest = store.list_tenants(Some("bravo"), 10).await.unwrap();
    let names: Vec<_> = rest.iter().map(|t| t.slug.to_string()).collect();
    assert_eq!(names, ["charlie", "delta", "echo"]);
}

async fn tenant_state_is_complete(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    store
        .create_tenant(&slug("other"), "", Quotas::default())
        .await
        .unwrap();
    add_connector(&store, "acme", "a").await.unwrap();
    add_connector(&store, "acme", "b").await.unwrap();
    add_connector(&store, "other", "x").await.unwrap();
    store
        .create_api_key(&slug("acme"), new_key("abcdefghijkl"))
        .await
        .unwrap();
    store
        .create_api_key(&slug("other"), new_key("zzzzzzzzzzzz"))
        .await
        .unwrap();
    let state = store.tenant_state(&slug("acme")).await.unwrap().unwrap();
    let names: Vec<_> = state
        .connectors
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(state.keys.len(), 1);
    assert_eq!(state.keys[0].id.as_str(), "abcdefghijkl");
}

async fn quota_patch_keeps_other_fields(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    for patch in [
        QuotaPatch {
            requests_per_second: Some(3),
            ..Default::default()
        },
        QuotaPatch {
            burst: Some(9),
            ..Default::default()
        },
    ] {
        store
            .update_tenant(
                &slug("acme"),
                None,
                TenantChange {
                    quotas: Some(patch),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let q = store.get_tenant(&slug("acme")).await.unwrap().quotas;
    assert_eq!((q.requests_per_second, q.burst), (3, 9));
    assert_eq!(q.max_sessions, Quotas::default().max_sessions);
}

async fn identity_settings_are_kept_and_other_changes_leave_them(store: Store) {
    let identity = IdentitySettings {
        api_keys_disabled: true,
        provider: Some(IdentityProvider {
            issuer: "https://idp.example.com/o/acme".into(),
            audience: "api://acme".into(),
            role_claim: "groups".into(),
            roles: vec![RoleMapping {
                value: "sre".into(),
                role: Role::Admin,
            }],
            client_id: "switchyard".into(),
            sign_in_scopes: vec!["groups".into()],
        }),
        access_token_seconds: 600,
        refresh_token_seconds: 0,
        revoked_grants: Vec::new(),
        signing_keys_not_before: 0,
    };
    let created = store
        .create_placed_tenant(
            &slug("acme"),
            "",
            Quotas::default(),
            Placement::default(),
            AuditSettings::default(),
            identity.clone(),
        )
        .await
        .unwrap();
    assert_eq!(created.identity, identity);
    store
        .update_tenant(
            &slug("acme"),
            None,
            TenantChange {
                display_name: Some("Acme".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_tenant(&slug("acme")).await.unwrap().identity,
        identity
    );
    let cleared = store
        .update_tenant(
            &slug("acme"),
            None,
            TenantChange {
                identity: Some(IdentitySettings::default()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.identity, IdentitySettings::default());
}

async fn revocations_outlive_settings_changes_until_they_are_past(store: Store) {
    let acme = slug("acme");
    let t = store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    let now = now_millis();
    let detail = serde_json::json!({"holder": "key:x"});
    store
        .revoke_grant(&acme, "past", now - 1, detail.clone())
        .await
        .unwrap();
    store
        .revoke_grant(&acme, "live", now + 60_000, detail.clone())
        .await
        .unwrap();
    let after = store.get_tenant(&acme).await.unwrap();
    assert!(
        after.revision > t.revision,
        "a revocation is a new revision"
    );
    let ids = |t: &Tenant| -> Vec<String> {
        t.identity
            .revoked_grants
            .iter()
            .map(|r| r.id.clone())
            .collect()
    };
    // One already past is forgotten at the next revocation.
    assert_eq!(ids(&after), ["live"]);
    let retired = store.retire_signing_keys(&acme).await.unwrap();
    assert!(retired >= now);
    let after_retiring = store.get_tenant(&acme).await.unwrap();
    assert!(
        after_retiring.revision > after.revision,
        "a retirement is a new revision"
    );
    // Settings set through the API leave revocations as they are.
    let settings = IdentitySettings {
        access_token_seconds: 120,
        ..Default::default()
    };
    let changed = store
        .update_tenant(
            &acme,
            None,
            TenantChange {
                identity: Some(settings),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.identity.access_token_seconds, 120);
    assert_eq!(ids(&changed), ["live"]);
    assert_eq!(changed.identity.signing_keys_not_before, retired);
    let missing = store
        .revoke_grant(&slug("ghost"), "g", now + 1, detail)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
}
