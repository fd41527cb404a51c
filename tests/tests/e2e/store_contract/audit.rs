//! The audit trail in the store: each change appends one linked record in its own
//! transaction, on both backends.

use super::*;
use switchyard_control_plane::audit;
use switchyard_control_plane::store::AuditFilter;

switchyard_tests::store_contract!(changes_append_linked_records_that_verify);

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
    assert_eq!((head.0, head.1.as_str()), (3, records[2].hash.as_str()));
    assert_eq!(audit::verify(&records, Some((head.0, &head.1))), Ok(()));
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
