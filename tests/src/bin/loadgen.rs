//! An MCP load generator, for benchmarks (not tests). It starts a real stack (PostgreSQL
//! named by `SWITCHYARD_TEST_DATABASE_URL`, a private nats-server, the control plane,
//! workers and the test upstream) and measures, in one run:
//!
//! - `latency`: throughput and latency percentiles of `tools/call` directly against the
//!   upstream and through a worker, side by side, in either protocol era, with a number of
//!   sessions, a concurrency and an optional target rate;
//! - `rate`: how closely two workers hold a tenant to its rate when load at a multiple of
//!   it is split evenly between them.
//!
//! `cargo run --release -p switchyard-tests --bin loadgen -- latency --era legacy`
//! `cargo run --release -p switchyard-tests --bin loadgen -- rate --limit 50 --factor 10`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack, install_tls, mcp_connector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Era {
    /// Sessions (initialize; 2025-11-25).
    Legacy,
    /// MCP 2026-07-28: no sessions, discovery first.
    Modern,
}

#[derive(Debug, clap::Parser)]
enum Cmd {
    /// Throughput and latency, directly against the upstream and through a worker.
    Latency {
        #[arg(long, value_enum, default_value = "legacy")]
        era: Era,
        /// Client sessions (connections) the calls are spread over.
        #[arg(long, default_value_t = 8)]
        sessions: usize,
        /// Calls in flight at once, over all sessions.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Calls a second to aim for (0: as fast as the concurrency allows).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to measure each target for (after a one-second warm-up).
        #[arg(long, default_value_t = 10)]
        duration: u64,
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

type Client = RunningService<RoleClient, ()>;

async fn connect(url: &str, key: Option<&str>, era: Era) -> Client {
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

fn echo() -> rmcp::model::CallToolRequestParams {
    let args = serde_json::json!({"text": "load"});
    rmcp::model::CallToolRequestParams::new("echo")
        .with_arguments(args.as_object().unwrap().clone())
}

#[derive(Debug, Default)]
struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Drives `tool` calls on `clients` with `concurrency` in flight (paced to `rate` a
/// second if non-zero) for `duration`, after a warm-up.
async fn drive(
    clients: Arc<Vec<Client>>,
    tool: fn() -> rmcp::model::CallToolRequestParams,
    concurrency: usize,
    rate: u64,
    duration: Duration,
) -> Outcome {
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let issued = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let clients = clients.clone();
            let issued = issued.clone();
            tokio::spawn(async move {
                let mut out = Outcome::default();
                let client = &clients[t % clients.len()];
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if rate > 0 {
                        // Open loop: call n is due n/rate seconds after the start.
                        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let began = Instant::now();
                    if began >= end {
                        return out;
                    }
                    let ok = client
                        .peer()
                        .call_tool(tool())
                        .await
                        .is_ok_and(|r| r.is_error != Some(true));
                    if began >= measure_from {
                        if ok {
                            out.latencies_us.push(began.elapsed().as_micros() as u64);
                        } else {
                            out.errors += 1;
                        }
                    }
                }
            })
        })
        .collect();
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.unwrap();
        all.latencies_us.extend(o.latencies_us);
        all.errors += o.errors;
    }
    all.elapsed = duration;
    all.latencies_us.sort_unstable();
    all
}

fn report(name: &str, o: &Outcome) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        o.throughput(),
        o.percentile(0.50),
        o.percentile(0.90),
        o.percentile(0.99),
        o.percentile(1.0),
        o.errors
    );
}

/// The platform with `workers` workers whose own cap does not limit the benchmark, and
/// the upstream it calls.
async fn stack(workers: usize) -> (Stack, TestUpstream) {
    let stack = Stack::builder()
        .workers(workers)
        .worker_config(|c| c.max_in_flight = 10_000)
        .start()
        .await;
    let upstream = TestUpstream::start("bench").await;
    (stack, upstream)
}

