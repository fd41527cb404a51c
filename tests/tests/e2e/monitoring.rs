//! The chart's alert rules and Grafana dashboard against real scrapes: after a call, a
//! refusal by a limit and a failed authentication, every metric their expressions use is in
//! a worker's or the control plane's `/metrics`, so no alert or panel watches a name that
//! does not exist.

use serde_json::json;
use std::collections::BTreeSet;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, modern};

const CHART_FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/switchyard/files");

/// The `switchyard_…` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("switchyard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The names the alert rules' and the dashboard's expressions use.
fn watched() -> BTreeSet<String> {
    let alerts = std::fs::read_to_string(format!("{CHART_FILES}/alerts.yaml")).unwrap();
    let mut names: BTreeSet<String> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .flat_map(metric_names)
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CHART_FILES}/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            names.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        names.extend(metric_names(variable["query"].as_str().unwrap_or_default()));
    }
    names
}

/// Whether `scrape` has a sample of `name` (a series, not only its help text).
fn sampled(scrape: &str, name: &str) -> bool {
    scrape.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let answer = http.get(url).send().await.unwrap();
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_use_is_scraped() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_slow_key("acme", "up", &up.url).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let mut limited = false;
    for _ in 0..10 {
        let a = modern::call(&http, &endpoint, &key, "up__echo", json!({"text": "x"})).await;
        limited |= a.status == 429;
    }
    assert!(limited, "a call was refused by the rate");
    let guessed = modern::call(&http, &endpoint, "sy_nope_nope", "up__echo", json!({})).await;
    assert_eq!(guessed.status, 401);
    // Made-up tenants with a well-formed key take no series of their own.
    let (key_id, _) = switchyard_common::apikey::parse(&key).unwrap();
    let claimed = format!("sy_{}_{}", key_id.as_str(), "x".repeat(32));
    for ghost in ["ghost-1", "ghost-2"] {
        let endpoint = stack.worker().endpoint(ghost);
        let a = modern::call(&http, &endpoint, &claimed, "up__echo", json!({})).await;
        assert!(matches!(a.status, 401 | 429), "{a:?}");
    }

    let watched = watched();
    assert!(watched.len() >= 10, "{watched:?}");
    let cp_metrics = format!("http://{}/metrics", stack.cp.metrics);
    let mut missing: Vec<String>;
    assert_eventually!(
        {
            let worker = scrape(&http, &stack.worker().metrics_url("/metrics")).await;
            let cp = scrape(&http, &cp_metrics).await;
            missing = watched
                .iter()
                .filter(|n| !sampled(&worker, n) && !sampled(&cp, n))
                .cloned()
                .collect();
            assert!(
                !worker.contains("ghost-"),
                "a made-up tenant labels a series"
            );
            missing.is_empty()
        },
        std::time::Duration::from_secs(20),
        "every watched metric scraped; missing: {missing:?}"
    );
}
