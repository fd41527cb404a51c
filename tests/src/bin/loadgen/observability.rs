//! What auditing and tracing cost: the same load directly against the upstream and through
//! `switchyard worker` processes, alternating, in one run:
//!
//! - audit on, tracing off: the control plane folds every call's usage event into the
//!   tenant's counts and its audit chain (a hashed record per call);
//! - audit off (metering only): a second stack, whose events are folded into the counts
//!   alone (the monthly quota, keys' last use, daily usage) by a fold in this process that
//!   writes no call record: the difference from "audit on" is what the call records cost;
//! - nothing folded: a third stack, whose control plane folds nothing (its workers still
//!   publish each call's event), so the difference is the whole control-plane side of the
//!   event pipeline, metering included: an upper bound;
//! - audit on, tracing on: the first stack's control plane, and a worker exporting every
//!   request's spans over OTLP/gRPC to a receiver in this process.
//!
//! Before each run every fold is let catch up with the calls already made, so no run pays
//! for the backlog of the one before.

use crate::drive::{self, Load, Outcome, cpu_per_call};
use crate::raw::Target;
use crate::{Work, process, served, tenant};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_control_plane::usage;
use switchyard_tests::otlp::OtlpReceiver;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{ControlPlane, Stack};

/// Throughput and latency through workers with auditing and tracing on and off.
#[derive(Debug, clap::Args)]
pub(crate) struct Observability {
    #[command(flatten)]
    load: Load,
}

/// What a stack's control plane makes of each call's usage event (each stack folds its own
/// way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fold {
    /// Counts and a call record.
    Audit,
    /// Counts only.
    Metering,
    Nothing,
}

/// Calls `cp` has folded in: call records on the `bench` tenant's audit chain, or (metering
/// only) calls counted this month.
async fn folded(cp: &ControlPlane, fold: Fold) -> i64 {
    match fold {
        Fold::Audit => sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE chain = 'bench' AND kind = 'call'",
        )
        .fetch_one(cp.store.pool())
        .await
        .unwrap(),
        Fold::Metering => {
            let bench = switchyard_common::TenantSlug::parse("bench").unwrap();
            cp.store.usage(&bench).await.unwrap().tool_calls as i64
        }
        Fold::Nothing => 0,
    }
}

/// Waits until `cp` has folded in `calls` calls (one that folds nothing, at once).
async fn caught_up(cp: &ControlPlane, fold: Fold, calls: i64) {
    if fold == Fold::Nothing {
        return;
    }
    let start = Instant::now();
    while folded(cp, fold).await < calls {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the control plane folded {} of {calls} calls",
            folded(cp, fold).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Folds `stack`'s usage events as its control plane would, but into the counts alone:
/// each event's record carries no call detail, so no audit record is written.
async fn fold_counts_only(stack: &Stack) -> tokio::task::JoinHandle<()> {
    let store = stack.cp.store.clone();
    let buses = stack.nats().buses().await;
    tokio::spawn(async move {
        let mut deliveries = buses.usage.consume().await.unwrap();
        while let Some(batch) = usage::next_batch(&mut deliveries).await {
            let records: Vec<_> = batch
                .iter()
                .filter_map(|d| usage::record_of(&d.event))
                .map(|mut r| {
                    r.call = None;
                    r
                })
                .collect();
            store.record_usage_batch(&records).await.unwrap();
            for d in batch {
                d.ack().await.unwrap();
            }
        }
    })
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

struct Variant<'a> {
    name: &'static str,
    clients: Arc<Vec<Target>>,
    worker: Option<process::Process>,
    /// The control plane behind the worker, and what it folds.
    cp: Option<(&'a ControlPlane, Fold)>,
}

/// A worker process on `stack` (with `env`), and clients of it with `key`.
async fn through<'a>(
    (name, fold): (&'static str, Fold),
    (stack, key): (&'a Stack, &str),
    env: &[(&str, String)],
    load: &Load,
) -> Variant<'a> {
    let worker = process::worker_with(&process::sibling_binary(), stack, None, env).await;
    if let Some(cpus) = &load.worker_cpus {
        worker.pin(cpus);
    }
    let endpoint = format!("http://127.0.0.1:{}/t/bench/mcp", worker.port);
    served(&endpoint, key).await;
    Variant {
        name,
        clients: load.clients(&endpoint, Some(key), load.era).await,
        worker: Some(worker),
        cp: Some((&stack.cp, fold)),
    }
}

pub(crate) async fn observability(o: Observability) {
    let load = &o.load;
    let upstream = TestUpstream::start("bench").await;
    let folding_nothing = |c: &mut switchyard_control_plane::Config| {
        c.usage_bus = None;
        c.refusal_bus = None;
    };
    let on = Stack::builder().workers(0).start().await;
    let metered = Stack::builder()
        .workers(0)
        .control_plane(folding_nothing)
        .start()
        .await;
    let off = Stack::builder()
        .workers(0)
        .control_plane(folding_nothing)
        .start()
        .await;
    let _fold = fold_counts_only(&metered).await;
    let receiver = OtlpReceiver::start().await;
    let key_on = tenant(&on.cp, &upstream.url, 100_000, 100_000).await;
    let key_metered = tenant(&metered.cp, &upstream.url, 100_000, 100_000).await;
    let key_off = tenant(&off.cp, &upstream.url, 100_000, 100_000).await;
    let traced = [("SWITCHYARD_OTLP_ENDPOINT", receiver.endpoint())];
    let variants = vec![
        Variant {
            name: "upstream directly",
            clients: load.clients(&upstream.url, None, load.era).await,
            worker: None,
            cp: None,
        },
        through(
            ("audit on, tracing off", Fold::Audit),
            (&on, &key_on),
            &[],
            load,
        )
        .await,
        through(
            ("audit off (metering only), tracing off", Fold::Metering),
            (&metered, &key_metered),
            &[],
            load,
        )
        .await,
        through(
            ("nothing folded, tracing off", Fold::Nothing),
            (&off, &key_off),
            &[],
            load,
        )
        .await,
        through(
            ("audit on, tracing on", Fold::Audit),
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
    // Calls each stack's control plane has been given so far.
    let mut given: std::collections::HashMap<Fold, i64> = Default::default();
    for _ in 0..load.rounds {
        for v in &variants {
            for (cp, fold) in variants.iter().filter_map(|v| v.cp) {
                caught_up(cp, fold, given.get(&fold).copied().unwrap_or(0)).await;
            }
            receiver.clear();
            let records0 = match v.cp {
                Some((cp, _)) => folded(cp, Fold::Audit).await,
                None => 0,
            };
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
            let mut records = 0;
            if let Some((cp, fold)) = v.cp {
                let total = given.entry(fold).or_default();
                *total += out.answered as i64;
                caught_up(cp, fold, *total).await;
                records = folded(cp, Fold::Audit).await - records0;
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
                    &records.to_string(),
                ],
            );
        }
    }
}
