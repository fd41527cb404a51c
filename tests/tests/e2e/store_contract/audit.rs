//! The audit trail in the store: each change appends one linked record in its own
//! transaction, on both backends.

use super::*;
use switchyard_control_plane::audit;
use switchyard_control_plane::store::{AuditFilter, TenantChange};

switchyard_tests::store_contract!(
    changes_append_linked_records_that_verify,
    retention_removes_the_oldest_records_and_the_rest_still_verifies,
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
    let removed = store.prune_audit(now_millis() + 1000).await.unwrap();
    assert_eq!(removed, 3);
    let (records, head) = store.audit_chain("acme", 1, 100).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(head.unwrap().pruned_through, 3);
    assert_eq!(verifies(&store, "acme").await, Ok(()));
    // Nothing more to remove; appends carry on from the head.
    assert_eq!(store.prune_audit(now_millis() + 1000).await.unwrap(), 0);
    store.delete_tenant(&acme, None).await.unwrap();
    assert_eq!(verifies(&store, "acme").await, Ok(()));
    assert_eq!(store.audit_chain("acme", 1, 100).await.unwrap().0.len(), 2);
}
