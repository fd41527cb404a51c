//! The end-to-end harness: a private PostgreSQL database per test, the real control plane
//! started in-process on port 0, authenticated gRPC clients, and captured logs.
//!
//! Tests need `SWITCHYARD_TEST_DATABASE_URL`, a superuser URL of a PostgreSQL server that
//! `scripts/test.sh` starts; each test creates its own database there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

pub mod conformance;
mod control_plane;
mod db;
pub mod hang_up;
pub mod idp;
pub mod kube_fake;
pub mod legacy;
pub mod modern;
mod nats;
pub mod nats_accounts;
pub mod oauth;
pub mod otlp;
pub mod ports;
pub mod proxy;
pub mod python;
pub mod sse;
mod stack;
pub mod upstream;
mod worker;

pub use control_plane::{Authed, ControlPlane, TokenInterceptor, mcp_connector, violated_field};
pub use db::{postgres_database, postgres_store, sqlite_store, test_keys};
pub use nats::NatsServer;
pub use stack::{Stack, StackBuilder, client_of};
pub use switchyard_proto::admin::v1 as admin;
pub use worker::{Worker, install_tls, mcp_client};

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout. With
/// `eventually`, the only places the suite waits with a deadline: deadlines bound polling
/// for something observable, never a measurement.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr, $($what:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("not true within {:?}: {}", $timeout, format!($($what)+));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// Polls `attempt` until it gives a value or `timeout` passes; panics with `what` and the
/// last failure on timeout.
pub async fn eventually<T, E, F, Fut>(timeout: std::time::Duration, what: &str, mut attempt: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("not within {timeout:?}: {what}: {e}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Runs `work` (which polls something until it holds) to its end, or panics with `what`
/// once `timeout` passes.
pub async fn within<T>(
    timeout: std::time::Duration,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(timeout, work).await {
        Ok(v) => v,
        Err(_) => panic!("not within {timeout:?}: {what}"),
    }
}

/// Runs each named `async fn(Store)` as two tests, on SQLite and on PostgreSQL: one store
/// contract, every backend.
#[macro_export]
macro_rules! store_contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = $crate::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::postgres_store().await).await;
                }
            )*
        }
    };
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Buffer> = OnceLock::new();

/// Captures every log line of this test process at DEBUG level, but for the libraries the
/// binary also keeps quiet (their payload-bearing debug output), and echoes it to stderr,
/// which the test runner shows only for failing tests.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(switchyard_common::logfilter::with_libraries_capped("debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .ok();
        buffer
    });
}

/// The usage event of a successful tool call `a__echo` on connector `a` of `tenant`, by key
/// id `abcdefghijkl`, made at `at_ms`, with id `id`: what a worker publishes.
pub fn usage_event(id: &str, tenant: &str, at_ms: i64) -> switchyard_bus::UsageEvent {
    switchyard_bus::UsageEvent {
        id: id.into(),
        tenant: tenant.into(),
        key_id: "abcdefghijkl".into(),
        subject: None,
        method: switchyard_bus::UsageMethod::ToolsCall,
        target: "a__echo".into(),
        connector: "a".into(),
        ok: true,
        at_ms,
        duration_ms: 1,
        error: None,
        session: None,
        worker: None,
        trace_id: None,
        arguments_digest: None,
        arguments: None,
    }
}

/// Everything logged so far by this test process.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.0.lock().unwrap()).into_owned())
        .unwrap_or_default()
}
