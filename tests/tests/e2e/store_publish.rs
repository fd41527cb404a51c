//! The store's record of policy publishing, on SQLite and PostgreSQL: each tenant's publish
//! status, the outbox backlog, which tenants need re-sealing under a new policy key, and
//! whether migrations are applied.

use switchyard_common::TenantSlug;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::Store;

switchyard_tests::store_contract!(
    publish_status_follows_publishes_and_errors,
    the_backlog_counts_unpublished_changes,
    tenants_published_under_another_key_are_found_and_touched,
    migrations_are_reported_applied,
);

fn slug(s: &str) -> TenantSlug {
    TenantSlug::parse(s).unwrap()
}

async fn publish_status_follows_publishes_and_errors(store: Store) {
    let acme = slug("acme");
    store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    assert_eq!(
        store.publish_status(&acme).await.unwrap(),
        PublishStatus::default()
    );

    store
        .record_publish_error(&acme, "the bus is away")
        .await
        .unwrap();
    let s = store.publish_status(&acme).await.unwrap();
    assert_eq!(
        (s.published_revision, s.error.as_str()),
        (0, "the bus is away")
    );
    assert!(s.error_at.is_some() && s.published_at.is_none());

    store.record_published(&acme, 7, "k1").await.unwrap();
    let s = store.publish_status(&acme).await.unwrap();
    assert_eq!(s.published_revision, 7);
    assert!(s.published_at.is_some());
    assert!(
        s.error.is_empty() && s.error_at.is_none(),
        "a success clears the error"
    );

    // An older revision recorded late never moves it back; an error keeps the revision.
    store.record_published(&acme, 5, "k1").await.unwrap();
    store
        .record_publish_error(&acme, &"x".repeat(5000))
        .await
        .unwrap();
    let s = store.publish_status(&acme).await.unwrap();
    assert_eq!(s.published_revision, 7);
    assert_eq!(s.error.chars().count(), 1000, "long errors are cut");

    // Unknown tenants record nothing; a deleted tenant's status goes with it.
    store
        .record_published(&slug("ghost"), 3, "k1")
        .await
        .unwrap();
    assert_eq!(
        store.publish_status(&slug("ghost")).await.unwrap(),
        PublishStatus::default()
    );
    store.delete_tenant(&acme, None).await.unwrap();
    store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    assert_eq!(
        store.publish_status(&acme).await.unwrap(),
        PublishStatus::default()
    );
}

async fn the_backlog_counts_unpublished_changes(store: Store) {
    assert_eq!(
        store.outbox_backlog().await.unwrap(),
        OutboxBacklog::default()
    );
    let before = now_millis();
    store
        .create_tenant(&slug("a"), "", Quotas::default())
        .await
        .unwrap();
    store
        .create_tenant(&slug("b"), "", Quotas::default())
        .await
        .unwrap();
    let backlog = store.outbox_backlog().await.unwrap();
    assert_eq!(backlog.entries, 2);
    assert!(backlog.oldest_at.is_some_and(|at| at >= before));
    let last = store.outbox_pending(10).await.unwrap().last().unwrap().seq;
    store.outbox_ack(last).await.unwrap();
    assert_eq!(
        store.outbox_backlog().await.unwrap(),
        OutboxBacklog::default()
    );
}

async fn tenants_published_under_another_key_are_found_and_touched(store: Store) {
    for s in ["a", "b", "c", "d"] {
        store
            .create_tenant(&slug(s), "", Quotas::default())
            .await
            .unwrap();
    }
    store.record_published(&slug("a"), 1, "old").await.unwrap();
    store.record_published(&slug("b"), 1, "new").await.unwrap();
    // c: never published successfully (only an error): nothing to re-seal.
    store
        .record_publish_error(&slug("c"), "no bus")
        .await
        .unwrap();
    // d: published before keys were recorded (no status): re-sealed once to be sure.
    let last = store.outbox_pending(10).await.unwrap().last().unwrap().seq;
    store.outbox_ack(last).await.unwrap();
    // e: created, not published yet (no status either): its pending change is published
    // under the current key anyway, so a re-seal would only give it a revision it was
    // never created with.
    store
        .create_tenant(&slug("e"), "", Quotas::default())
        .await
        .unwrap();
    let found = store.sealed_with_other_key("new", 10).await.unwrap();
    assert_eq!(found, vec![slug("a"), slug("d")]);

    let before = store.get_tenant(&slug("a")).await.unwrap().policy_revision;
    store.touch_policy(&slug("a")).await.unwrap();
    let after = store.get_tenant(&slug("a")).await.unwrap().policy_revision;
    assert!(after > before, "a new revision for the same policy");
    let outbox = store.outbox_pending(100).await.unwrap();
    assert_eq!(
        outbox.last().map(|e| (&e.tenant, e.revision)),
        Some((&slug("a"), after))
    );
}

async fn migrations_are_reported_applied(store: Store) {
    assert!(store.migrations_applied().await.unwrap());
}
