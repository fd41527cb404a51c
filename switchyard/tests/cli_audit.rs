//! `switchyard audit` as an operator runs it, the real binary against a real stack: the
//! list shows a change with its diff, and `verify` passes on an intact chain and fails,
//! naming the record, on one edited in the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cli, json};
use switchyard_tests::Stack;
use switchyard_tests::admin::{Quotas, UpdateTenantRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_list_shows_a_change_and_verify_names_an_edited_record() {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                burst: Some(77),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    let listed = json(&cli(
        &stack,
        &["audit", "list", "--tenant", "acme", "-o", "json"],
    ));
    let update = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "UpdateTenant")
        .expect("the update is listed");
    assert_eq!(update["detail"]["diff"]["quotas.burst"]["to"], 77);
    let table = cli(&stack, &["audit", "list", "--tenant", "acme"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("UpdateTenant"));

    let verified = json(&cli(
        &stack,
        &["audit", "verify", "--tenant", "acme", "-o", "json"],
    ));
    assert_eq!(verified["intact"], true, "{verified}");

    for statement in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "UPDATE audit_events SET detail = '{}' WHERE chain = 'acme' AND seq = 2",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(stack.cp.store.pool())
            .await
            .unwrap();
    }
    let failed = cli(&stack, &["audit", "verify", "--tenant", "acme"]);
    assert!(!failed.status.success(), "verify fails on an edited chain");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("record 2"), "{stderr}");
}
