//! What upstreams send back while a call runs, carried across the worker and across protocol
//! eras: progress and log messages reach the session that made the call and no other, an
//! upstream's sampling and elicitation requests reach the right client, as requests on a
//! session client's stream or as input-required results for a 2026-07-28 client, and a
//! held call answers only the key that started it.

// Sampling and logging are deprecated for future protocol versions; the versions tested
// here have them.
#![allow(deprecated)]

use rmcp::model::*;
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt as _, NotificationContext, RequestContext, RoleClient,
    RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData as McpError};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, assert_eventually, install_tls};

const DEADLINE: Duration = Duration::from_secs(20);

/// A client that answers sampling and elicitation with fixed values and records what the
/// server tells it.
#[derive(Debug, Clone, Default)]
struct Answering {
    answer: String,
    logs: Arc<Mutex<Vec<String>>>,
    progress: Arc<Mutex<Vec<f64>>>,
}

impl ClientHandler for Answering {
    fn get_info(&self) -> ClientConfig {
        let caps = serde_json::from_value(json!({"sampling": {}, "elicitation": {}})).unwrap();
        ClientConfig::new(caps, Implementation::new("answering-client", "1.0.0"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": self.answer},
            "model": "test-model",
            "stopReason": "endTurn"
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        _params: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"name": self.answer}}))
                .unwrap(),
        )
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params.data.to_string());
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.progress);
    }
}

fn session_era() -> ClientLifecycleMode {
    ClientLifecycleMode::Initialize
}

fn modern_era() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

async fn connect(
    url: &str,
    key: &str,
    lifecycle: ClientLifecycleMode,
    handler: Answering,
) -> Result<RunningService<RoleClient, Answering>, String> {
    install_tls();
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(key.to_owned());
    let transport = StreamableHttpClientTransport::from_config(config);
    handler
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .map_err(|e| e.to_string())
}

