//! Usage in the store: each event counts once, and a used-up quota takes a revision.

use super::{outbox_len, slug};
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::Store;

switchyard_tests::store_contract!(
    usage_counts_each_event_once_and_a_used_up_quota_takes_a_revision,
);

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
