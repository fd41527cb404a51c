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

use crate::drive::{self, Load, Outcome, cpu_per_call};
use crate::raw::Target;
use crate::{Work, process, served, tenant};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_tests::otlp::OtlpReceiver;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack};

/// Throughput and latency through workers with auditing and tracing on and off.
#[derive(Debug, clap::Args)]
pub(crate) struct Observability {
    #[command(flatten)]
    load: Load,
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

struct Variant {
    name: &'static str,
    clients: Arc<Vec<Target>>,
    worker: Option<process::Process>,
    audited: bool,
}

/// A worker process on `stack` (with `env`), and clients of it with `key`.
async fn through(
    (name, audited): (&'static str, bool),
    (stack, key): (&Stack, &str),
    env: &[(&str, String)],
    load: &Load,
) -> Variant {
    let worker = process::worker_with(&process::sibling_binary(), stack, None, env).await;
    let endpoint = format!("http://127.0.0.1:{}/t/bench/mcp", worker.port);
    served(&endpoint, key).await;
    Variant {
        name,
        clients: load.clients(&endpoint, Some(key), load.era).await,
        worker: Some(worker),
        audited,
    }
}

pub(crate) async fn observability(o: Observability) {
    let load = &o.load;
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
            clients: load.clients(&upstream.url, None, load.era).await,
            worker: None,
            audited: false,
        },
        through(("audit on, tracing off", true), (&on, &key_on), &[], load).await,
        through(
            ("audit off, tracing off", false),
            (&off, &key_off),
            &[],
            load,
        )
        .await,
        through(
            ("audit on, tracing on", true),
            (&on, &key_on),
            &traced,
            load,
        )
        .await,
    ];
    println!(
        "upstream rmcp, era {:?}, {} sessions, {} in flight, target rate {}:",
        load.era,
        load.sessions,
        load.concurrency,
        load.rate_text()
    );
    println!(
        "| target | calls/s | p50 ms | p90 ms | p99 ms | max ms | errors | worker CPU us/call | PostgreSQL CPU us/call | NATS CPU us/call | load generator CPU us/call | spans exported | audit records written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut recorded = 0i64;
    for _ in 0..load.rounds {
        for v in &variants {
            caught_up(&on.cp, recorded).await;
            receiver.clear();
            let cpu0 = v.worker.as_ref().map(process::Process::cpu);
            let others0 = others();
            let out: Outcome = drive::drive(
                v.clients.clone(),
                Work::Call,
                load.concurrency,
                load.rate,
                Duration::from_secs(load.duration),
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
