//! Tool pins in the store: the first definition is approved, a change is held (one new
//! revision when a tool turns pending), approval publishes it, auto-approval does at once,
//! and a connector's pins are bounded and go with it.

use super::{add_connector, name, outbox_len, slug};
use switchyard_common::{ConnectorName, TenantSlug};
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{MAX_TOOL_PINS, Sighting, Store};

switchyard_tests::store_contract!(
    a_changed_definition_is_held_until_approved,
    auto_approval_and_bounds,
);

/// Tenant acme with connector gh.
async fn acme_with_gh(store: &Store) -> (TenantSlug, ConnectorName) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    add_connector(store, "acme", "gh").await.unwrap();
    (slug("acme"), name("gh"))
}

async fn revisions(store: &Store) -> (u64, usize) {
    (
        store.current_revision().await.unwrap(),
        outbox_len(store).await,
    )
}

async fn a_changed_definition_is_held_until_approved(store: Store) {
    let (acme, gh) = acme_with_gh(&store).await;
    let see = |tool: &'static str, digest: &'static str, def: &'static str| {
        store.record_tool_sighting(&acme, &gh, tool, digest, Some(def))
    };
    let before = revisions(&store).await;
    assert_eq!(
        see("search", "d1", "{\"v\":1}").await.unwrap(),
        Sighting::FirstSeen
    );
    assert_eq!(
        revisions(&store).await,
        before,
        "a first sighting takes no revision by itself"
    );
    assert_eq!(
        see("search", "d1", "{\"v\":1}").await.unwrap(),
        Sighting::Known
    );
    let state = store.tenant_state(&acme).await.unwrap().unwrap();
    let id = &state.connectors[0].id;
    assert_eq!(
        state.tool_pins[id],
        [("search".to_owned(), "d1".to_owned())]
    );

    // The upstream rewrites the tool: held, and workers learn of it in one revision.
    let before = revisions(&store).await;
    assert_eq!(
        see("search", "d2", "{\"v\":2}").await.unwrap(),
        Sighting::Pending
    );
    let after = revisions(&store).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    assert_eq!(
        see("search", "d2", "{\"v\":2}").await.unwrap(),
        Sighting::StillPending
    );
    // A third definition replaces the held one without another revision.
    assert_eq!(
        see("search", "d3", "{\"v\":3}").await.unwrap(),
        Sighting::Pending
    );
    assert_eq!(revisions(&store).await, after);
    let pins = store.tool_pins(&acme, &gh).await.unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(
        (pins[0].digest.as_str(), pins[0].definition.as_deref()),
        ("d1", Some("{\"v\":1}"))
    );
    let pending = pins[0].pending.as_ref().unwrap();
    assert_eq!(
        (pending.digest.as_str(), pending.definition.as_deref()),
        ("d3", Some("{\"v\":3}"))
    );
    // Approved digests are what policies carry: still the first.
    let state = store.tenant_state(&acme).await.unwrap().unwrap();
    assert_eq!(
        state.tool_pins[id],
        [("search".to_owned(), "d1".to_owned())]
    );

    // Naming a tool with nothing held, or none at all, approves nothing.
    assert_eq!(see("other", "o1", "{}").await.unwrap(), Sighting::FirstSeen);
    let refused = store
        .approve_tools(&acme, &gh, &["other".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::FailedPrecondition(_)),
        "{refused:?}"
    );
    let refused = store
        .approve_tools(&acme, &gh, &["nope".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::NotFound(_)), "{refused:?}");
    assert!(
        store.tool_pins(&acme, &gh).await.unwrap()[1]
            .pending
            .is_some()
    );

    let before = revisions(&store).await;
    assert_eq!(
        store.approve_tools(&acme, &gh, &[]).await.unwrap(),
        ["search"]
    );
    assert_eq!(revisions(&store).await.0, before.0 + 1);
    let state = store.tenant_state(&acme).await.unwrap().unwrap();
    assert_eq!(
        state.tool_pins[id],
        [
            ("other".to_owned(), "o1".to_owned()),
            ("search".to_owned(), "d3".to_owned())
        ]
    );
    assert!(
        store
            .approve_tools(&acme, &gh, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // Going back to the approved definition drops what was held.
    assert_eq!(see("search", "d4", "{}").await.unwrap(), Sighting::Pending);
    assert_eq!(see("search", "d3", "{}").await.unwrap(), Sighting::Known);
    assert!(
        store.tool_pins(&acme, &gh).await.unwrap()[1]
            .pending
            .is_none()
    );

    // Pins go with their connector.
    store.delete_connector(&acme, &gh, None).await.unwrap();
    assert_eq!(see("search", "d9", "{}").await.unwrap(), Sighting::Gone);
    add_connector(&store, "acme", "gh").await.unwrap();
    assert!(store.tool_pins(&acme, &gh).await.unwrap().is_empty());
}

async fn auto_approval_and_bounds(store: Store) {
    let (acme, gh) = acme_with_gh(&store).await;
    store
        .update_connector(&acme, &gh, None, |_, c| {
            c.settings.auto_approve_tools = true;
            Ok(())
        })
        .await
        .unwrap();
    let huge = "x".repeat(switchyard_control_plane::store::MAX_DEFINITION_BYTES + 1);
    assert_eq!(
        store
            .record_tool_sighting(&acme, &gh, "search", "d1", Some(&huge))
            .await
            .unwrap(),
        Sighting::FirstSeen
    );
    let before = revisions(&store).await;
    assert_eq!(
        store
            .record_tool_sighting(&acme, &gh, "search", "d2", Some("{}"))
            .await
            .unwrap(),
        Sighting::Approved
    );
    assert_eq!(revisions(&store).await.0, before.0 + 1);
    let pins = store.tool_pins(&acme, &gh).await.unwrap();
    assert_eq!(
        (pins[0].digest.as_str(), pins[0].pending.is_none()),
        ("d2", true)
    );

    // The first definition was kept by digest only: it was over the bound.
    store
        .record_tool_sighting(&acme, &gh, "big", "b1", Some(&huge))
        .await
        .unwrap();
    let pins = store.tool_pins(&acme, &gh).await.unwrap();
    assert_eq!(pins[0].tool, "big");
    assert_eq!(pins[0].definition, None);

    // A hostile upstream that lists ever new tools fills its pins and no more.
    for i in pins.len()..MAX_TOOL_PINS {
        let tool = format!("t{i}");
        store
            .record_tool_sighting(&acme, &gh, &tool, "d", None)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .record_tool_sighting(&acme, &gh, "one-more", "d", None)
            .await
            .unwrap(),
        Sighting::Full
    );
    assert_eq!(
        store.tool_pins(&acme, &gh).await.unwrap().len(),
        MAX_TOOL_PINS
    );
    // Unknown tenants and connectors record nothing.
    assert_eq!(
        store
            .record_tool_sighting(&slug("nobody"), &gh, "search", "d", None)
            .await
            .unwrap(),
        Sighting::Gone
    );
}
