//! The store contract: every test here runs against SQLite and PostgreSQL. The helpers
//! the contract's modules share live here, with the one store-wide test.

use switchyard_common::{ConnectorName, KeyId, TenantSlug};
use switchyard_control_plane::model::*;
use switchyard_control_plane::store::{NewApiKey, NewConnector, Store};

mod audit;
mod connectors;
mod keys;
mod outbox;
mod pins;
mod tenants;
mod usage;

switchyard_tests::store_contract!(migrations_are_idempotent);

pub(super) fn slug(s: &str) -> TenantSlug {
    TenantSlug::parse(s).unwrap()
}

pub(super) fn name(s: &str) -> ConnectorName {
    ConnectorName::parse(s).unwrap()
}

pub(super) fn settings(url: &str) -> ConnectorSettings {
    ConnectorSettings {
        kind: ConnectorKind::Mcp { url: url.into() },
        prefix: None,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        allow_tools: vec![],
        deny_tools: vec![],
        retry: RetrySettings::default(),
        breaker: BreakerSettings::default(),
        auto_approve_tools: false,
    }
}

fn no_headers(_: &str, _: &str) -> switchyard_control_plane::Result<Vec<SealedHeader>> {
    Ok(vec![])
}

pub(super) async fn add_connector(
    store: &Store,
    tenant: &str,
    n: &str,
) -> switchyard_control_plane::Result<Connector> {
    store
        .create_connector(
            &slug(tenant),
            NewConnector {
                name: name(n),
                enabled: true,
                settings: settings("http://127.0.0.1:1/mcp"),
                seal_headers: no_headers,
            },
        )
        .await
}

pub(super) fn new_key(id: &str) -> NewApiKey {
    NewApiKey {
        id: KeyId::parse(id).unwrap(),
        role: Role::Viewer,
        description: "ci".into(),
        requests_per_second: Some(5),
        burst: None,
        verifier: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        expires_at: None,
    }
}

pub(super) async fn outbox_len(store: &Store) -> usize {
    store.outbox_pending(10_000).await.unwrap().len()
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.unwrap();
    store
        .create_tenant(&slug("acme"), "", Quotas::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.get_tenant(&slug("acme")).await.is_ok());
}
