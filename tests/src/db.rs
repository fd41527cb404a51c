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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("sy_test_{now}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connecting to the test PostgreSQL server");
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        drop_stale_databases(&mut conn, now).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Test databases live as long as the server: a developer's long-lived one would gather
/// thousands. The first test of each process drops those created more than this long ago
/// (no test runs that long), named by their creation time.
const STALE_AFTER_SECS: u64 = 6 * 3600;

async fn drop_stale_databases(conn: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sy\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix("sy_test_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(secs, _)| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c + STALE_AFTER_SECS < now) {
            // One still in use (it should not be) stays.
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\"");
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *conn)
                .await
                .ok();
        }
    }
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
