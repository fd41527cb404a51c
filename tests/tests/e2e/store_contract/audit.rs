//! The audit trail in the store: each change appends one linked record in its own
//! transaction, on both backends.

use super::*;
use std::time::Duration;
use switchyard_control_plane::audit;
use switchyard_control_plane::audit::checkpoint;
use switchyard_control_plane::model::AuditSettings;
use switchyard_control_plane::store::{AuditFilter, TenantChange};

switchyard_tests::store_contract!(
    changes_append_linked_records_that_verify,
    retention_removes_the_oldest_records_and_the_rest_still_verifies,
    a_tenants_own_retention_overrides_the_default,
    pruning_cuts_where_a_signed_checkpoint_covers_the_first_record_kept,
);

async fn changes_append_linked_records_that_verify(store: Store) {
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    add_connector(&store, "acme", "github").await.unwrap();
    store
        .delete_connector(&slug("acme"), &name("github"), None)
        .await
        .unwrap();
    let (records, head) = store.audit_chain("acme", 1, 100).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["CreateTenant", "CreateConnector", "DeleteConnector"]
    );
    assert!(records.iter().all(|r| r.actor == audit::SYSTEM));
    assert_eq!(records[1].prev_hash, records[0].hash);
    let head = head.unwrap();
    assert_eq!(
        (head.seq, head.hash.as_str()),
        (3, records[2].hash.as_str())
    );
    assert_eq!(
        audit::verify(&records, 1, Some((head.seq, &head.hash))),
        Ok(())
    );
    let newest = store
        .audit_events(&AuditFilter {
            chain: "acme".into(),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].seq, 3);
}

/// Verifies `chain` from where retention left it, against its head.
async fn verifies(store: &Store, chain: &str) -> Result<(), audit::ChainBreak> {
    let (records, head) = store.audit_chain(chain, 1, 1000).await.unwrap();
    let head = head.unwrap();
    audit::verify(
        &records,
        head.pruned_through + 1,
        Some((head.seq, &head.hash)),
    )
}

async fn retention_removes_the_oldest_records_and_the_rest_still_verifies(store: Store) {
    let acme = slug("acme");
    store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    for n in 1..=3 {
        store
            .update_tenant(
                &acme,
                None,
                TenantChange {
                    display_name: Some(format!("acme {n}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    // Outside the job the table still refuses deletes.
    let refused = sqlx::query("DELETE FROM audit_events WHERE chain = 'acme' AND seq = 1")
        .execute(store.pool())
        .await;
    assert!(refused.is_err(), "a delete outside retention is refused");
    // Everything is older than "now + 1 s": all but the newest record go.
    let removed = store
        .prune_audit(now_millis() + 1000, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let (records, head) = store.audit_chain("acme", 1, 100).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(head.unwrap().pruned_through, 3);
    assert_eq!(verifies(&store, "acme").await, Ok(()));
    // Nothing more to remove; appends carry on from the head.
    assert_eq!(
        store
            .prune_audit(now_millis() + 1000, Duration::ZERO)
            .await
            .unwrap(),
        0
    );
    store.delete_tenant(&acme, None).await.unwrap();
    assert_eq!(verifies(&store, "acme").await, Ok(()));
    assert_eq!(store.audit_chain("acme", 1, 100).await.unwrap().0.len(), 2);
}

/// Makes `n` changes to `tenant`, each one record on its chain.
async fn changes(store: &Store, tenant: &str, n: usize) {
    for i in 0..n {
        store
            .update_tenant(
                &slug(tenant),
                None,
                TenantChange {
                    display_name: Some(format!("{tenant} {i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn a_tenants_own_retention_overrides_the_default(store: Store) {
    for tenant in ["brief", "lasting"] {
        store
            .create_tenant(&slug(tenant), "", Quotas::default())
            .await
            .unwrap();
        changes(&store, tenant, 2).await;
    }
    let one_day = AuditSettings {
        retention_days: 1,
        ..Default::default()
    };
    store
        .update_tenant(
            &slug("brief"),
            None,
            TenantChange {
                audit: Some(one_day),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Two days on, with a default of thirty: only the tenant keeping one day loses records.
    let later = now_millis() + 2 * 86_400_000;
    let removed = store
        .prune_audit(later, Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(removed, 3, "brief's records but its newest");
    assert_eq!(store.audit_chain("brief", 1, 100).await.unwrap().0.len(), 1);
    assert_eq!(
        store.audit_chain("lasting", 1, 100).await.unwrap().0.len(),
        3
    );
    assert_eq!(verifies(&store, "brief").await, Ok(()));
}

async fn pruning_cuts_where_a_signed_checkpoint_covers_the_first_record_kept(store: Store) {
    use base64::Engine as _;
    let signer = checkpoint::Signer::from_base64(
        &base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
    )
    .unwrap();
    let acme = slug("acme");
    store
        .create_tenant(&acme, "", Quotas::default())
        .await
        .unwrap();
    changes(&store, "acme", 2).await;
    // Signed at record 3; two more records follow.
    assert_eq!(store.sign_audit_heads(&signer).await.unwrap(), 1);
    changes(&store, "acme", 2).await;
    // Everything has expired: the cut still keeps record 3, whose checkpoint anchors the rest.
    let removed = store
        .prune_audit(now_millis() + 1000, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let (records, head) = store.audit_chain("acme", 1, 100).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(head.unwrap().pruned_through, 2);
    assert_eq!(verifies(&store, "acme").await, Ok(()));
    let signed = store.audit_checkpoints("acme", 3, 5).await.unwrap();
    assert_eq!(
        checkpoint::check(&records, &signed, &[signer.public()]),
        Ok(1),
        "the first record kept is the one signed"
    );
    // Until a later checkpoint, nothing more goes.
    assert_eq!(
        store
            .prune_audit(now_millis() + 1000, Duration::ZERO)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.sign_audit_heads(&signer).await.unwrap(), 1);
    assert_eq!(
        store
            .prune_audit(now_millis() + 1000, Duration::ZERO)
            .await
            .unwrap(),
        2
    );
    assert_eq!(verifies(&store, "acme").await, Ok(()));
}
