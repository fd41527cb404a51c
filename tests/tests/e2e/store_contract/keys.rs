//! Credentials in the store: tenants' API keys and operator tokens.

use super::{new_key, slug};
use switchyard_control_plane::Error;
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::Store;

switchyard_tests::store_contract!(api_key_lifecycle, operator_tokens);

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

async fn operator_tokens(store: Store) {
    assert!(!store.has_operator_tokens().await.unwrap());
    assert!(store.operator_token_id("h1").await.unwrap().is_none());
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
    assert!(store.operator_token_id("h1").await.unwrap().is_some());
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
    assert!(store.operator_token_id("h2").await.unwrap().is_none());
    assert!(store.revoke_operator_token("boot00000001").await.is_err());
    store
        .add_operator_token("h3", "ci0000000001", "ci", None)
        .await
        .unwrap();
    let revoked = store.revoke_operator_token("boot00000001").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.operator_token_id("h1").await.unwrap().is_none());
    // Given again (a restart with the same bootstrap token), it stays revoked.
    assert!(
        !store
            .add_operator_token("h1", "boot00000003", "bootstrap", None)
            .await
            .unwrap()
    );
    assert!(store.operator_token_id("h1").await.unwrap().is_none());
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
