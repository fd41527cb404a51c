//! A private PostgreSQL database per test (and SQLite for the store contract), and keys.

use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::Store;
use switchyard_control_plane::compile::Keys;

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection as _;
    let admin_url = std::env::var("SWITCHYARD_TEST_DATABASE_URL").expect(
        "SWITCHYARD_TEST_DATABASE_URL is not set: run `bash scripts/test.sh`, which starts a \
         private PostgreSQL and sets it",
    );
    let name = format!("sy_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connecting to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A migrated store on a fresh PostgreSQL database.
pub async fn postgres_store() -> Store {
    let store = Store::connect(&postgres_database().await).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A migrated store on a fresh SQLite file; keep the directory alive as long as the store.
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

pub fn test_keys() -> Keys {
    Keys {
        master: Keyring::new(SecretKey::generate()),
        policy: Keyring::new(SecretKey::generate()),
    }
}
