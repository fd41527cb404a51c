//! Policy revisions and their outbox rows: a change and its row commit or roll back
//! together, and revisions only grow.

use super::{add_connector, new_key, outbox_len, slug};
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{Backend, Store, TenantChange};

switchyard_tests::store_contract!(
    change_and_outbox_row_commit_together,
    failed_change_leaves_no_outbox_row,
    outbox_insert_failure_rolls_back_the_change,
    revisions_only_grow,
);

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
