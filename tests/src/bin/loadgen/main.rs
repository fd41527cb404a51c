//! An MCP load generator, for benchmarks (not tests). It starts a real stack (PostgreSQL
//! named by `SWITCHYARD_TEST_DATABASE_URL`, a private nats-server, the control plane,
//! workers and the test upstream) and measures, in one run:
//!
//! - `latency`: throughput and latency percentiles of `tools/call` directly against the
//!   upstream (the test upstream or the npm reference server) and through a worker (a
//!   `switchyard worker` process, its CPU read from `/proc`), side by side, in either
//!   protocol era, with a number of sessions, a concurrency and an optional target rate;
//! - `rate`: how closely two workers hold a tenant to its rate when load at a multiple of
//!   it is split evenly between them;
//! - `propagation`: how long after the admin API answers a revocation, a suspension and a
//!   connector's removal each of two workers enforces it;
//! - `sessions`: a worker's resident memory per idle session and per GET stream;
//! - `observability`: throughput and latency through workers with auditing on and off and
//!   tracing on and off, beside the upstream directly;
//! - `metering`: two workers at full load, then whether the tenant's monthly count equals
//!   the calls answered.
//!
//! `cargo run --release -p switchyard-tests --bin loadgen -- latency --era legacy`
//! `cargo run --release -p switchyard-tests --bin loadgen -- rate --limit 50 --factor 10`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod drive;
mod latency;
mod metering;
mod observability;
mod process;
mod propagation;
mod rate;
mod raw;
mod sessions;

use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::time::{Duration, Instant};
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, install_tls, mcp_connector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Era {
    /// Sessions (initialize): a latency run's clients at `--session-version`, the other
    /// runs' (rmcp's client) at 2025-11-25.
    Legacy,
    /// MCP 2026-07-28: no sessions, discovery first.
    Modern,
}

/// What each request of a latency run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Work {
    /// `tools/call` of `echo`: real work, under the tenant's rate and concurrency.
    Call,
    /// `tools/list`: not real work, under the tenant's places for other requests.
    List,
}

#[derive(Debug, clap::Parser)]
enum Cmd {
    /// Throughput and latency, directly against the upstream and through a worker.
    Latency(latency::Latency),
    Observability(observability::Observability),
    /// A worker's memory with many idle sessions open, and with GET streams on them.
    Sessions(sessions::Sessions),
    /// How long after the admin API answers each of two workers enforces a change.
    Propagation {
        /// Times each change is measured.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Two workers at full load for `duration`: whether every call answered is counted
    /// once in the tenant's monthly usage.
    Metering {
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Calls in flight at once per worker.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// A tenant limited to `limit` calls a second, driven at `factor` times that through
    /// two workers evenly: how many calls are admitted against the limit.
    Rate {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 10)]
        factor: u32,
        #[arg(long, default_value_t = 20)]
        duration: u64,
    },
}

pub(crate) type Client = RunningService<RoleClient, ()>;

pub(crate) async fn connect(url: &str, key: Option<&str>, era: Era) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(key) = key {
        config = config.auth_header(key.to_owned());
    }
    config.max_concurrent_requests = 256;
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = match era {
        Era::Legacy => ClientLifecycleMode::Initialize,
        Era::Modern => ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
    };
    ().serve_with_lifecycle(transport, lifecycle).await.unwrap()
}

pub(crate) fn echo() -> rmcp::model::CallToolRequestParams {
    let args = serde_json::json!({"text": "load"});
    rmcp::model::CallToolRequestParams::new("echo")
        .with_arguments(args.as_object().unwrap().clone())
}

/// The platform with `workers` workers whose own cap does not limit the benchmark, and
/// the upstream it calls.
pub(crate) async fn stack(workers: usize) -> (Stack, TestUpstream) {
    let stack = Stack::builder()
        .workers(workers)
        .worker_config(|c| c.max_in_flight = 10_000)
        .start()
        .await;
    let upstream = TestUpstream::start("bench").await;
    (stack, upstream)
}

pub(crate) async fn tenant(cp: &ControlPlane, upstream_url: &str, rps: u32, burst: u32) -> String {
    cp.tenants()
        .create_tenant(CreateTenantRequest {
            slug: "bench".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(rps),
                burst: Some(burst),
                max_concurrent_requests: Some(10_000),
                max_sessions: Some(1_000_000),
                max_concurrent_other_requests: Some(100_000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut req = mcp_connector("bench", "b", upstream_url, &[]);
    req.connector.as_mut().unwrap().prefix = Some(String::new());
    cp.connectors().create_connector(req).await.unwrap();
    cp.api_key("bench").await
}

/// Waits until `endpoint` lists the tenant's tools for `key`.
pub(crate) async fn served(endpoint: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = switchyard_tests::mcp_client(endpoint, key).await
            && c.peer()
                .list_all_tools()
                .await
                .is_ok_and(|t| t.iter().any(|t| t.name == "echo"))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} never served the tenant"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    // The control plane, workers and upstream run here on the allocator the binary uses.
    switchyard_allocator::configure();
    tracing_subscriber::fmt()
        .with_env_filter("error,rmcp=off")
        .with_writer(std::io::stderr)
        .init();
    install_tls();
    let cmd = <Cmd as clap::Parser>::parse();
    match cmd {
        Cmd::Latency(l) => latency::latency(l).await,
        Cmd::Observability(o) => observability::observability(o).await,
        Cmd::Sessions(s) => sessions::sessions(s).await,
        Cmd::Propagation { runs } => propagation::propagation(runs).await,
        Cmd::Rate {
            limit,
            factor,
            duration,
        } => rate::rate(limit, factor, duration).await,
        Cmd::Metering {
            duration,
            concurrency,
        } => metering::metering(duration, concurrency).await,
    }
}
