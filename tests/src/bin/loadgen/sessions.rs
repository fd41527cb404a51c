//! What idle clients cost a worker: its resident memory (`VmRSS`) before and after opening
//! idle legacy sessions (`initialize` and `notifications/initialized`, nothing more), just
//! opened and once parked; with a GET stream open on some of them; and after 2026-07-28
//! clients' requests (which hold no session).

use crate::{process, served, stack, tenant};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_tests::legacy;

#[derive(Debug, clap::Args)]
pub(crate) struct Sessions {
    /// Idle sessions open at each step, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000")]
    counts: Vec<usize>,
    /// Sessions that then open a GET stream each (one connection each).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// 2026-07-28 requests (`tools/list`, no session) sent at the end.
    #[arg(long, default_value_t = 10_000)]
    modern: usize,
    /// Parked sessions called (twice each) to measure what bringing one back costs.
    #[arg(long, default_value_t = 2_000)]
    returns: usize,
    /// Clients opening sessions at once (each on one kept-alive connection).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The worker's cap on sessions in memory (`SWITCHYARD_MAX_SESSIONS`).
    #[arg(long, default_value_t = 100_000)]
    cap: usize,
    /// Seconds before an idle session is parked (`SWITCHYARD_SESSION_PARK_AFTER`).
    #[arg(long, default_value_t = 30)]
    park_after: u64,
}

