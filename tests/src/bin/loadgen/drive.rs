//! Driving requests at a concurrency and rate, and what came of them.

use crate::raw::Target;
use crate::{Era, Work};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The load a measurement drives, the same for every target it compares.
#[derive(Debug, clap::Args)]
pub(crate) struct Load {
    #[arg(long, value_enum, default_value = "legacy")]
    pub(crate) era: Era,
    /// Client sessions (connections) the calls are spread over.
    #[arg(long, default_value_t = 8)]
    pub(crate) sessions: usize,
    /// Calls in flight at once, over all sessions.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Calls a second to aim for (0: as fast as the concurrency allows).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Seconds to measure each target for (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Times to measure each target, alternating.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: usize,
    /// Pins each worker process to these CPUs (a `taskset` list, such as `0`), so it runs
    /// as on a node of its own: start the load generator itself under `taskset -c` with
    /// the other CPUs, and move PostgreSQL there too, to keep the rest of the system off
    /// them.
    #[arg(long)]
    pub(crate) worker_cpus: Option<String>,
    /// The protocol version session clients speak. A worker speaks the newest its upstream
    /// knows, whatever its clients speak, so an upstream that works differently per call at
    /// a newer version (the reference server primes each 2025-11-25 stream with an event it
    /// also stores) does the same work for the direct clients only when they speak it.
    #[arg(long, value_enum, default_value = "2025-06-18")]
    pub(crate) session_version: SessionVersion,
}

/// A protocol version of the session era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SessionVersion {
    #[value(name = "2025-06-18")]
    V2025_06_18,
    #[value(name = "2025-11-25")]
    V2025_11_25,
}

impl SessionVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
        }
    }
}

impl Load {
    /// The target rate, as a run's heading says it.
    pub(crate) fn rate_text(&self) -> String {
        if self.rate == 0 {
            "none".to_owned()
        } else {
            format!("{}/s", self.rate)
        }
    }

    /// `sessions` clients of `endpoint` (with `key`) in `era`, each on its own connection;
    /// session clients speak `session_version`.
    pub(crate) async fn clients(
        &self,
        endpoint: &str,
        key: Option<&str>,
        era: Era,
    ) -> Arc<Vec<Target>> {
        let mut clients = Vec::with_capacity(self.sessions);
        for _ in 0..self.sessions {
            clients.push(Target::connect(endpoint, key, era, self.session_version).await);
        }
        Arc::new(clients)
    }
}

/// CPU a process used per call answered in `o`, in microseconds.
pub(crate) fn cpu_per_call(cpu: Duration, o: &Outcome) -> String {
    if o.answered == 0 {
        return "-".into();
    }
    format!("{:.0}", cpu.as_secs_f64() * 1e6 / o.answered as f64)
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
    /// Calls answered, the warm-up's included.
    pub(crate) answered: u64,
}

impl Outcome {
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub(crate) fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Drives requests of `work` on `clients` with `concurrency` in flight (paced to `rate` a
/// second if non-zero) for `duration`, after a warm-up.
pub(crate) async fn drive(
    clients: Arc<Vec<Target>>,
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
                    let ok = client.once(work).await;
                    out.answered += u64::from(ok);
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
        all.answered += o.answered;
    }
    all.elapsed = duration;
    all.latencies_us.sort_unstable();
    all
}

/// One table row: `name`, the outcome, and `extra` cells after it.
pub(crate) fn report(name: &str, o: &Outcome, extra: &[&str]) {
    let extra: String = extra.iter().map(|c| format!(" {c} |")).collect();
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |{extra}",
        o.throughput(),
        o.percentile(0.50),
        o.percentile(0.90),
        o.percentile(0.99),
        o.percentile(1.0),
        o.errors
    );
}
