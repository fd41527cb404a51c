//! An upstream restarted behind a connector: the next call through the worker succeeds at
//! once, in both client eras and both upstream eras, and a legacy client session carries on,
//! its resource subscriptions renewed on the new upstream session.

use serde_json::json;
use std::time::Duration;
use switchyard_tests::upstream::{Faults, TestUpstream};
use switchyard_tests::{Stack, assert_eventually, legacy, modern, within};

/// A third of the connectors' timeout (the default, 30 s): a call that waits for it fails
/// this.
const PROMPT: Duration = Duration::from_secs(10);
/// How long a policy change may take to reach the worker.
const DEADLINE: Duration = Duration::from_secs(20);

/// How many tools a listing right after a policy change shows (a new key changes the
/// tenant's policy, so the listing asks the upstream afresh).
async fn tools_listed(stack: &Stack, http: &reqwest::Client, endpoint: &str, key: &str) -> usize {
    let fresh_key = stack.key("acme").await;
    assert_eventually!(
        legacy::Session::try_open(http, endpoint, &fresh_key)
            .await
            .is_some(),
        DEADLINE,
        "the new key is served"
    );
    let listed = within(PROMPT, "a listing", modern::list(http, endpoint, key)).await;
    assert!(listed.ok(), "{listed:?}");
    listed.body["result"]["tools"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["name"] == "a__whoami").count())
}

/// A stack serving tenant acme's connector `a` at `up`: the stack, acme's key, a client
/// and the worker's endpoint.
async fn serving(up: &TestUpstream) -> (Stack, String, reqwest::Client, String) {
    let stack = Stack::start().await;
    let key = stack.tenant_with_connector("acme", "a", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let endpoint = stack.worker().endpoint("acme");
    (stack, key, reqwest::Client::new(), endpoint)
}

/// A call of `a__whoami` that must be answered within [`PROMPT`].
async fn whoami_within(what: &str, call: impl std::future::Future<Output = modern::Answer>) {
    let a = within(PROMPT, what, call).await;
    assert!(a.ok(), "{what} failed: {a:?}");
}

async fn carries_on_across_a_restart(mut up: TestUpstream, faults: Faults) {
    up.set_faults(faults);
    let (stack, key, http, endpoint) = serving(&up).await;
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let before = session.call("a__whoami", json!({})).await;
    assert!(before.ok(), "{before:?}");
    let direct = modern::call(&http, &endpoint, &key, "a__whoami", json!({})).await;
    assert!(direct.ok(), "{direct:?}");

    up.restart().await;
    assert_eq!(tools_listed(&stack, &http, &endpoint, &key).await, 1);

    whoami_within(
        "a legacy session's call after the restart",
        session.call("a__whoami", json!({})),
    )
    .await;
    whoami_within(
        "a 2026-07-28 call after the restart",
        modern::call(&http, &endpoint, &key, "a__whoami", json!({})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_session_upstream_serves_the_next_call() {
    carries_on_across_a_restart(TestUpstream::start_legacy("up").await, Faults::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_2026_upstream_serves_the_next_call() {
    let up = TestUpstream::start_stateless("up").await;
    carries_on_across_a_restart(up, Faults::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dual_era_upstream_serves_the_next_call() {
    carries_on_across_a_restart(TestUpstream::start("up").await, Faults::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_answering_400_for_lost_sessions_serves_the_next_call() {
    let lost_as_400 = Faults {
        lost_session_as_400: true,
        ..Faults::default()
    };
    carries_on_across_a_restart(TestUpstream::start_legacy("up").await, lost_as_400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_was_down_is_listed_as_soon_as_it_is_back() {
    let mut up = TestUpstream::start_legacy("up").await;
    let (stack, key, http, endpoint) = serving(&up).await;

    up.stop().await;
    assert_eq!(tools_listed(&stack, &http, &endpoint, &key).await, 0);
    up.resume().await;
    assert_eq!(tools_listed(&stack, &http, &endpoint, &key).await, 1);
    whoami_within(
        "a call once it is back",
        modern::call(&http, &endpoint, &key, "a__whoami", json!({})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sessions_subscriptions_are_renewed_after_a_restart() {
    let mut up = TestUpstream::start_legacy("up").await;
    let (_stack, key, http, endpoint) = serving(&up).await;
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let uri = "test://up/info";
    let r = session
        .post(
            json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe",
            "params": {"uri": uri}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(up.subscriptions().len(), 1, "{body}");

    up.restart().await;
    whoami_within(
        "a call after the restart",
        session.call("a__whoami", json!({})),
    )
    .await;
    let subs = up.subscriptions();
    assert_eq!(subs.len(), 2, "the subscription was not renewed: {subs:?}");
    assert_eq!(subs[1].0, uri);
    assert_ne!(subs[1].1, subs[0].1, "renewed on the new upstream session");
}
