//! `metering`: two workers at full load, then whether the tenant's monthly count (as
//! `switchyard tenant usage` shows it) equals the calls answered with a tool result.

use crate::{Era, connect, echo, served, stack, tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_tests::admin::*;

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    /// Answered with a tool result (`isError` included): the calls that count.
    results: AtomicU64,
    /// Refused with 429 or another JSON-RPC error.
    refused: AtomicU64,
}

/// Drives `concurrency` calls in flight at each of two workers for `duration` seconds,
/// then polls the tenant's count until it stops moving.
pub(crate) async fn metering(duration: u64, concurrency: usize) {
    let (stack, upstream) = stack(2).await;
    let (cp, workers) = (&stack.cp, &stack.workers);
    let key = tenant(cp, &upstream.url, 100_000, 100_000).await;
    let endpoints: Vec<String> = workers.iter().map(|w| w.endpoint("bench")).collect();
    for e in &endpoints {
        served(e, &key).await;
    }
    let seen = Arc::new(Seen::default());
    let until = Instant::now() + Duration::from_secs(duration);
    let mut tasks = Vec::new();
    for e in &endpoints {
        let client = Arc::new(connect(e, Some(&key), Era::Modern).await);
        for _ in 0..concurrency {
            let (client, seen) = (client.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let counter = match client.peer().call_tool(echo()).await {
                        Ok(_) => &seen.results,
                        Err(_) => &seen.refused,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let answered = seen.results.load(Ordering::Relaxed);
    let refused = seen.refused.load(Ordering::Relaxed);
    let drained = Instant::now();
    let (mut counted, mut last_change) = (0, Instant::now());
    while last_change.elapsed() < Duration::from_secs(5) {
        let usage = cp
            .tenants()
            .get_tenant_usage(GetTenantUsageRequest {
                slug: "bench".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if usage.tool_calls != counted {
            counted = usage.tool_calls;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut dropped = 0.0;
    for w in workers {
        dropped += w
            .metric("switchyard_worker_usage_events_dropped_total")
            .await
            .unwrap_or(f64::NAN);
    }
    println!(
        "two workers, {concurrency} calls in flight each, {duration} s: {answered} answered with a \
         tool result ({:.0}/s), {refused} refused",
        answered as f64 / duration as f64
    );
    println!(
        "counted {counted} ({:+} against answered), settled {:.1} s after the load ended; \
         usage events dropped: {dropped}",
        counted as i64 - answered as i64,
        (last_change - drained).as_secs_f64()
    );
}
