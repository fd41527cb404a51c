//! Starts what the conformance suites run against and prints where: the conformance fixture
//! upstream on its own, and the same fixture as the only connector (empty prefix) of a tenant
//! served by a real worker, behind a proxy that adds the tenant's API key. The control plane
//! runs on the PostgreSQL server named by `SWITCHYARD_TEST_DATABASE_URL` and publishes to a
//! private nats-server, as in production. Runs until interrupted.
//!
//! Prints `upstream=URL` and `worker=URL` lines, then `ready`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard_tests::{Stack, admin, mcp_connector};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Quiet unless asked: the harness would otherwise log everything at debug.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let stack = Stack::start().await;
    let (cp, worker) = (&stack.cp, stack.worker());
    let upstream = switchyard_tests::conformance::ConformanceUpstream::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;

    cp.create_tenant("conformance").await;
    let mut connector = mcp_connector("conformance", "fixture", &upstream.url, &[]);
    if let Some(c) = connector.connector.as_mut() {
        c.prefix = Some(String::new());
        c.timeout_ms = 30_000;
    }
    cp.connectors().create_connector(connector).await?;
    let key = cp
        .keys_api()
        .create_api_key(admin::CreateApiKeyRequest {
            tenant: "conformance".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .secret;

    // The worker serves the tenant once its policy has arrived.
    let endpoint = worker.endpoint("conformance");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while switchyard_tests::mcp_client(&endpoint, &key).await.is_err() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the worker never served the tenant"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let proxy = switchyard_tests::proxy::AuthProxy::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        &format!("http://{}", worker.mcp),
        &key,
    )?;
    println!("upstream={}", upstream.url);
    println!("worker=http://{}/t/conformance/mcp", proxy.addr);
    println!("ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