fn params(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    let serde_json::Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name.to_owned()).with_arguments(map)
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_clients_calls_talk_back_to_that_client_only() {
    let env = Stack::start().await;
    let upstream = TestUpstream::start("a").await;
    let key = env
        .tenant_with_connector("chatty", "a", &upstream.url)
        .await;
    env.wait_serving("chatty", &key).await;
    let url = env.worker().endpoint("chatty");

    let alice = Answering {
        answer: "forty-two".into(),
        ..Default::default()
    };
    let bob = Answering::default();
    let alice_session = connect(&url, &key, session_era(), alice.clone())
        .await
        .unwrap();
    let _bob_session = connect(&url, &key, session_era(), bob.clone())
        .await
        .unwrap();

    let done = alice_session
        .peer()
        .call_tool(params("a__progress", json!({})))
        .await
        .unwrap();
    assert_eq!(text(&done), "done");
    // Every step of progress reaches the caller. (rmcp's client hands each notification to
    // its handler on a task of its own, so their order is checked on the wire, in
    // `ordering.rs`, not here.)
    assert_eventually!(
        alice.progress.lock().unwrap().len() == 2,
        DEADLINE,
        "progress reached the caller: {:?}",
        alice.progress.lock().unwrap()
    );
    let mut progress = alice.progress.lock().unwrap().clone();
    progress.sort_by(f64::total_cmp);
    assert_eq!(progress, [1.0, 2.0]);
    assert_eventually!(
        alice
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("log line from a")),
        DEADLINE,
        "the upstream's log message reached the caller's session"
    );

    // The upstream asks the caller's model; the caller's answer comes back in the result.
    let sampled = alice_session
        .peer()
        .call_tool(params("a__sample", json!({"question": "meaning of life?"})))
        .await
        .unwrap();
    assert_eq!(text(&sampled), "a says: forty-two");

    // The other session, on the same tenant and key, heard none of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bob.logs.lock().unwrap().is_empty(), "{:?}", bob.logs);
    assert!(bob.progress.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_client_answers_a_session_era_upstream_through_input_required_results() {
    let env = Stack::start().await;
    let upstream = TestUpstream::start_legacy("old").await;
    let key = env
        .tenant_with_connector("bridge", "old", &upstream.url)
        .await;
    env.wait_serving("bridge", &key).await;
    let other_key = env.cp.api_key("bridge").await;
    let url = env.worker().endpoint("bridge");
    let client = Answering {
        answer: "Paris".into(),
        ..Default::default()
    };
    let modern = connect(&url, &key, modern_era(), client.clone())
        .await
        .unwrap();
    assert_eq!(
        modern.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );

    // One round by hand: the worker holds the upstream's request and asks the client.
    let first = modern
        .peer()
        .call_tool_once(params(
            "old__sample",
            json!({"question": "capital of France?"}),
        ))
        .await
        .unwrap();
    let CallToolResponse::InputRequired(asked) = first else {
        panic!("expected an input-required result, got {first:?}")
    };
    let requests = asked.input_requests.clone().unwrap();
    let (input_key, request) = requests.iter().next().unwrap();
    assert!(
        matches!(request, InputRequest::CreateMessage(_)),
        "{request:?}"
    );
    let state = asked.request_state.clone().unwrap();
    let answer = json!({
        "role": "assistant", "content": {"type": "text", "text": "Paris"},
        "model": "test-model", "stopReason": "endTurn"
    });
    let mut answers = InputResponses::new();
    answers.insert(input_key.clone(), answer);
    let mut retry = params("old__sample", json!({"question": "capital of France?"}));
    retry.input_responses = Some(answers);
    retry.request_state = Some(state.clone());

    // Another key of the same tenant cannot continue the held call, nor can a changed state.
    let intruder = connect(&url, &other_key, modern_era(), Answering::default())
        .await
        .unwrap();
    let stolen = intruder.peer().call_tool_once(retry.clone()).await;
    assert!(
        stolen.is_err(),
        "another key continued a held call: {stolen:?}"
    );
    let mut tampered = retry.clone();
    tampered.request_state = Some(format!("{state}x"));
    assert!(modern.peer().call_tool_once(tampered).await.is_err());

    let done = modern.peer().call_tool_once(retry.clone()).await.unwrap();
    let CallToolResponse::Complete(result) = done else {
        panic!("expected the tool's result, got {done:?}")
    };
    assert_eq!(text(&result), "old says: Paris");
    // The held call is gone once answered.
    assert!(modern.peer().call_tool_once(retry).await.is_err());

    // rmcp's own client drives the rounds through its handler.
    let driven = modern
        .call_tool(params("old__sample", json!({"question": "again?"})))
        .await
        .unwrap();
    assert_eq!(text(&driven), "old says: Paris");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_client_answers_a_modern_upstreams_input_requests_on_its_stream() {
    let env = Stack::start().await;
    let upstream = TestUpstream::start_stateless("new").await;
    let key = env
        .tenant_with_connector("asker", "new", &upstream.url)
        .await;
    env.wait_serving("asker", &key).await;
    let client = Answering {
        answer: "Alice".into(),
        ..Default::default()
    };
    let session = connect(&env.worker().endpoint("asker"), &key, session_era(), client)
        .await
        .unwrap();
    assert_eq!(
        session.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2025_11_25
    );
    // The upstream answers input-required; the worker asks the client an elicitation on
    // the call's stream and sends the call again with the answer.
    let result = session
        .peer()
        .call_tool(params("new__ask_name", json!({})))
        .await
        .unwrap();
    assert_eq!(text(&result), "new greets Alice");
    assert_eq!(upstream.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_call_answered_in_rounds_counts_once_whether_answered_or_abandoned() {
    let env = Stack::start().await;
    let upstream = TestUpstream::start_legacy("old").await;
    let key = env
        .tenant_with_connector("rounds", "old", &upstream.url)
        .await;
    env.wait_serving("rounds", &key).await;
    let url = env.worker().endpoint("rounds");
    let modern = connect(&url, &key, modern_era(), Answering::default())
        .await
        .unwrap();
    let ask = || params("old__sample", json!({"question": "capital of France?"}));
    let usage = || env.cp.tool_calls("rounds");

    // Asked for input, then abandoned: counted once.
    let first = modern.peer().call_tool_once(ask()).await.unwrap();
    assert!(
        matches!(first, CallToolResponse::InputRequired(_)),
        "{first:?}"
    );
    assert_eventually!(usage().await == 1, DEADLINE, "an abandoned call counts");

    // Asked for input, then answered: counted once, not once per round.
    let CallToolResponse::InputRequired(asked) = modern.peer().call_tool_once(ask()).await.unwrap()
    else {
        panic!("expected an input-required result");
    };
    let (input_key, _) = asked
        .input_requests
        .as_ref()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let mut answers = InputResponses::new();
    answers.insert(
        input_key.clone(),
        json!({"role": "assistant", "content": {"type": "text", "text": "Paris"},
               "model": "test-model", "stopReason": "endTurn"}),
    );
    let mut retry = ask();
    retry.input_responses = Some(answers);
    retry.request_state = asked.request_state.clone();
    let done = modern.peer().call_tool_once(retry).await.unwrap();
    assert!(matches!(done, CallToolResponse::Complete(_)), "{done:?}");
    // A plain call after it: the counts arrive in order, so a second count of the
    // answered call would show before this one.
    modern
        .peer()
        .call_tool_once(params("old__whoami", json!({})))
        .await
        .unwrap();
    assert_eventually!(usage().await >= 3, DEADLINE, "the calls are counted");
    assert_eq!(usage().await, 3);
}
