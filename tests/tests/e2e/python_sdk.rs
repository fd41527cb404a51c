//! The official MCP Python SDK (PyPI `mcp`) as a tenant's client, through two workers, in its
//! default mode (MCP 2026-07-28, stateless) and in legacy mode (initialize and sessions), and
//! rmcp's client beside it.
//! `SWITCHYARD_TEST_PYTHON` names a Python with the SDK installed (scripts/test.sh makes one).

use std::time::Duration;
use switchyard_tests::admin::*;
use switchyard_tests::upstream::TestUpstream;
use switchyard_tests::{Stack, eventually, mcp_connector};

fn python() -> String {
    std::env::var("SWITCHYARD_TEST_PYTHON").expect(
        "SWITCHYARD_TEST_PYTHON is not set: run `bash scripts/test.sh`, which installs the MCP Python SDK",
    )
}

fn script() -> String {
    format!("{}/../examples/call_tool.py", env!("CARGO_MANIFEST_DIR"))
}

async fn run(url: &str, key: &str, mode: &str, tool: &str, args: &str) -> (bool, String) {
    let out = tokio::process::Command::new(python())
        .arg(script())
        .args([url, tool, args, "--mode", mode])
        .env("SWITCHYARD_KEY", key)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn python_sdk_in_both_modes_and_rmcp_list_and_call_tools_through_two_workers() {
    let stack = Stack::builder().workers(2).start().await;
    let (cp, workers) = (&stack.cp, &stack.workers);
    let up = TestUpstream::start("A").await;
    cp.create_tenant("acme").await;
    cp.connectors()
        .create_connector(mcp_connector("acme", "alpha", &up.url, &[]))
        .await
        .unwrap();
    let key = cp
        .keys_api()
        .create_api_key(CreateApiKeyRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    for (worker, mode, protocol) in [
        (&workers[0], "auto", "2026-07-28"),
        (&workers[1], "legacy", "2025-11-25"),
        (&workers[1], "auto", "2026-07-28"),
        (&workers[0], "legacy", "2025-11-25"),
    ] {
        let url = worker.endpoint("acme");
        // The first attempts may come before the worker has the new key.
        let out = eventually(
            Duration::from_secs(30),
            &format!("the python client in {mode} mode succeeds"),
            || async {
                let (ok, out) = run(&url, &key, mode, "alpha__echo", r#"{"text": "hello"}"#).await;
                if ok { Ok(out) } else { Err(out) }
            },
        )
        .await;
        assert!(
            out.contains(&format!("\"protocol\": \"{protocol}\"")),
            "{mode}: {out}"
        );
        assert!(out.contains("\"alpha__whoami\""), "{mode}: {out}");
        assert!(
            out.contains("{\"is_error\": false, \"text\": \"hello\"}"),
            "{mode}: {out}"
        );
    }
    // rmcp's client, on each worker.
    for worker in workers {
        let client = switchyard_tests::mcp_client(&worker.endpoint("acme"), &key)
            .await
            .unwrap();
        let echoed = client
            .peer()
            .call_tool(
                rmcp::model::CallToolRequestParams::new("alpha__echo").with_arguments(
                    serde_json::json!({"text": "rmcp"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            )
            .await
            .unwrap();
        assert_eq!(echoed.content[0].as_text().unwrap().text, "rmcp");
    }
}
