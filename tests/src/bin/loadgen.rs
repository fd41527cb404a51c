//! An MCP load generator, for benchmarks (not tests). It starts a real stack (PostgreSQL
//! named by `SWITCHYARD_TEST_DATABASE_URL`, a private nats-server, the control plane,
//! workers and the test upstream) and measures, in one run:
//!
//! - `latency`: throughput and latency percentiles of `tools/call` directly against the
//!   upstream and through a worker, side by side, in either protocol era, with a number of
//!   sessions, a concurrency and an optional target rate;
//! - `rate`: how closely two workers hold a tenant to its rate when load at a multiple of
//!   it is split evenly between them;
//! - `propagation`: how long after the admin API answers a revocation, a suspension and a
//!   connector's removal each of two workers enforces it.
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

/// What each request of a latency run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Work {
    /// `tools/call` of `echo`: real work, under the tenant's rate and concurrency.
    Call,
    /// `tools/list`: not real work, under the tenant's places for other requests.
    List,
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
        #[arg(long, value_enum, default_value = "call")]
        work: Work,
    },
    /// How long after the admin API answers each of two workers enforces a change.
    Propagation {
        /// Times each change is measured.
        #[arg(long, default_value_t = 5)]
        runs: usize,
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

/// One request of `work` on `client`: whether it succeeded.
async fn once(client: &Client, work: Work) -> bool {
    match work {
        Work::Call => client
            .peer()
            .call_tool(echo())
            .await
            .is_ok_and(|r| r.is_error != Some(true)),
        Work::List => client.peer().list_tools(None).await.is_ok(),
    }
}

/// Drives requests of `work` on `clients` with `concurrency` in flight (paced to `rate` a
/// second if non-zero) for `duration`, after a warm-up.
async fn drive(
    clients: Arc<Vec<Client>>,
    work: Work,
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
                    let ok = once(client, work).await;
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
            work,
        } => {
            let (stack, upstream) = stack(1).await;
            let (cp, workers) = (&stack.cp, &stack.workers);
            let key = tenant(cp, &upstream, 100_000, 100_000).await;
            let endpoint = workers[0].endpoint("bench");
            served(&endpoint, &key).await;
            let duration = Duration::from_secs(duration);
            println!(
                "{work:?}, era {era:?}, {sessions} sessions, {concurrency} in flight, target rate {}:",
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
            let o = drive(Arc::new(direct), work, concurrency, rate, duration).await;
            report("upstream directly", &o);
            let mut through = Vec::new();
            for _ in 0..sessions {
                through.push(connect(&endpoint, Some(&key), era).await);
            }
            let w = drive(Arc::new(through), work, concurrency, rate, duration).await;
            report("through a worker", &w);
            println!(
                "added latency: p50 {:+.2} ms, p99 {:+.2} ms",
                w.percentile(0.5) - o.percentile(0.5),
                w.percentile(0.99) - o.percentile(0.99)
            );
        }
        Cmd::Propagation { runs } => propagation(runs).await,
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

/// The HTTP status a 2025-06-18 `initialize` with `key` gets at `endpoint`.
async fn status_of(http: &reqwest::Client, endpoint: &str, key: &str) -> u16 {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "loadgen", "version": "1"}}});
    http.post(endpoint)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Milliseconds from `since` until `done` holds at each endpoint, each polled every 2 ms
/// at the same time.
async fn until_each<F, Fut>(endpoints: &[String], since: Instant, done: F) -> Vec<f64>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = &done;
    futures::future::join_all(endpoints.iter().map(|e| async move {
        while !done(e.clone()).await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        since.elapsed().as_secs_f64() * 1000.0
    }))
    .await
}

/// How long after the admin API answers a change each of two workers enforces it.
async fn propagation(runs: usize) {
    let (stack, upstream) = stack(2).await;
    let cp = &stack.cp;
    let http = reqwest::Client::new();
    println!("| change | worker 1 ms | worker 2 ms |");
    println!("|---|---|---|");
    for run in 0..runs {
        let slug = format!("p{run}");
        cp.create_tenant(&slug).await;
        let mut req = mcp_connector(&slug, "b", &upstream.url, &[]);
        req.connector.as_mut().unwrap().prefix = Some(String::new());
        cp.connectors().create_connector(req).await.unwrap();
        let (revoked, other) = (cp.api_key(&slug).await, cp.api_key(&slug).await);
        let endpoints: Vec<String> = stack.workers.iter().map(|w| w.endpoint(&slug)).collect();
        for e in &endpoints {
            served(e, &other).await;
            while status_of(&http, e, &revoked).await != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let row = |change: &str, ms: Vec<f64>| {
            println!("| {change} | {:.0} | {:.0} |", ms[0], ms[1]);
        };
        let id = switchyard_common::apikey::parse(&revoked)
            .unwrap()
            .0
            .to_string();
        let since = Instant::now();
        cp.keys_api()
            .revoke_api_key(RevokeApiKeyRequest {
                tenant: slug.clone(),
                id,
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), revoked.clone());
            async move { status_of(&http, &e, &key).await == 401 }
        })
        .await;
        row("key revoked -> 401", ms);
        let since = Instant::now();
        cp.connectors()
            .delete_connector(DeleteConnectorRequest {
                tenant: slug.clone(),
                name: "b".into(),
                etag: String::new(),
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), other.clone());
            async move {
                let a = switchyard_tests::modern::list(&http, &e, &key).await;
                a.body["result"]["tools"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
            }
        })
        .await;
        row("connector removed -> tools gone", ms);
        let since = Instant::now();
        cp.tenants()
            .suspend_tenant(SuspendTenantRequest {
                slug: slug.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let ms = until_each(&endpoints, since, |e| {
            let (http, key) = (http.clone(), other.clone());
            async move { status_of(&http, &e, &key).await == 403 }
        })
        .await;
        row("tenant suspended -> 403", ms);
    }
}
