//! Connectors in the store: their lifecycle with sealed headers, and the connector quota.

use super::{add_connector, name, settings, slug};
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{NewConnector, Store, TenantChange};

switchyard_tests::store_contract!(connector_lifecycle, max_connectors_is_enforced);

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
