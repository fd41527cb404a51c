//! Python programs as real peers: the MCP Python SDK's server behind a fixture script, and
//! CPU load the test itself makes. `SWITCHYARD_TEST_PYTHON` names a Python with the SDK
//! installed (scripts/test.sh makes one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::AsyncBufReadExt as _;

/// The Python interpreter with the MCP SDK.
pub fn python() -> String {
    std::env::var("SWITCHYARD_TEST_PYTHON").expect(
        "SWITCHYARD_TEST_PYTHON is not set: run `bash scripts/test.sh`, which installs the MCP Python SDK",
    )
}

/// A fixture under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A Python MCP server from `tests/fixtures`, killed when dropped. The script binds its own
/// port and prints `url=...` once it listens.
pub struct PythonUpstream {
    pub url: String,
    _child: tokio::process::Child,
}

impl PythonUpstream {
    pub async fn start(script: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(fixture(script))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Python fixture starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next_line()
                .await
                .expect("the fixture's output is readable")
                .unwrap_or_else(|| panic!("{script} exited before printing its url"));
            if let Some(url) = line.strip_prefix("url=") {
                break url.to_owned();
            }
        };
        Self { url, _child: child }
    }
}

/// Keeps every CPU busy until dropped, so that what a test checks cannot depend on the
/// machine being idle.
pub struct BusyCpus {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyCpus {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for BusyCpus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().ok();
        }
    }
}

/// The MCP Python SDK's OAuth client (`tests/fixtures/oauth_client.py`) signing in at
/// `endpoint` and calling `tool`; it speaks in lines (see the script), and is killed when
/// dropped.
pub struct OAuthClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl OAuthClient {
    pub fn start(endpoint: &str, tool: &str, redirect_uri: &str) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(fixture("oauth_client.py"))
            .args([endpoint, tool, redirect_uri])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Python client starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// Its next line, if it says one within a minute.
    pub async fn line(&mut self) -> Option<String> {
        let next = self.lines.next_line();
        tokio::time::timeout(std::time::Duration::from_secs(60), next)
            .await
            .ok()?
            .ok()?
    }

    /// Tells it `line`: where the browser was sent back to.
    pub async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt as _;
        let line = format!("{line}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
    }

    /// Whether it ended well.
    pub async fn succeeded(mut self) -> bool {
        self.child.wait().await.is_ok_and(|s| s.success())
    }
}
