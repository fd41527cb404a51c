//! A flood of wrong secrets for a key id anyone can see leaves the key's holder served and
//! costs a bounded number of argon2 checks.

use serde_json::json;
use std::time::Duration;
use switchyard_tests::modern::call;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, eventually};

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_known_key_id_spares_its_holder() {
    let stack = Stack::start().await;
    let up = TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    let worker = stack.worker();
    let endpoint = worker.endpoint("acme");
    let http = reqwest::Client::new();
    // The holder's key is verified (and cached) before the flood.
    eventually(DEADLINE, "the holder is served", || async {
        let a = call(&http, &endpoint, &key, "up__whoami", json!({})).await;
        if a.ok() {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    })
    .await;
    let before = worker
        .metric("switchyard_worker_key_checks_total{reason=\"rejected\"}")
        .await
        .unwrap_or(0.0);

    // The attacker knows the id (it is public) and guesses the secret, 200 times at once,
    // while the holder keeps calling.
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let guesses = (0..200).map(|i| {
        let wrong = format!("{prefix}_{}{:04}", &secret[..secret.len() - 4], i);
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move { call(&http, &endpoint, &wrong, "up__whoami", json!({})).await }
    });
    let holder = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(call(&http, &endpoint, &key, "up__whoami", json!({})).await);
        }
        answers
    };
    let (guessed, held) = tokio::join!(futures::future::join_all(guesses), holder);
    assert!(
        held.iter().all(|a| a.ok()),
        "the holder was refused: {held:?}"
    );
    assert!(guessed.iter().all(|a| !a.ok()), "a guess got in");
    let refused = guessed.iter().filter(|a| a.status == 429).count();
    let rejected = worker
        .metric("switchyard_worker_key_checks_total{reason=\"rejected\"}")
        .await
        .unwrap_or(0.0)
        - before;
    // The key id's burst of 10 failed checks, and what refills while the flood is sent
    // (one every 6 s); every other guess is refused without hashing.
    assert!(rejected <= 12.0, "{rejected} argon2 checks for one key id");
    assert!(
        refused >= 188,
        "{refused} of 200 guesses refused before hashing"
    );
    let reasons: Vec<_> = guessed
        .iter()
        .filter(|a| a.status == 429)
        .map(|a| a.body["error"]["data"]["reason"].clone())
        .collect();
    assert!(
        reasons.iter().all(|r| r == "too_many_attempts"),
        "{reasons:?}"
    );
}