/// Opens `n` idle sessions at `endpoint` over `concurrency` kept-alive connections; their
/// ids.
async fn open(endpoint: &str, key: &str, n: usize, concurrency: usize) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (endpoint, key, next) = (endpoint.to_owned(), key.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let session = legacy::Session::try_open(&http, &endpoint, &key).await;
                ids.push(session.expect("initialize was refused").id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

/// Calls `echo` once on each of `ids` at `endpoint`, 32 at a time; the worker CPU it took
/// per call, in microseconds.
async fn call_each(worker: &process::Process, endpoint: &str, key: &str, ids: &[String]) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(ids.to_vec());
    let cpu = worker.cpu();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (endpoint, key, next, ids) = (
            endpoint.to_owned(),
            key.to_owned(),
            next.clone(),
            ids.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = client();
            while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                let session = legacy::Session::of(&http, &endpoint, &key, id.clone());
                let answer = session.call("echo", json!({"text": "back"})).await;
                assert!(answer.ok(), "a call on a session failed: {answer:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (worker.cpu() - cpu).as_secs_f64() * 1e6 / ids.len().max(1) as f64
}

/// RSS of `worker` once it has settled (read until two readings a second apart agree
/// within 1%, after one of the worker's sweeps, which update its session gauges), in KiB.
async fn settled_rss(worker: &process::Process) -> u64 {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut last = worker.rss_kib();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = worker.rss_kib();
        if now.abs_diff(last) * 100 <= last {
            return now;
        }
        last = now;
    }
}

fn row(what: &str, sessions: usize, base: u64, now: u64, live: f64) -> f64 {
    let per = now.saturating_sub(base) as f64 / sessions.max(1) as f64;
    println!(
        "| {what} | {sessions} | {live} | {:.1} | {:.1} | {per:.1} |",
        base as f64 / 1024.0,
        now as f64 / 1024.0
    );
    per
}

const LIVE: &str = "switchyard_worker_sessions_live";
/// Requests served after parking, before memory is read.
const ACTIVITY: usize = 2000;

/// Waits until the worker holds no session in memory (all parked), then serves `activity`
/// requests without a session: the allocator hands freed memory back to the system lazily,
/// when the threads that freed it next allocate, as they do in service.
async fn all_parked(worker: &process::Process, endpoint: &str, key: &str, activity: usize) {
    loop {
        if worker.metric(LIVE).await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    busy(endpoint, key, activity).await;
}

type Stream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A GET stream on session `id`.
async fn open_stream(http: &reqwest::Client, endpoint: &str, key: &str, id: &str) -> Stream {
    let r = legacy::Session::of(http, endpoint, key, id.to_owned())
        .stream()
        .await;
    assert!(r.status().is_success(), "GET refused: {}", r.status());
    Box::pin(r.bytes_stream())
}

/// Whether `stream` has ended (read through what it has sent so far).
async fn ends(stream: &mut Stream) -> bool {
    use futures::StreamExt as _;
    loop {
        match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => return true,
            Err(_) => return false,
        }
    }
}

/// Serves `activity` requests without a session.
async fn busy(endpoint: &str, key: &str, activity: usize) {
    let http = client();
    for _ in 0..activity {
        assert!(
            switchyard_tests::modern::list(&http, endpoint, key)
                .await
                .ok()
        );
    }
}

pub(crate) async fn sessions(s: Sessions) {
    let (stack, upstream) = stack(0).await;
    let key = tenant(&stack.cp, &upstream.url, 100_000, 100_000).await;
    let settings = [
        ("SWITCHYARD_MAX_SESSIONS", s.cap.to_string()),
        ("SWITCHYARD_SESSION_PARK_AFTER", s.park_after.to_string()),
        (
            "SWITCHYARD_MAX_CONNECTIONS",
            (s.streams + s.returns + 1000).to_string(),
        ),
    ];
    let bin = process::sibling_binary();
    let worker = process::worker_with(&bin, &stack, None, &settings).await;
    let endpoint = format!("http://127.0.0.1:{}/t/bench/mcp", worker.port);
    served(&endpoint, &key).await;
    all_parked(&worker, &endpoint, &key, ACTIVITY).await;
    let base = settled_rss(&worker).await;
    let live = || async { worker.metric(LIVE).await.unwrap_or(f64::NAN) };
    println!(
        "| step | sessions | live in memory | RSS before MiB | RSS after MiB | KiB per session |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ids = Vec::new();
    for &count in &s.counts {
        let more = count.saturating_sub(ids.len());
        ids.extend(open(&endpoint, &key, more, s.concurrency).await);
        let now = settled_rss(&worker).await;
        row(
            "idle sessions, just opened",
            ids.len(),
            base,
            now,
            live().await,
        );
        all_parked(&worker, &endpoint, &key, ACTIVITY).await;
        let now = settled_rss(&worker).await;
        row("idle sessions, parked", ids.len(), base, now, live().await);
    }
    // The GET streams, with every session parked: the worker's memory before and after is
    // what the streams cost on top of the parked sessions.
    let before = settled_rss(&worker).await;
    let streams = s.streams.min(ids.len());
    let http = client();
    let mut open_streams = Vec::new();
    for id in &ids[..streams] {
        open_streams.push(open_stream(&http, &endpoint, &key, id).await);
    }
    let now = settled_rss(&worker).await;
    let quiet = worker
        .metric("switchyard_worker_quiet_streams")
        .await
        .unwrap_or(f64::NAN);
    row(
        &format!("a GET stream on each ({quiet} quiet streams)"),
        streams,
        before,
        now,
        live().await,
    );
    drop(open_streams);
    let returning = &ids[..s.returns.min(ids.len())];
    let back = call_each(&worker, &endpoint, &key, returning).await;
    let again = call_each(&worker, &endpoint, &key, returning).await;
    println!(
        "worker CPU per call, {} sessions: {back:.0} us on a parked session (brought back), \
         {again:.0} us on the same session in memory",
        returning.len()
    );
    // The same sessions, each now holding an upstream session, with a GET stream open
    // on each past the park delay: a session stays in memory only if an upstream session
    // of it may send it something unasked (which the test upstream does not announce), so
    // the worker parks them and ends their streams; each client then opens its GET stream
    // again, as clients do. Compared with all of them parked and their connections closed
    // afterwards.
    let mut open_streams = Vec::new();
    for id in returning {
        open_streams.push(open_stream(&http, &endpoint, &key, id).await);
    }
    tokio::time::sleep(Duration::from_secs(s.park_after + 3)).await;
    busy(&endpoint, &key, ACTIVITY).await;
    let mut ended = 0;
    for (stream, id) in open_streams.iter_mut().zip(returning) {
        if ends(stream).await {
            ended += 1;
            *stream = open_stream(&http, &endpoint, &key, id).await;
        }
    }
    let listening = settled_rss(&worker).await;
    let (quiet, live_then) = (
        worker
            .metric("switchyard_worker_quiet_streams")
            .await
            .unwrap_or(f64::NAN),
        live().await,
    );
    drop(open_streams);
    all_parked(&worker, &endpoint, &key, ACTIVITY).await;
    let before = settled_rss(&worker).await;
    row(
        &format!(
            "called sessions, a GET stream on each past the park delay ({ended} ended by \
             the worker and opened again: {quiet} quiet streams)"
        ),
        returning.len(),
        before,
        listening,
        live_then,
    );
    let modern = client();
    for _ in 0..s.modern {
        assert!(
            switchyard_tests::modern::list(&modern, &endpoint, &key)
                .await
                .ok()
        );
    }
    let now = settled_rss(&worker).await;
    row(
        "2026-07-28 requests (no session)",
        s.modern,
        before,
        now,
        live().await,
    );
}
