//! `switchyard tenant usage --daily` as a billing export: calls, failures, upstream time
//! and refusals of today, as CSV from the real binary against a real stack; a bad range is
//! refused naming `from` or `to`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
mod common;

use common::{cli, stdout};
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, modern};

/// Today's row of the CSV export, by column name.
fn today_row(stack: &Stack, today: &str) -> std::collections::HashMap<String, String> {
    let out = cli(
        stack,
        &[
            "tenant", "usage", "acme", "--daily", "--from", today, "--to", today, "-o", "csv",
        ],
    );
    let mut reader = csv::Reader::from_reader(stdout(&out));
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let row = reader.records().next().expect("one day").unwrap();
    header
        .into_iter()
        .zip(row.iter().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_usage_exports_todays_calls_and_refusals_as_csv_and_refuses_bad_ranges() {
    let stack = Stack::builder()
        .worker_config(|c| c.refusal_tally_every = std::time::Duration::from_millis(300))
        .start()
        .await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_slow_key("acme", "up", &up.url).await;
    let http = reqwest::Client::new();
    let endpoint = stack.worker().endpoint("acme");
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..10 {
        let a = modern::call(&http, &endpoint, &key, "up__echo", json!({"text": "x"})).await;
        match a.status {
            200 if a.ok() => ok += 1,
            429 => refused += 1,
            _ => panic!("{a:?}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} answered, {refused} refused");
    let today =
        switchyard_control_plane::model::day_of(switchyard_control_plane::model::now_millis());
    let mut row: std::collections::HashMap<String, String>;
    assert_eventually!(
        {
            row = today_row(&stack, &today);
            row["REFUSALS"] == format!("rate_limited={refused}")
                && row["CALLS"].parse::<u64>().unwrap_or_default() >= ok
        },
        std::time::Duration::from_secs(30),
        "today's usage counted: {row:?}"
    );
    // wait_serving's own calls count too; each answered call here is among them.
    assert_eq!(row["DAY"], today);
    assert_eq!(row["FAILED"], "0", "{row:?}");
    assert!(row["UPSTREAM SECONDS"].parse::<f64>().is_ok(), "{row:?}");

    for (from, to, named) in [
        ("2026-13-01", "2026-12-31", "from"),
        ("2026-01-01", "2026-01-32", "to"),
        ("2026-02-01", "2026-01-01", "to"),
        ("2026-01-01", "2027-01-02", "to"),
    ] {
        let out = cli(
            &stack,
            &[
                "tenant", "usage", "acme", "--daily", "--from", from, "--to", to,
            ],
        );
        assert!(!out.status.success(), "{from}..{to} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("InvalidArgument") && stderr.contains(named),
            "{from}..{to}: {stderr}"
        );
    }
    let unknown = cli(
        &stack,
        &[
            "tenant", "usage", "ghost", "--daily", "--from", &today, "--to", &today,
        ],
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("NotFound"));
}
