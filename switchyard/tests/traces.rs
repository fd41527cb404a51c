//! Traces as an SRE collects them: the real `switchyard worker` binary exporting to an
//! OTLP/gRPC receiver the test runs, serving a tenant whose connector is a real MCP server.
//! A call makes one trace from the client's `traceparent` through the worker's request,
//! authentication, admission and call spans to each upstream attempt, and the upstream
//! receives the attempt's `traceparent`; retries are events of the call's span; the trace
//! id is on the call's audit record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;
use switchyard_tests::admin::RetryPolicy;
use switchyard_tests::otlp::{OtlpReceiver, Span};
use switchyard_tests::upstream::{Faults, TestUpstream};
use switchyard_tests::{Stack, assert_eventually, legacy, modern};

/// A `switchyard` process; killed when dropped.
struct Process {
    child: Child,
    /// The two ports it was told to listen on.
    ports: (SocketAddr, SocketAddr),
    /// Its log (standard error, and standard output).
    log: tempfile::NamedTempFile,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Starts the `switchyard` command `args` gives for two free ports, and waits until
/// `ready`. A port found free here can be taken (by another test's listener, or as the
/// source port of a connection) before the process binds it: a process that exits before
/// it is ready is started again on fresh ports, and the logs of those that exited are in
/// the failure message if none is ready in time.
async fn start(
    args: impl Fn(SocketAddr, SocketAddr) -> Vec<String>,
    ready: impl AsyncFn(&Process) -> bool,
    within: Duration,
) -> Process {
    let deadline = std::time::Instant::now() + within;
    let mut exits = Vec::new();
    while exits.len() < 3 {
        let ports = (free_port(), free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args(ports.0, ports.1))
            .env("SWITCHYARD_LOG", "warn")
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("the switchyard binary runs");
        // Killed however the test ends from here.
        let mut process = Process { child, ports, log };
        loop {
            if ready(&process).await {
                return process;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                exits.push(format!("{status}: {}", process.log()));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready within {within:?}: {}; earlier exits: {exits:?}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("exited before it was ready: {exits:#?}");
}

/// A `switchyard worker` on the stack's NATS exporting to `otlp`, once it is ready.
async fn start_worker(stack: &Stack, otlp: &OtlpReceiver) -> Process {
    switchyard_tests::install_tls();
    let http = reqwest::Client::new();
    let args = |mcp: SocketAddr, metrics: SocketAddr| {
        let mut args = vec!["worker".to_owned()];
        for (flag, value) in [
            ("--nats-url", stack.nats().url()),
            (
                "--policy-key",
                stack.cp.keys.policy.primary().to_base64().to_string(),
            ),
            ("--http-listen", mcp.to_string()),
            ("--metrics-listen", metrics.to_string()),
            ("--upstream-allow", "127.0.0.0/8".to_owned()),
            ("--otlp-endpoint", otlp.endpoint()),
        ] {
            args.extend([flag.to_owned(), value]);
        }
        args
    };
    let ready = async |worker: &Process| {
        http.get(format!("http://{}/readyz", worker.ports.1))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    start(args, ready, Duration::from_secs(30)).await
}

/// A client of `worker`'s endpoint for tenant acme, once it serves acme.
async fn serving(worker: &Process, key: &str) -> (reqwest::Client, String) {
    let endpoint = format!("http://{}/t/acme/mcp", worker.ports.0);
    let http = reqwest::Client::new();
    assert_eventually!(
        modern::call(&http, &endpoint, key, "up__echo", json!({"text": "hi"}))
            .await
            .ok(),
        Duration::from_secs(30),
        "the worker serves acme"
    );
    (http, endpoint)
}

/// The spans of trace `trace`, once one named `name` has arrived.
async fn trace_with(otlp: &OtlpReceiver, trace: &str, name: &str) -> Vec<Span> {
    assert_eventually!(
        otlp.spans()
            .iter()
            .any(|s| s.trace_id == trace && s.name == name),
        Duration::from_secs(30),
        "span {name} of trace {trace} received"
    );
    otlp.spans()
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} in {spans:#?}");
    found[0]
}

/// The `traceparent` the upstream received last, as (trace id, parent span id).
fn upstream_parent(up: &TestUpstream) -> (String, String) {
    let seen = up.seen_headers();
    let value = seen
        .iter()
        .rev()
        .find_map(|h| h.get("traceparent"))
        .expect("the upstream received a traceparent")
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_one_trace_from_the_client_through_the_worker_to_the_upstream() {
    let otlp = OtlpReceiver::start().await;
    let stack = Stack::builder().workers(0).start().await;
    let up = TestUpstream::start("traced").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    let worker = start_worker(&stack, &otlp).await;
    let (http, endpoint) = serving(&worker, &key).await;

    // The client's trace is continued.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{client_trace}-00f067aa0ba902b7-01");
    let answer = modern::request_with(
        &http,
        &endpoint,
        &key,
        ("tools/call", Some("up__echo")),
        json!({"name": "up__echo", "arguments": {"text": "traced"}}),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(answer.text(), Some("traced"), "{answer:?}");
    let spans = trace_with(&otlp, client_trace, "mcp.request").await;
    let spans = if named(&spans, "upstream.attempt").is_empty() {
        trace_with(&otlp, client_trace, "upstream.attempt").await
    } else {
        spans
    };
    let request = one(&spans, "mcp.request");
    assert_eq!(request.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(request.service, "switchyard-worker");
    assert_eq!(request.attributes["tenant"], "acme");
    for step in ["authenticate", "admit", "tools/call up__echo"] {
        assert_eq!(
            one(&spans, step).parent_span_id,
            request.span_id,
            "{step} under the request"
        );
    }
    // The call's span is named for what was called.
    let call = one(&spans, "tools/call up__echo");
    assert_eq!(call.attributes["mcp.method.name"], "tools/call");
    let attempt = one(&spans, "upstream.attempt");
    assert_eq!(attempt.parent_span_id, call.span_id);
    assert_eq!(
        upstream_parent(&up),
        (client_trace.to_owned(), attempt.span_id.clone()),
        "the upstream is told the attempt's span"
    );
    // No secret rides along: the key appears in no span.
    for s in &spans {
        assert!(!s.attributes.values().any(|v| v.contains(&key)), "{s:?}");
    }

    // A session client's call, sent straight to the upstream session, is traced too.
    let session = legacy::Session::open(&http, &endpoint, &key).await;
    let r = session.call("up__echo", json!({"text": "session"})).await;
    assert_eq!(r.text(), Some("session"), "{r:?}");
    let (trace, parent) = upstream_parent(&up);
    let spans = trace_with(&otlp, &trace, "upstream.attempt").await;
    assert_eq!(one(&spans, "upstream.attempt").span_id, parent);

    // The call's audit record names its trace.
    let filter = switchyard_control_plane::store::AuditFilter {
        chain: "acme".into(),
        limit: 100,
        ..Default::default()
    };
    assert_eventually!(
        stack
            .cp
            .store
            .audit_events(&filter)
            .await
            .unwrap()
            .iter()
            .any(|r| r.kind == "call" && r.trace_id == client_trace),
        Duration::from_secs(30),
        "the call's audit record names trace {client_trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_events_of_the_calls_span_each_attempt_a_span_of_its_own() {
    let otlp = OtlpReceiver::start().await;
    let stack = Stack::builder().workers(0).start().await;
    let up = TestUpstream::start("flaky").await;
    stack.tenant("acme").await;
    let mut req = switchyard_tests::mcp_connector("acme", "up", &up.url, &[]);
    req.connector.as_mut().unwrap().retry = Some(RetryPolicy {
        max_attempts: Some(3),
        initial_backoff_ms: Some(5),
        max_backoff_ms: Some(20),
        retry_idempotent_tools: Some(true),
    });
    stack.cp.connectors().create_connector(req).await.unwrap();
    let key = stack.key("acme").await;
    let worker = start_worker(&stack, &otlp).await;
    let (http, endpoint) = serving(&worker, &key).await;
    up.set_faults(Faults {
        reset_before: 1.0,
        ..Default::default()
    });
    let trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let failed = modern::request_with(
        &http,
        &endpoint,
        &key,
        ("tools/call", Some("up__record_idempotent")),
        json!({"name": "up__record_idempotent", "arguments": {"nonce": "n1"}}),
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
    )
    .await;
    assert!(
        !failed.ok() || failed.body["result"]["isError"] == true,
        "{failed:?}"
    );
    let name = "tools/call up__record_idempotent";
    let spans = trace_with(&otlp, trace, name).await;
    let call = one(&spans, name);
    assert!(call.events.iter().any(|e| e == "retry"), "{call:?}");
    assert!(call.attributes.contains_key("error.type"), "{call:?}");
    let attempts = named(&spans, "upstream.attempt");
    assert!(attempts.len() >= 2, "{spans:#?}");
    assert!(attempts.iter().all(|a| a.parent_span_id == call.span_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_and_policy_publishes_are_traced() {
    let otlp = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = |grpc: SocketAddr, http: SocketAddr| {
        let mut args = vec!["dev".to_owned()];
        for (flag, value) in [
            ("--grpc-listen", grpc.to_string()),
            ("--http-listen", http.to_string()),
            ("--otlp-endpoint", otlp.endpoint()),
            ("--data-dir", data.display().to_string()),
        ] {
            args.extend([flag.to_owned(), value]);
        }
        args
    };
    let started = async |dev: &Process| dev.log().contains("Switchyard dev is running");
    let dev = start(args, started, Duration::from_secs(60)).await;
    let grpc = dev.ports.0;
    let created = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--server", &format!("http://{grpc}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--otlp-endpoint", &otlp.endpoint()])
        .args(["tenant", "create", "acme"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert_eventually!(
        otlp.spans().iter().any(|s| s.name == "policy.publish"),
        Duration::from_secs(30),
        "the publish traced"
    );
    let spans = otlp.spans();
    let call = spans
        .iter()
        .find(|s| s.name.ends_with("TenantService/CreateTenant"))
        .unwrap_or_else(|| panic!("no CreateTenant span in {spans:#?}"));
    assert_eq!(call.service, "switchyard-dev");
    assert!(call.parent_span_id.is_empty(), "{call:?}");
    let publish = spans.iter().find(|s| s.name == "policy.publish").unwrap();
    assert_eq!(publish.attributes["tenant"], "acme");
    // The change's audit record names the admin call's trace.
    let listed = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--server", &format!("http://{grpc}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["audit", "list", "--tenant", "acme", "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let created = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "CreateTenant")
        .unwrap_or_else(|| panic!("no CreateTenant record in {listed}"));
    assert_eq!(created["trace_id"], call.trace_id.as_str(), "{created}");
    // Operator commands export nothing of their own, whatever they are told.
    assert!(
        spans.iter().all(|s| s.service == "switchyard-dev"),
        "{spans:#?}"
    );
}

#[test]
fn an_otlp_endpoint_that_is_not_an_http_url_is_refused_before_anything_starts() {
    // A forgotten scheme parses as a URL of scheme `collector`; it must not run untraced.
    for bad in ["collector:4317", "ftp://collector:4317", "not a url"] {
        let flag = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["worker", "--nats-url", "nats://127.0.0.1:1"])
            .args(["--otlp-endpoint", bad])
            .output()
            .unwrap();
        let env = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["worker", "--nats-url", "nats://127.0.0.1:1"])
            .env("SWITCHYARD_OTLP_ENDPOINT", bad)
            .output()
            .unwrap();
        for out in [flag, env] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
            assert!(stderr.contains("--otlp-endpoint"), "{bad}: {stderr}");
        }
    }
}
