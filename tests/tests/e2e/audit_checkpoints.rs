//! Signed checkpoints against the tamperer who knows the hash chain: a record edited in the
//! database and every hash after it recomputed, head row included, passes every chain
//! check but not the checkpoint signed before the edit; a checkpoint whose signature is
//! forged is named too. The public key the service gives checks a checkpoint offline.

use crate::audit::{four_changes, verify};
use base64::Engine as _;
use switchyard_control_plane::audit::chain::Record;
use switchyard_control_plane::audit::checkpoint;
use switchyard_tests::admin::*;
use switchyard_tests::{ControlPlane, Stack, assert_eventually};

async fn sql(cp: &ControlPlane, statement: &str) {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(cp.store.pool())
        .await
        .unwrap();
}

/// Waits for a checkpoint of `tenant`'s chain at record 4 or later.
async fn checkpointed(cp: &ControlPlane, tenant: &str) -> checkpoint::Checkpoint {
    let mut found: Vec<checkpoint::Checkpoint>;
    assert_eventually!(
        {
            found = cp.store.audit_checkpoints(tenant, 4, 1000).await.unwrap();
            !found.is_empty()
        },
        std::time::Duration::from_secs(20),
        "a checkpoint of {tenant}"
    );
    found.remove(0)
}

/// Rewrites `tenant`'s chain from record 2 on as one who knows how hashes are made would:
/// record 2's actor changed, every later hash and link recomputed, the head row too.
async fn rewrite_from_the_second_record(cp: &ControlPlane, tenant: &str) {
    let (mut records, _) = cp.store.audit_chain(tenant, 1, 1000).await.unwrap();
    records[1].actor = "operator:someone-else".into();
    let mut previous = records[0].hash.clone();
    for r in records.iter_mut().skip(1) {
        r.prev_hash = previous;
        r.hash = r.compute_hash();
        previous = r.hash.clone();
    }
    for r in records.iter().skip(1) {
        let Record {
            seq,
            actor,
            prev_hash,
            hash,
            ..
        } = r;
        sql(
            cp,
            &format!(
                "UPDATE audit_events SET actor = '{actor}', prev_hash = '{prev_hash}', \
                 hash = '{hash}' WHERE chain = '{tenant}' AND seq = {seq}"
            ),
        )
        .await;
    }
    let last = records.last().unwrap();
    sql(
        cp,
        &format!(
            "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE chain = '{tenant}'",
            last.seq, last.hash
        ),
    )
    .await;
}

/// A control plane that signs its chains' heads every 100 ms.
async fn signing() -> Stack {
    Stack::builder()
        .without_nats()
        .control_plane(|c| c.audit_checkpoint_every = std::time::Duration::from_millis(100))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_rewritten_with_recomputed_hashes_fails_at_the_checkpoint() {
    let stack = signing().await;
    let cp = &stack.cp;
    four_changes(cp, "acme").await;
    let signed = checkpointed(cp, "acme").await;
    let before = verify(cp, "acme").await;
    assert!(before.intact, "{before:?}");
    assert!(before.checkpoints >= 1, "{before:?}");

    // The key the service publishes checks the checkpoint without the service.
    let published = cp
        .audit()
        .get_audit_signing_key(GetAuditSigningKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.key_id, before.key_id);
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&published.public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap();
    assert!(checkpoint::signed_by(&signed, &key));

    sql(
        cp,
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    )
    .await;
    // Named at the first checkpoint at or after the edited record.
    let first_signed_after_edit = cp.store.audit_checkpoints("acme", 2, 1000).await.unwrap()[0].seq;
    rewrite_from_the_second_record(cp, "acme").await;
    let after = verify(cp, "acme").await;
    assert!(!after.intact, "the rewrite went unseen: {after:?}");
    assert_eq!(after.first_bad_seq, first_signed_after_edit, "{after:?}");
    assert!(after.reason.contains("rewritten"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_is_named() {
    let stack = signing().await;
    let cp = &stack.cp;
    four_changes(cp, "acme").await;
    let signed = checkpointed(cp, "acme").await;
    sql(
        cp,
        "ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only",
    )
    .await;
    let forged = base64::engine::general_purpose::STANDARD.encode([9u8; 64]);
    sql(
        cp,
        &format!(
            "UPDATE audit_checkpoints SET signature = '{forged}' WHERE chain = 'acme' AND seq = {}",
            signed.seq
        ),
    )
    .await;
    let after = verify(cp, "acme").await;
    assert!(!after.intact, "{after:?}");
    assert_eq!(after.first_bad_seq, signed.seq);
    assert!(after.reason.contains("not signed"), "{after:?}");
}
