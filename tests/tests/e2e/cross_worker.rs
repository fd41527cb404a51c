//! Sessions and tenants across workers: a legacy session started on one worker continues on
//! another, a session id is never a credential, and no combination of one tenant's key,
//! session ids and tool names reaches another tenant's upstream.

use std::time::Duration;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, eventually};

const DEADLINE: Duration = Duration::from_secs(20);
const VERSION: &str = "2025-06-18";

struct Reply {
    status: u16,
    session: Option<String>,
    body: String,
}

async fn send(endpoint: &str, key: &str, session: Option<&str>, body: serde_json::Value) -> Reply {
    let mut req = reqwest::Client::new()
        .post(endpoint)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", VERSION)
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        session: resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: resp.text().await.unwrap_or_default(),
    }
}

/// Opens a legacy session on `endpoint`; waits until the worker knows the key.
async fn open(endpoint: &str, key: &str) -> String {
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    });
    let reply = eventually(DEADLINE, "initialize", || async {
        let reply = send(endpoint, key, None, init.clone()).await;
        if reply.status == 200 {
            Ok(reply)
        } else {
            Err(format!("{} {}", reply.status, reply.body))
        }
    })
    .await;
    let session = reply.session.expect("a legacy session id");
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        send(endpoint, key, Some(&session), initialized)
            .await
            .status,
        202
    );
    session
}

fn call(id: u64, name: &str) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"text": "ping"}}})
}

fn list(id: u64) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

#[tokio::test]
async fn a_legacy_session_started_on_one_worker_continues_on_another() {
    let fleet = Stack::builder().workers(2).start().await;
    let up = TestUpstream::start("A").await;
    let key = fleet.tenant_with_connector("acme", "alpha", &up.url).await;
    // Both workers have the policy before the session moves between them.
    fleet.wait_serving("acme", &key).await;
    let (w1, w2) = (&fleet.workers[0], &fleet.workers[1]);
    let session = open(&w1.endpoint("acme"), &key).await;

    let first = send(
        &w1.endpoint("acme"),
        &key,
        Some(&session),
        call(1, "alpha__echo"),
    )
    .await;
    assert!(first.body.contains("ping"), "{}", first.body);
    let listed = send(&w2.endpoint("acme"), &key, Some(&session), list(2)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("alpha__echo"), "{}", listed.body);
    let called = send(
        &w2.endpoint("acme"),
        &key,
        Some(&session),
        call(3, "alpha__whoami"),
    )
    .await;
    assert_eq!(called.status, 200, "{}", called.body);
    assert!(called.body.contains("upstream A"), "{}", called.body);
    // Back on the first worker, the same session still works.
    let again = send(
        &w1.endpoint("acme"),
        &key,
        Some(&session),
        call(4, "alpha__echo"),
    )
    .await;
    assert!(again.body.contains("ping"), "{}", again.body);
    // Both workers carried on the one upstream session opened for this client session.
    let upstream_sessions: std::collections::BTreeSet<String> = up
        .seen_headers()
        .iter()
        .filter_map(|h| h.get("mcp-session-id")?.to_str().ok().map(str::to_owned))
        .collect();
    assert_eq!(upstream_sessions.len(), 1, "{upstream_sessions:?}");
    let upstream_session = upstream_sessions.into_iter().next().unwrap();

    // Terminated on one worker, it is gone on both.
    let deleted = reqwest::Client::new()
        .delete(w2.endpoint("acme"))
        .bearer_auth(&key)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", VERSION)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for w in [w1, w2] {
        assert_eventually!(
            send(&w.endpoint("acme"), &key, Some(&session), list(5))
                .await
                .status
                == 404,
            DEADLINE,
            "terminated session refused by {}",
            w.endpoint("acme")
        );
    }
    // The client ended its session: the upstream session ends with it.
    assert_eventually!(
        reqwest::Client::new()
            .post(&up.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", VERSION)
            .header("mcp-session-id", &upstream_session)
            .json(&list(6))
            .send()
            .await
            .unwrap()
            .status()
            == 404,
        DEADLINE,
        "upstream session ended"
    );
}

#[tokio::test]
async fn no_combination_of_one_tenants_credentials_reaches_another_tenant() {
    let fleet = Stack::builder().workers(2).start().await;
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    let up_a = TestUpstream::start("A").await;
    let up_b = TestUpstream::start(&canary).await;
    let key_a = fleet
        .tenant_with_connector("tenant-a", "alpha", &up_a.url)
        .await;
    let key_b = fleet
        .tenant_with_connector("tenant-b", "bravo", &up_b.url)
        .await;
    // Both workers have both policies: a refusal below is never one of a policy on its way.
    fleet.wait_serving("tenant-a", &key_a).await;
    fleet.wait_serving("tenant-b", &key_b).await;
    let (w1, w2) = (&fleet.workers[0], &fleet.workers[1]);
    let session_a = open(&w1.endpoint("tenant-a"), &key_a).await;
    let session_b = open(&w2.endpoint("tenant-b"), &key_b).await;
    // B's own session works, and reaches B's upstream.
    let own = send(
        &w1.endpoint("tenant-b"),
        &key_b,
        Some(&session_b),
        call(1, "bravo__whoami"),
    )
    .await;
    assert!(own.body.contains(&canary), "control: {}", own.body);
    let calls_before = up_b.calls.load(std::sync::atomic::Ordering::SeqCst);

    let mut tried = 0;
    for w in [w1, w2] {
        for endpoint_tenant in ["tenant-a", "tenant-b", "tenant-c"] {
            for session in [None, Some(session_a.as_str()), Some(session_b.as_str())] {
                for tool in [
                    "bravo__whoami",
                    "bravo__echo",
                    "whoami",
                    "alpha__whoami",
                    "../tenant-b/bravo__whoami",
                ] {
                    for body in [call(7, tool), list(8)] {
                        let endpoint = w.endpoint(endpoint_tenant);
                        let r = send(&endpoint, &key_a, session, body).await;
                        tried += 1;
                        assert!(
                            !r.body.contains(&canary),
                            "{endpoint} {session:?} {tool}: {}",
                            r.body
                        );
                        if endpoint_tenant != "tenant-a" {
                            assert_eq!(r.status, 401, "A's key at {endpoint}");
                        }
                        if endpoint_tenant == "tenant-a" && session == Some(session_b.as_str()) {
                            assert_eq!(r.status, 404, "B's session with A's key");
                        }
                    }
                }
            }
        }
    }
    assert!(tried >= 180);
    assert_eq!(
        up_b.calls.load(std::sync::atomic::Ordering::SeqCst),
        calls_before,
        "B's upstream was never called for A"
    );
}

#[tokio::test]
async fn workers_announce_themselves_and_drop_out_when_they_stop() {
    use switchyard_bus::Fleet as _;
    let mut fleet = Stack::builder().workers(2).start().await;
    let members = switchyard_bus::NatsFleet::new(
        fleet.nats().client().await,
        switchyard_bus::FLEET_BUCKET,
        Duration::from_secs(3),
    );
    assert_eventually!(
        members
            .members()
            .await
            .is_ok_and(|m| m.len() == 2 && m.iter().all(|h| h.ready)),
        DEADLINE,
        "both workers heartbeat as ready"
    );
    fleet.workers.remove(0).shutdown().await;
    assert_eventually!(
        members.members().await.is_ok_and(|m| m.len() == 1),
        DEADLINE,
        "a stopped worker's heartbeat expires"
    );
}
