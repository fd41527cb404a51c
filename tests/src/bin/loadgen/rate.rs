//! `rate`: how closely two workers hold a tenant to its rate.

use crate::{Era, connect, echo, served, stack, tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A tenant limited to `limit` calls a second, driven at `factor` times that through two
/// workers evenly for `duration` seconds: how many calls are admitted against the limit.
pub(crate) async fn rate(limit: u32, factor: u32, duration: u64) {
    let (stack, upstream) = stack(2).await;
    let (cp, workers) = (&stack.cp, &stack.workers);
    let burst = limit;
    let key = tenant(cp, &upstream.url, limit, burst).await;
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
