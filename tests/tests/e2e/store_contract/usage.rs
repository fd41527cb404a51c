//! Usage in the store: each event counts once, and a used-up quota takes a revision.

use super::{new_key, outbox_len, slug};
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{CallDetail, Store, UsageRecord};

switchyard_tests::store_contract!(
    usage_counts_each_event_once_and_a_used_up_quota_takes_a_revision,
    a_batch_counts_each_new_event_once_and_takes_one_revision_per_used_up_tenant,
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

/// The targets of the call records on `chain`, in order.
async fn call_targets(store: &Store, chain: &str) -> Vec<String> {
    let (records, _) = store.audit_chain(chain, 1, 1000).await.unwrap();
    records
        .iter()
        .filter(|r| r.kind == "call")
        .map(|r| {
            let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
            detail["target"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn record(id: &str, tenant: &str, at: Millis) -> UsageRecord {
    UsageRecord {
        event_id: id.to_owned(),
        tenant: slug(tenant),
        key: None,
        tool_call: true,
        at,
        call: Some(CallDetail {
            subject: None,
            method: "tools/call".into(),
            target: format!("echo-{id}"),
            connector: "up".into(),
            ok: true,
            duration_ms: 3,
            error: None,
            session: None,
            worker: Some("w-1".into()),
            trace_id: None,
            arguments_digest: None,
            arguments: None,
        }),
    }
}

async fn a_batch_counts_each_new_event_once_and_takes_one_revision_per_used_up_tenant(
    store: Store,
) {
    let quotas = |n| Quotas {
        monthly_tool_calls: n,
        ..Quotas::default()
    };
    store
        .create_tenant(&slug("acme"), "", quotas(5))
        .await
        .unwrap();
    store
        .create_tenant(&slug("globex"), "", quotas(0))
        .await
        .unwrap();
    let now = now_millis();
    assert!(
        store
            .record_usage("e0", &slug("acme"), None, true, now)
            .await
            .unwrap()
    );
    let (revision, outbox) = (
        store.current_revision().await.unwrap(),
        outbox_len(&store).await,
    );
    // Repeats within the batch and of an earlier batch; acme goes from 1 to 5 (its quota,
    // used up in this batch); globex is unlimited; a gone tenant counts nowhere.
    let mut batch: Vec<UsageRecord> = ["e0", "e1", "e2", "e1", "e3", "e4"]
        .iter()
        .map(|id| record(id, "acme", now))
        .collect();
    batch.extend(
        ["g1", "g2", "g1"]
            .iter()
            .map(|id| record(id, "globex", now)),
    );
    batch.push(record("x1", "nobody", now));
    assert_eq!(store.record_usage_batch(&batch).await.unwrap(), 7);
    let acme = store.usage(&slug("acme")).await.unwrap();
    assert_eq!((acme.tool_calls, acme.exhausted()), (5, true));
    assert_eq!(store.usage(&slug("globex")).await.unwrap().tool_calls, 2);
    assert_eq!(
        store.current_revision().await.unwrap(),
        revision + 1,
        "one revision, for the tenant that used up its quota"
    );
    assert_eq!(outbox_len(&store).await, outbox + 1);
    // The same batch again changes nothing.
    assert_eq!(store.record_usage_batch(&batch).await.unwrap(), 0);
    assert_eq!(store.usage(&slug("acme")).await.unwrap().tool_calls, 5);
    assert_eq!(store.current_revision().await.unwrap(), revision + 1);
    // Each new call on the tenant's audit trail once, in the batch's order, after its
    // creation; the repeats not at all.
    assert_eq!(
        call_targets(&store, "acme").await,
        ["echo-e1", "echo-e2", "echo-e3", "echo-e4"]
    );
    assert_eq!(call_targets(&store, "globex").await, ["echo-g1", "echo-g2"]);
    // The day's figures count each call once (e0 came alone, without call details).
    let today = day_of(now);
    let days = store
        .daily_usage(&slug("acme"), std::slice::from_ref(&today))
        .await
        .unwrap();
    assert_eq!(
        (days[0].calls, days[0].tool_calls, days[0].failed),
        (4, 4, 0)
    );
    assert_eq!(days[0].upstream_ms, 4 * 3);
    // Refusals reported once per report id count toward their day.
    let refused = |id: &str| {
        (
            id.to_owned(),
            switchyard_control_plane::store::NewRecord {
                chain: "acme".into(),
                kind: "refusal".into(),
                actor: "key:unknown".into(),
                action: "rate_limited".into(),
                object: "tenant/acme".into(),
                outcome: "refused".into(),
                detail: "{}".into(),
                trace_id: String::new(),
            },
            Some(switchyard_control_plane::store::DailyRefusals {
                tenant: "acme".into(),
                day: today.clone(),
                reason: "rate_limited".into(),
                count: 7,
            }),
        )
    };
    let reports = [refused("r1"), refused("r2"), refused("r1")];
    assert_eq!(store.append_reported(&reports).await.unwrap(), 2);
    assert_eq!(store.append_reported(&reports).await.unwrap(), 0);
    let days = store
        .daily_usage(&slug("acme"), std::slice::from_ref(&today))
        .await
        .unwrap();
    assert_eq!(days[0].refusals.get("rate_limited"), Some(&14));
    let (records, head) = store.audit_chain("acme", 1, 100).await.unwrap();
    let head = head.unwrap();
    assert_eq!(
        switchyard_control_plane::audit::verify(&records, 1, Some((head.seq, &head.hash))),
        Ok(())
    );
    // Many at once, over one statement's worth of ids.
    let many: Vec<UsageRecord> = (0..450)
        .map(|i| record(&format!("m{i}"), "globex", now))
        .collect();
    assert_eq!(store.record_usage_batch(&many).await.unwrap(), 450);
    assert_eq!(store.usage(&slug("globex")).await.unwrap().tool_calls, 452);
    // A key's last use is the latest in the batch, whatever the order.
    let key = store
        .create_api_key(&slug("globex"), new_key("abcdefghijkl"))
        .await
        .unwrap();
    let used = |id: &str, at| UsageRecord {
        key: Some(key.id.clone()),
        tool_call: false,
        ..record(id, "globex", at)
    };
    let batch = [used("k1", now - 10), used("k2", now), used("k3", now - 5)];
    assert_eq!(store.record_usage_batch(&batch).await.unwrap(), 3);
    let keys = store.list_api_keys(&slug("globex"), true).await.unwrap();
    assert_eq!(keys[0].last_used_at, Some(now));
}
