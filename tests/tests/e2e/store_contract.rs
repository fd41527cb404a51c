//! The store contract: every test here runs against SQLite and PostgreSQL.

use switchyard_common::{ConnectorName, KeyId, TenantSlug};
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{Backend, NewApiKey, NewConnector, Store, TenantChange};

switchyard_tests::store_contract!(
    tenant_lifecycle,
    duplicate_tenant_is_rejected,
    missing_things_are_not_found,
    stale_etag_aborts,
    list_pages_in_slug_order,
    connector_lifecycle,
    max_connectors_is_enforced,
    api_key_lifecycle,
    change_and_outbox_row_commit_together,
    failed_change_leaves_no_outbox_row,
    outbox_insert_failure_rolls_back_the_change,
    revisions_only_grow,
    migrations_are_idempotent,
    tenant_state_is_complete,
    operator_tokens,
    quota_patch_keeps_other_fields,
    usage_counts_each_event_once_and_a_used_up_quota_takes_a_revision,
);

fn slug(s: &str) -> TenantSlug {
    TenantSlug::parse(s).unwrap()
}

fn name(s: &str) -> ConnectorName {
    ConnectorName::parse(s).unwrap()
}

fn settings(url: &str) -> ConnectorSettings {
    ConnectorSettings {
        kind: ConnectorKind::Mcp { url: url.into() },
        prefix: None,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        allow_tools: vec![],
        deny_tools: vec![],
        retry: RetrySettings::default(),
        breaker: BreakerSettings::default(),
    }
}

fn no_headers(_: &str, _: &str) -> switchyard_control_plane::Result<Vec<SealedHeader>> {
    Ok(vec![])
}

async fn add_connector(
    store: &Store,
    tenant: &str,
    n: &str,
) -> switchyard_control_plane::Result<Connector> {
    store
        .create_connector(
            &slug(tenant),
            NewConnector {
                name: name(n),
                enabled: true,
                settings: settings("http://127.0.0.1:1/mcp"),
                seal_headers: no_headers,
            },
        )
        .await
}

fn new_key(id: &str) -> NewApiKey {
    NewApiKey {
        id: KeyId::parse(id).unwrap(),
        role: Role::Viewer,
        description: "ci".into(),
        requests_per_second: Some(5),
        burst: None,
        verifier: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        expires_at: None,
    }
}

async fn outbox_len(store: &Store) -> usize {
    store.outbox_pending(10_000).await.unwrap().len()
}

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

