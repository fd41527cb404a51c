//! Throughput and added latency: the same load directly against an upstream and through a
//! worker, in one run, with the worker's CPU per call.

use crate::drive::{self, Load, cpu_per_call};
use crate::{Era, Work, process, served, stack, tenant};
use std::time::Duration;

/// The upstream the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Upstream {
    /// The test upstream (rmcp, in the load generator's process).
    Rmcp,
    /// The npm reference server (`@modelcontextprotocol/server-everything`), its own process.
    Everything,
}

/// Where the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum WorkerIn {
    /// `switchyard worker`, its own process (the `switchyard` binary beside this one).
    Process,
    /// In the load generator's process.
    Here,
}

/// Throughput and latency directly against an upstream and through a worker.
#[derive(Debug, clap::Args)]
pub(crate) struct Latency {
    #[command(flatten)]
    load: Load,
    #[arg(long, value_enum, default_value = "rmcp")]
    upstream: Upstream,
    #[arg(long, value_enum, default_value = "process")]
    worker: WorkerIn,
    #[arg(long, value_enum, default_value = "call")]
    work: Work,
    /// Runtime threads of the worker process (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
}

pub(crate) async fn latency(l: Latency) {
    // An in-process worker only when the load goes to it.
    let (stack, rmcp_upstream) = stack(usize::from(l.worker == WorkerIn::Here)).await;
    let everything = match l.upstream {
        Upstream::Everything => Some(process::everything().await),
        Upstream::Rmcp => None,
    };
    let upstream_url = match &everything {
        Some(p) => format!("http://127.0.0.1:{}/mcp", p.port),
        None => rmcp_upstream.url.clone(),
    };
    let key = tenant(&stack.cp, &upstream_url, 100_000, 100_000).await;
    let worker = match l.worker {
        WorkerIn::Process => {
            Some(process::worker(&process::sibling_binary(), &stack, l.worker_threads).await)
        }
        WorkerIn::Here => None,
    };
    if let (Some(w), Some(cpus)) = (&worker, &l.load.worker_cpus) {
        w.pin(cpus);
    }
    let endpoint = match &worker {
        Some(w) => format!("http://127.0.0.1:{}/t/bench/mcp", w.port),
        None => stack.workers[0].endpoint("bench"),
    };
    served(&endpoint, &key).await;
    let load = &l.load;
    let duration = Duration::from_secs(load.duration);
    println!(
        "{:?}, upstream {:?}, era {:?} (sessions at {}), {} sessions, {} in flight, target rate {}, worker {:?}:",
        l.work,
        l.upstream,
        load.era,
        load.session_version.as_str(),
        load.sessions,
        load.concurrency,
        load.rate_text(),
        l.worker,
    );
    println!(
        "| target | calls/s | p50 ms | p90 ms | p99 ms | max ms | errors | worker CPU us/call | upstream CPU us/call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // The reference server has no 2026-07-28: its own clients hold sessions, so that is
    // the direct baseline whichever era reaches the worker.
    let direct_era = match l.upstream {
        Upstream::Everything => Era::Legacy,
        Upstream::Rmcp => load.era,
    };
    let direct = load.clients(&upstream_url, None, direct_era).await;
    let through = load.clients(&endpoint, Some(&key), load.era).await;
    let upstream_cpu = || everything.as_ref().map(process::Process::cpu);
    let worker_cpu = || worker.as_ref().map(process::Process::cpu);
    for _ in 0..load.rounds {
        let mut rows = Vec::new();
        let direct_name = if direct_era == load.era {
            "upstream directly"
        } else {
            "upstream directly (sessions)"
        };
        for (name, clients) in [
            (direct_name, direct.clone()),
            ("through a worker", through.clone()),
        ] {
            let (w0, u0) = (worker_cpu(), upstream_cpu());
            let o = drive::drive(clients, l.work, load.concurrency, load.rate, duration).await;
            let (w1, u1) = (worker_cpu(), upstream_cpu());
            let per_call = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
                (Some(a), Some(b)) => cpu_per_call(b - a, &o),
                _ => "-".into(),
            };
            drive::report(
                name,
                &o,
                &[per_call(w0, w1).as_str(), per_call(u0, u1).as_str()],
            );
            rows.push(o);
        }
        println!(
            "added latency: p50 {:+.2} ms, p99 {:+.2} ms; throughput {:.2}x direct",
            rows[1].percentile(0.5) - rows[0].percentile(0.5),
            rows[1].percentile(0.99) - rows[0].percentile(0.99),
            rows[1].throughput() / rows[0].throughput(),
        );
    }
}