async fn tenant(cp: &ControlPlane, upstream: &TestUpstream, rps: u32, burst: u32) -> String {
    cp.tenants()
        .create_tenant(CreateTenantRequest {
            slug: "bench".into(),
            quotas: Some(Quotas {
                requests_per_second: Some(rps),
                burst: Some(burst),
                max_concurrent_requests: Some(10_000),
                max_sessions: Some(10_000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut req = mcp_connector("bench", "b", &upstream.url, &[]);
    req.connector.as_mut().unwrap().prefix = Some(String::new());
    cp.connectors().create_connector(req).await.unwrap();
    cp.api_key("bench").await
}

/// Waits until `endpoint` lists the tenant's tools for `key`.
async fn served(endpoint: &str, key: &str) {
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
    tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_writer(std::io::stderr)
        .init();
    install_tls();
    let cmd = <Cmd as clap::Parser>::parse();
    match cmd {
        Cmd::Latency {
            era,
            sessions,
            concurrency,
            rate,
            duration,
        } => {
            let (stack, upstream) = stack(1).await;
            let (cp, workers) = (&stack.cp, &stack.workers);
            let key = tenant(cp, &upstream, 100_000, 100_000).await;
            let endpoint = workers[0].endpoint("bench");
            served(&endpoint, &key).await;
            let duration = Duration::from_secs(duration);
            println!(
                "era {era:?}, {sessions} sessions, {concurrency} calls in flight, target rate {}:",
                if rate == 0 {
                    "none".to_owned()
                } else {
                    format!("{rate}/s")
                }
            );
            println!("| target | calls/s | p50 ms | p90 ms | p99 ms | max ms | errors |");
            println!("|---|---|---|---|---|---|---|");
            let mut direct = Vec::new();
            for _ in 0..sessions {
                direct.push(connect(&upstream.url, None, era).await);
            }
            let o = drive(Arc::new(direct), echo, concurrency, rate, duration).await;
            report("upstream directly", &o);
            let mut through = Vec::new();
            for _ in 0..sessions {
                through.push(connect(&endpoint, Some(&key), era).await);
            }
            let w = drive(Arc::new(through), echo, concurrency, rate, duration).await;
            report("through a worker", &w);
            println!(
                "added latency: p50 {:+.2} ms, p99 {:+.2} ms",
                w.percentile(0.5) - o.percentile(0.5),
                w.percentile(0.99) - o.percentile(0.99)
            );
        }
        Cmd::Rate {
            limit,
            factor,
            duration,
        } => {
            let (stack, upstream) = stack(2).await;
            let (cp, workers) = (&stack.cp, &stack.workers);
            let burst = limit;
            let key = tenant(cp, &upstream, limit, burst).await;
            let endpoints: Vec<String> = workers.iter().map(|w| w.endpoint("bench")).collect();
            for e in &endpoints {
                served(e, &key).await;
            }
            // Let both workers see the fleet and the burst refill after the checks.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let per_worker = u64::from(limit * factor) / 2;
            let duration = Duration::from_secs(duration);
            let started = Instant::now();
            let drivers: Vec<_> = endpoints
                .iter()
                .map(|e| {
                    let (e, key) = (e.clone(), key.clone());
                    tokio::spawn(async move {
                        let client = Arc::new(vec![connect(&e, Some(&key), Era::Modern).await]);
                        let admitted = Arc::new(AtomicU64::new(0));
                        let refused = Arc::new(AtomicU64::new(0));
                        let interval = Duration::from_secs_f64(1.0 / per_worker as f64);
                        let mut tick = tokio::time::interval(interval);
                        let mut calls = Vec::new();
                        while started.elapsed() < duration {
                            tick.tick().await;
                            let (client, admitted, refused) =
                                (client.clone(), admitted.clone(), refused.clone());
                            calls.push(tokio::spawn(async move {
                                match client[0].peer().call_tool(echo()).await {
                                    Ok(r) if r.is_error != Some(true) => {
                                        admitted.fetch_add(1, Ordering::Relaxed)
                                    }
                                    _ => refused.fetch_add(1, Ordering::Relaxed),
                                };
                            }));
                        }
                        for c in calls {
                            c.await.ok();
                        }
                        (
                            admitted.load(Ordering::Relaxed),
                            refused.load(Ordering::Relaxed),
                        )
                    })
                })
                .collect();
            let (mut admitted, mut refused) = (0, 0);
            for d in drivers {
                let (a, r) = d.await.unwrap();
                admitted += a;
                refused += r;
            }
            let secs = started.elapsed().as_secs_f64().min(duration.as_secs_f64());
            let limit_total = f64::from(limit) * secs;
            println!(
                "limit {limit}/s (burst {burst}), driven at {}x through two workers for {secs:.1} s",
                factor
            );
            println!(
                "admitted {admitted}, refused {refused}: {:.1}% of rate x time ({limit_total:.0}), \
                 {:.1}% of rate x time + burst ({:.0})",
                admitted as f64 / limit_total * 100.0,
                admitted as f64 / (limit_total + f64::from(burst)) * 100.0,
                limit_total + f64::from(burst)
            );
        }
    }
}
