//! The session record store.

use std::sync::Arc;

contract!(
    contract,
    switchyard_bus::MemorySessions::default(),
    |client| switchyard_bus::NatsSessions::new(client, "sessions", std::time::Duration::from_secs(60));
    session_records_round_trip,
);

/// The session record store, on both implementations.
async fn session_records_round_trip(kv: Arc<dyn switchyard_bus::SessionKv>) {
    assert_eq!(kv.get("s1.owner").await.unwrap(), None);
    kv.put("s1.owner", bytes::Bytes::from_static(b"one"))
        .await
        .unwrap();
    kv.put("s2.owner", bytes::Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(
        kv.get("s1.owner").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    kv.put("s1.owner", bytes::Bytes::from_static(b"uno"))
        .await
        .unwrap();
    assert_eq!(
        kv.get("s1.owner").await.unwrap().as_deref(),
        Some(&b"uno"[..])
    );
    kv.delete("s1.owner").await.unwrap();
    assert_eq!(kv.get("s1.owner").await.unwrap(), None);
    assert_eq!(
        kv.get("s2.owner").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    kv.delete("never-written").await.unwrap();
}