async fn connector_lifecycle(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    let created = store
        .create_connector(
            &slug("acme"),
            NewConnector {
                name: name("github"),
                enabled: true,
                settings: settings("http://127.0.0.1:1/mcp"),
                seal_headers: |tenant_id: &str, connector_id: &str| {
                    Ok(vec![SealedHeader {
                        name: "authorization".into(),
                        sealed_value: format!("{tenant_id}/{connector_id}").into_bytes(),
                    }])
                },
            },
        )
        .await
        .unwrap();
    let tenant = store.get_tenant(&slug("acme")).await.unwrap();
    assert_eq!(
        created.headers[0].sealed_value,
        format!("{}/{}", tenant.id, created.id).into_bytes(),
        "the sealing callback gets the tenant and connector ids"
    );
    assert_eq!(tenant.policy_revision, created.revision);
    assert!(matches!(
        add_connector(&store, "acme", "github").await,
        Err(Error::AlreadyExists(_))
    ));

    let updated = store
        .update_connector(
            &slug("acme"),
            &name("github"),
            Some(created.revision),
            |_, c| {
                c.settings.prefix = Some(String::new());
                c.settings.allow_tools = vec!["get_*".into()];
                c.headers.push(SealedHeader {
                    name: "x-extra".into(),
                    sealed_value: vec![1, 2, 3],
                });
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.settings.prefix.as_deref(), Some(""));
    assert_eq!(updated.settings.allow_tools, ["get_*"]);
    assert_eq!(updated.headers.len(), 2);
    assert_eq!(updated.headers[1].name, "x-extra");

    // A failing change callback leaves the connector as it was.
    let err = store
        .update_connector(&slug("acme"), &name("github"), None, |_, c| {
            c.enabled = false;
            Err(Error::invalid("mcp.url", "bad"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }));
    assert!(
        store
            .get_connector(&slug("acme"), &name("github"))
            .await
            .unwrap()
            .enabled
    );

    let list = store.list_connectors(&slug("acme")).await.unwrap();
    assert_eq!(list.len(), 1);
    store
        .delete_connector(&slug("acme"), &name("github"), None)
        .await
        .unwrap();
    assert!(
        store
            .list_connectors(&slug("acme"))
            .await
            .unwrap()
            .is_empty()
    );
    let headers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connector_headers")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(headers, 0, "headers go with their connector");
}

async fn max_connectors_is_enforced(store: Store) {
    let quotas = Quotas {
        max_connectors: 2,
        ..Quotas::default()
    };
    store
        .create_tenant(&slug("acme"), "", quotas)
        .await
        .unwrap();
    add_connector(&store, "acme", "a").await.unwrap();
    add_connector(&store, "acme", "b").await.unwrap();
    let err = add_connector(&store, "acme", "c").await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    // Lowering the quota below the current count is refused too.
    let err = store
        .update_tenant(
            &slug("acme"),
            None,
            TenantChange {
                quotas: Some(
                    Quotas {
                        max_connectors: 1,
                        ..quotas
                    }
                    .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
}

async fn api_key_lifecycle(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    store
        .create_tenant(&slug("other"), "", Quotas::default())
        .await
        .unwrap();
    let key = store
        .create_api_key(&slug("acme"), new_key("abcdefghijkl"))
        .await
        .unwrap();
    assert_eq!(key.role, Role::Viewer);
    assert_eq!(key.requests_per_second, Some(5));
    assert!(key.last_used_at.is_none());
    assert!(matches!(
        store
            .create_api_key(&slug("acme"), new_key("abcdefghijkl"))
            .await,
        Err(Error::AlreadyExists(_))
    ));
    // Another tenant cannot see or revoke it.
    assert!(matches!(
        store.get_api_key(&slug("other"), &key.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.revoke_api_key(&slug("other"), &key.id).await,
        Err(Error::NotFound(_))
    ));

    let acme = slug("acme");
    let used_at = |id: &'static str, at| store.record_usage(id, &acme, Some(&key.id), false, at);
    assert!(used_at("e1", 5_000).await.unwrap());
    assert!(used_at("e2", 4_000).await.unwrap());
    let used = store.get_api_key(&slug("acme"), &key.id).await.unwrap();
    assert_eq!(
        used.last_used_at,
        Some(5_000),
        "last_used never moves backwards"
    );

    let before = store.current_revision().await.unwrap();
    let revoked = store.revoke_api_key(&slug("acme"), &key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let after = store.current_revision().await.unwrap();
    assert_eq!(after, before + 1);
    // Revoking again is a no-op that takes no revision.
    store.revoke_api_key(&slug("acme"), &key.id).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), after);

    assert!(
        store
            .list_api_keys(&slug("acme"), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_api_keys(&slug("acme"), true)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn change_and_outbox_row_commit_together(store: Store) {
    let t = store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    let pending = store.outbox_pending(100).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].tenant.as_str(), "acme");
    assert_eq!(pending[0].revision, t.policy_revision);

    let c = add_connector(&store, "acme", "c").await.unwrap();
    let pending = store.outbox_pending(100).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].revision, c.revision);
    assert_eq!(
        store
            .get_tenant(&slug("acme"))
            .await
            .unwrap()
            .policy_revision,
        c.revision
    );

    store.outbox_ack(pending[0].seq).await.unwrap();
    let rest = store.outbox_pending(100).await.unwrap();
    assert_eq!(rest, pending[1..]);
}

async fn failed_change_leaves_no_outbox_row(store: Store) {
    let quotas = Quotas {
        max_connectors: 0,
        ..Quotas::default()
    };
    store
        .create_tenant(&slug("acme"), "", quotas)
        .await
        .unwrap();
    let rows = outbox_len(&store).await;
    let rev = store.current_revision().await.unwrap();
    let tenant_rev = store
        .get_tenant(&slug("acme"))
        .await
        .unwrap()
        .policy_revision;

    assert!(add_connector(&store, "acme", "c").await.is_err());
    assert!(
        store
            .create_tenant(&slug("acme"), "", quotas)
            .await
            .is_err()
    );
    assert!(
        store
            .update_tenant(
                &slug("acme"),
                Some(tenant_rev + 100),
                TenantChange::default()
            )
            .await
            .is_err()
    );

    assert_eq!(outbox_len(&store).await, rows);
    assert_eq!(store.current_revision().await.unwrap(), rev);
    assert_eq!(
        store
            .get_tenant(&slug("acme"))
            .await
            .unwrap()
            .policy_revision,
        tenant_rev
    );
    assert!(
        store
            .list_connectors(&slug("acme"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Makes inserting an outbox row for tenant "boom" fail inside the database.
async fn sabotage_outbox(store: &Store) {
    let statements: &[&str] = match store.backend() {
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.tenant_slug = 'boom' THEN RAISE EXCEPTION 'outbox refused'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON policy_outbox \
             FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        ],
        Backend::Sqlite => &["CREATE TRIGGER refuse_boom BEFORE INSERT ON policy_outbox \
             WHEN NEW.tenant_slug = 'boom' BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"],
    };
    for sql in statements {
        sqlx::query(*sql).execute(store.pool()).await.unwrap();
    }
}

async fn outbox_insert_failure_rolls_back_the_change(store: Store) {
    sabotage_outbox(&store).await;
    let rev = store.current_revision().await.unwrap();
    let err = store
        .create_tenant(&slug("boom"), "", Quotas::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err}");
    assert!(matches!(
        store.get_tenant(&slug("boom")).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(outbox_len(&store).await, 0);
    assert_eq!(store.current_revision().await.unwrap(), rev);
    // Other tenants are unaffected.
    store
        .create_tenant(&slug("fine"), "", Quotas::default())
        .await
        .unwrap();
    assert_eq!(outbox_len(&store).await, 1);
}

async fn revisions_only_grow(store: Store) {
    let mut seen = vec![
        store
            .create_tenant(&slug("acme"), "", Quotas::default())
            .await
            .unwrap()
            .policy_revision,
    ];
    seen.push(add_connector(&store, "acme", "c").await.unwrap().revision);
    store
        .create_api_key(&slug("acme"), new_key("abcdefghijkl"))
        .await
        .unwrap();
    seen.push(
        store
            .get_tenant(&slug("acme"))
            .await
            .unwrap()
            .policy_revision,
    );
    store.delete_tenant(&slug("acme"), None).await.unwrap();
    seen.push(store.current_revision().await.unwrap());
    // Re-created under the same slug, the tenant continues above its old revisions.
    seen.push(
        store
            .create_tenant(&slug("acme"), "", Quotas::default())
            .await
            .unwrap()
            .policy_revision,
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let outbox: Vec<u64> = store
        .outbox_pending(100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.revision)
        .collect();
    assert_eq!(outbox, seen, "one outbox row per change, in revision order");
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.unwrap();
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.get_tenant(&slug("acme")).await.is_ok());
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

async fn operator_tokens(store: Store) {
    assert!(!store.has_operator_tokens().await.unwrap());
    assert!(!store.operator_token_known("h1").await.unwrap());
    assert!(
        store
            .add_operator_token("h1", "boot00000001", "bootstrap", None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_operator_token("h1", "boot00000002", "bootstrap", None)
            .await
            .unwrap()
    );
    assert!(store.operator_token_known("h1").await.unwrap());
    // The last valid token cannot be revoked.
    let err = store
        .revoke_operator_token("boot00000001")
        .await
        .unwrap_err();
    assert!(
        matches!(err, switchyard_control_plane::Error::FailedPrecondition(_)),
        "{err:?}"
    );
    // An expired token does not count, nor authenticate.
    let past = now_millis() - 1;
    store
        .add_operator_token("h2", "old000000001", "old", Some(past))
        .await
        .unwrap();
    assert!(!store.operator_token_known("h2").await.unwrap());
    assert!(store.revoke_operator_token("boot00000001").await.is_err());
    store
        .add_operator_token("h3", "ci0000000001", "ci", None)
        .await
        .unwrap();
    let revoked = store.revoke_operator_token("boot00000001").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!store.operator_token_known("h1").await.unwrap());
    // Given again (a restart with the same bootstrap token), it stays revoked.
    assert!(
        !store
            .add_operator_token("h1", "boot00000003", "bootstrap", None)
            .await
            .unwrap()
    );
    assert!(!store.operator_token_known("h1").await.unwrap());
    let valid: Vec<_> = store.list_operator_tokens(false).await.unwrap();
    assert_eq!(
        valid.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["ci0000000001"]
    );
    assert_eq!(store.list_operator_tokens(true).await.unwrap().len(), 3);
    assert!(matches!(
        store.revoke_operator_token("nosuchtoken1").await,
        Err(switchyard_control_plane::Error::NotFound(_))
    ));
}

async fn usage_counts_each_event_once_and_a_used_up_quota_takes_a_revision(store: Store) {
    let acme = slug("acme");
    let quotas = Quotas {
        monthly_tool_calls: 2,
        ..Quotas::default()
    };
    store.create_tenant(&acme, "", quotas).await.unwrap();
    let now = now_millis();
    let call = |id: &'static str| store.record_usage(id, &acme, None, true, now);
    assert!(call("first").await.unwrap());
    assert!(!call("first").await.unwrap(), "a repeated event is not new");
    // Reads and prompts are not tool calls.
    assert!(
        store
            .record_usage("read", &acme, None, false, now)
            .await
            .unwrap()
    );
    let usage = store.usage(&acme).await.unwrap();
    assert_eq!((usage.tool_calls, usage.exhausted()), (1, false));

    let (revision, outbox) = (
        store.current_revision().await.unwrap(),
        outbox_len(&store).await,
    );
    assert!(call("second").await.unwrap());
    let usage = store.usage(&acme).await.unwrap();
    assert_eq!((usage.tool_calls, usage.exhausted()), (2, true));
    assert_eq!(usage.period, month_of(now).0);
    assert_eq!(usage.resets_at, month_of(now).1);
    assert!(
        store.current_revision().await.unwrap() > revision,
        "a new revision"
    );
    assert_eq!(outbox_len(&store).await, outbox + 1, "with its outbox row");
    let state = store.tenant_state(&acme).await.unwrap().unwrap();
    assert_eq!(state.tool_calls_this_month, 2);
    // Calls past the quota count, but take no further revision.
    let revision = store.current_revision().await.unwrap();
    assert!(call("third").await.unwrap());
    assert_eq!(store.current_revision().await.unwrap(), revision);
    assert_eq!(store.usage(&acme).await.unwrap().tool_calls, 3);
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
