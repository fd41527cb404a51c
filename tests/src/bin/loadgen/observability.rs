//! What auditing and tracing cost: the same load directly against the upstream and through
//! three `switchyard worker` processes, alternating, in one run:
//!
//! - audit on, tracing off: the control plane folds every call's usage event into the
//!   tenant's audit chain (a hashed record per call) and its counts;
//! - audit off, tracing off: a second stack whose control plane folds nothing (its workers
//!   still publish each call's event, which metering needs anyway), so the difference is
//!   the whole control-plane side of the audit path, metering included: an upper bound;
//! - audit on, tracing on: the first stack's control plane, and a worker exporting every
//!   request's spans over OTLP/gRPC to a receiver in this process.
//!
//! Before each run the audit-on control plane is let catch up with the calls already made,
//! so no run pays for the backlog of the one before.

use crate::drive::{self, Outcome};
use crate::raw::Target;
use crate::{Era, Work, process, served, tenant};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_tests::otlp::OtlpReceiver;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack};

#[derive(Debug, clap::Args)]
pub(crate) struct Observability {
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
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Times to measure each target, alternating.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

/// Call records on the `bench` tenant's audit chain.
async fn call_records(cp: &ControlPlane) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE chain = 'bench' AND kind = 'call'")
        .fetch_one(cp.store.pool())
        .await
        .unwrap()
}

/// Waits until `cp` has recorded `calls` calls; how long that took.
async fn caught_up(cp: &ControlPlane, calls: i64) -> Duration {
    let start = Instant::now();
    while call_records(cp).await < calls {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the control plane recorded {} of {calls} calls",
            call_records(cp).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// CPU used so far by PostgreSQL, by the NATS servers, and by this process (the control
/// planes, the upstream and the clients).
fn others() -> [Duration; 3] {
    [
        process::cpu_of_all("postgres"),
        process::cpu_of_all("nats-server"),
        process::own_cpu(),
    ]
}

/// `cpu` per call answered in `o`, in microseconds.
fn cpu_per_call(cpu: Duration, o: &Outcome) -> String {
    if o.answered == 0 {
        return "-".into();
    }
    format!("{:.0}", cpu.as_secs_f64() * 1e6 / o.answered as f64)
}

struct Variant {
    name: &'static str,
    clients: Arc<Vec<Target>>,
    worker: Option<process::Process>,
    audited: bool,
}

async fn clients(endpoint: &str, key: Option<&str>, o: &Observability) -> Arc<Vec<Target>> {
    let mut clients = Vec::new();
    for _ in 0..o.sessions {
        clients.push(Target::connect(endpoint, key, o.era).await);
    }
    Arc::new(clients)
}

/// A worker process on `stack` (with `env`), and clients of it with `key`.
async fn through(
    (name, audited): (&'static str, bool),
    (stack, key): (&Stack, &str),
    env: &[(&str, String)],
    o: &Observability,
) -> Variant {
    let worker = process::worker_with(&process::sibling_binary(), stack, None, env).await;
    let endpoint = format!("http://127.0.0.1:{}/t/bench/mcp", worker.port);
    served(&endpoint, key).await;
    Variant {
        name,
        clients: clients(&endpoint, Some(key), o).await,
        worker: Some(worker),
        audited,
    }
}

pub(crate) async fn observability(o: Observability) {
    let upstream = TestUpstream::start("bench").await;
    let on = Stack::builder().workers(0).start().await;
    let off = Stack::builder()
        .workers(0)
        .control_plane(|c| {
            c.usage_bus = None;
            c.refusal_bus = None;
        })
        .start()
        .await;
    let receiver = OtlpReceiver::start().await;
    let key_on = tenant(&on.cp, &upstream.url, 100_000, 100_000).await;
    let key_off = tenant(&off.cp, &upstream.url, 100_000, 100_000).await;
    let traced = [("SWITCHYARD_OTLP_ENDPOINT", receiver.endpoint())];
    let variants = vec![
        Variant {
            name: "upstream directly",
            clients: clients(&upstream.url, None, &o).await,
            worker: None,
            audited: false,
        },
        through(("audit on, tracing off", true), (&on, &key_on), &[], &o).await,
        through(("audit off, tracing off", false), (&off, &key_off), &[], &o).await,
        through(("audit on, tracing on", true), (&on, &key_on), &traced, &o).await,
    ];
    println!(
        "upstream rmcp, era {:?}, {} sessions, {} in flight, target rate {}:",
        o.era,
        o.sessions,
        o.concurrency,
        if o.rate == 0 {
            "none".to_owned()
        } else {
            format!("{}/s", o.rate)
        }
    );
    println!(
        "| target | calls/s | p50 ms | p90 ms | p99 ms | max ms | errors | worker CPU us/call | PostgreSQL CPU us/call | NATS CPU us/call | load generator CPU us/call | spans exported | audit records written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut recorded = 0i64;
    for _ in 0..o.rounds {
        for v in &variants {
            caught_up(&on.cp, recorded).await;
            receiver.clear();
            let cpu0 = v.worker.as_ref().map(process::Process::cpu);
            let others0 = others();
            let out: Outcome = drive::drive(
                v.clients.clone(),
                Work::Call,
                o.concurrency,
                o.rate,
                Duration::from_secs(o.duration),
            )
            .await;
            let cpu = v.worker.as_ref().map(process::Process::cpu);
            let per_call = |a: Duration, b: Duration| cpu_per_call(b.saturating_sub(a), &out);
            let worker_cpu = match (cpu0, cpu) {
                (Some(a), Some(b)) => per_call(a, b),
                _ => "-".into(),
            };
            let before = recorded;
            if v.audited {
                recorded += out.answered as i64;
                caught_up(&on.cp, recorded).await;
            }
            // Spans leave in batches every 2 s: wait for the last of this run's.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let spans = receiver.clear();
            // What serving the run cost the rest, the control plane's catching up included.
            let others1 = others();
            drive::report(
                v.name,
                &out,
                &[
                    &worker_cpu,
                    &per_call(others0[0], others1[0]),
                    &per_call(others0[1], others1[1]),
                    &per_call(others0[2], others1[2]),
                    &spans.to_string(),
                    &(recorded - before).to_string(),
                ],
            );
        }
    }
}
