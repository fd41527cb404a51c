//! Driving requests at a concurrency and rate, and what came of them.

use crate::{Client, Work, echo};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
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

/// One request of `work` on `client`: whether it succeeded.
pub(crate) async fn once(client: &Client, work: Work) -> bool {
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
pub(crate) async fn drive(
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

pub(crate) fn report(name: &str, o: &Outcome) {
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
