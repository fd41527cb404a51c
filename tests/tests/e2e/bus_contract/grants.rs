//! The authorization server's state: what must happen once happens once, whichever worker
//! tries, on both implementations.

use bytes::Bytes;
use std::sync::Arc;
use switchyard_bus::CasKv;

contract!(
    cas,
    switchyard_bus::MemoryCas::new(std::time::Duration::from_secs(60)),
    |client| switchyard_bus::NatsCas::new(client, "grants", Some(std::time::Duration::from_secs(60)));
    an_entry_is_created_once,
    an_update_at_a_stale_revision_loses,
    a_value_is_taken_once,
    racing_takers_have_one_winner,
    entries_are_listed_by_prefix_in_key_order,
);

async fn an_entry_is_created_once(kv: Arc<dyn CasKv>) {
    assert_eq!(kv.get("acme.code.a").await.unwrap(), None);
    assert!(kv.create("acme.code.a", Bytes::from("one")).await.unwrap());
    assert!(
        !kv.create("acme.code.a", Bytes::from("two")).await.unwrap(),
        "a second create of the same key loses"
    );
    let got = kv.get("acme.code.a").await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from("one"));
    kv.delete("acme.code.a").await.unwrap();
    assert_eq!(kv.get("acme.code.a").await.unwrap(), None);
}

async fn an_update_at_a_stale_revision_loses(kv: Arc<dyn CasKv>) {
    assert!(kv.create("acme.grant.g", Bytes::from("v1")).await.unwrap());
    let first = kv.get("acme.grant.g").await.unwrap().unwrap();
    assert!(
        kv.update("acme.grant.g", Bytes::from("v2"), first.revision)
            .await
            .unwrap()
    );
    assert!(
        !kv.update("acme.grant.g", Bytes::from("v3"), first.revision)
            .await
            .unwrap(),
        "an update from the old revision loses"
    );
    let now = kv.get("acme.grant.g").await.unwrap().unwrap();
    assert_eq!(now.value, Bytes::from("v2"));
    assert!(now.revision > first.revision);
    assert!(
        !kv.update("acme.grant.none", Bytes::from("x"), now.revision)
            .await
            .unwrap(),
        "an update of a key that was never written loses"
    );
}

async fn a_value_is_taken_once(kv: Arc<dyn CasKv>) {
    assert!(kv.create("acme.code.t", Bytes::from("code")).await.unwrap());
    let entry = kv.get("acme.code.t").await.unwrap().unwrap();
    assert!(kv.take("acme.code.t", entry.revision).await.unwrap());
    assert_eq!(
        kv.get("acme.code.t").await.unwrap(),
        None,
        "taken reads as absent"
    );
    assert!(
        !kv.take("acme.code.t", entry.revision).await.unwrap(),
        "it cannot be taken twice"
    );
    assert!(
        !kv.create("acme.code.t", Bytes::from("again"))
            .await
            .unwrap(),
        "a taken key is not created again"
    );
}

async fn racing_takers_have_one_winner(kv: Arc<dyn CasKv>) {
    assert!(kv.create("acme.code.r", Bytes::from("code")).await.unwrap());
    let entry = kv.get("acme.code.r").await.unwrap().unwrap();
    let takers = (0..8).map(|_| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.take("acme.code.r", entry.revision).await.unwrap() })
    });
    let won = futures::future::join_all(takers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
}

async fn entries_are_listed_by_prefix_in_key_order(kv: Arc<dyn CasKv>) {
    for key in [
        "acme.grant.b",
        "acme.grant.a",
        "acme.grant.gone",
        "acme.grant.taken",
    ] {
        assert!(kv.create(key, Bytes::from(key)).await.unwrap());
    }
    assert!(kv.create("acme.code.c", Bytes::from("c")).await.unwrap());
    assert!(kv.create("acmex.grant.d", Bytes::from("d")).await.unwrap());
    kv.delete("acme.grant.gone").await.unwrap();
    let taken = kv.get("acme.grant.taken").await.unwrap().unwrap();
    assert!(kv.take("acme.grant.taken", taken.revision).await.unwrap());
    let listed = kv.list("acme.grant.", 10).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["acme.grant.a", "acme.grant.b"],
        "deleted and taken ones are gone"
    );
    assert_eq!(listed[0].1.value, Bytes::from("acme.grant.a"));
    let first = kv.list("acme.grant.", 1).await.unwrap();
    assert_eq!(first.len(), 1, "at most as many as asked for");
    assert!(kv.list("nobody.", 10).await.unwrap().is_empty());
}
