//! A private nats-server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// A private nats-server (JetStream on) on a random port below the ephemeral range; killed
/// when dropped. It can be stopped and started again on the same port and storage, to test
/// outages.
pub struct NatsServer {
    /// Operator mode's keys and credentials, when it runs in it.
    pub accounts: Option<crate::nats_accounts::Accounts>,
    dir: tempfile::TempDir,
    port: AtomicU16,
    child: Mutex<Option<std::process::Child>>,
}

impl NatsServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(None, false).await
    }

    /// Like `start`, refusing messages over `max_payload` bytes when given, and in
    /// operator mode (clients need credentials) when `accounts`.
    pub(crate) async fn start_with(max_payload: Option<usize>, accounts: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let accounts = accounts.then(crate::nats_accounts::Accounts::generate);
        let mut config = format!("max_payload: {}\n", max_payload.unwrap_or(1024 * 1024));
        if let Some(a) = &accounts {
            config.push_str(&a.server_config);
        }
        std::fs::write(dir.path().join("nats.conf"), config).unwrap();
        let server = Self {
            accounts,
            dir,
            port: AtomicU16::new(0),
            child: Mutex::new(None),
        };
        // A port below the ephemeral range, so that while the server is stopped no
        // outgoing connection (a reconnecting client's own, say) can take it; another
        // test may bind the same one first, so a server that exits at once tries again.
        for _ in 0..10 {
            if server.spawn(crate::ports::unused_port()).await {
                return server;
            }
        }
        panic!("nats-server did not start on any of ten ports");
    }

    /// Starts the server on `port`; false if it exited without listening (the port taken).
    async fn spawn(&self, port: u16) -> bool {
        let ports_dir = self.dir.path().join("ports");
        std::fs::create_dir_all(&ports_dir).unwrap();
        for f in std::fs::read_dir(&ports_dir).unwrap() {
            std::fs::remove_file(f.unwrap().path()).ok();
        }
        let mut child = std::process::Command::new("nats-server")
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(self.dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // The ports file is written once the server listens.
        while std::fs::read_dir(&ports_dir).unwrap().next().is_none() {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if std::time::Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("nats-server did not start");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.port.store(port, Ordering::SeqCst);
        *self.child.lock().unwrap() = Some(child);
        true
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port.load(Ordering::SeqCst))
    }

    /// A client that keeps reconnecting across outages (with every permission, in
    /// operator mode).
    pub async fn client(&self) -> async_nats::Client {
        match &self.accounts {
            Some(a) => self.client_as(&a.fleet_creds, None).await,
            None => async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(self.url())
                .await
                .unwrap(),
        }
    }

    /// Puts each `(subject, payload)` on JetStream as it is, as a client holding NATS
    /// credentials for the subject could, waiting for each to be stored.
    pub async fn publish_raw(&self, messages: Vec<(&str, Vec<u8>)>) {
        let js = async_nats::jetstream::new(self.client().await);
        for (subject, payload) in messages {
            js.publish(subject.to_owned(), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    /// The buses a worker or control plane of a stack on this server uses.
    pub async fn buses(&self) -> switchyard_bus::Buses {
        switchyard_bus::Buses::nats(self.client().await, &test_buckets())
    }

    /// A client with credentials `creds`, its replies on `inbox` when given.
    pub async fn client_as(&self, creds: &str, inbox: Option<String>) -> async_nats::Client {
        self.client_seeing_refusals(creds, inbox, Arc::default())
            .await
    }

    /// Like `client_as`, keeping every error the server reports (permission violations
    /// among them) in `refusals`.
    pub async fn client_seeing_refusals(
        &self,
        creds: &str,
        inbox: Option<String>,
        refusals: Arc<Mutex<Vec<String>>>,
    ) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .credentials(creds)
            .unwrap()
            .event_callback(move |event| {
                let refusals = refusals.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        refusals.lock().unwrap().push(e.to_string());
                    }
                }
            });
        if let Some(prefix) = inbox {
            options = options.custom_inbox_prefix(prefix);
        }
        options.connect(self.url()).await.unwrap()
    }

    pub fn stop(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts again on the same port and storage.
    pub async fn restart(&self) {
        self.stop();
        let port = self.port.load(Ordering::SeqCst);
        assert!(
            self.spawn(port).await,
            "nats-server did not start again on port {port}"
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The buckets the test stack uses: the production names (so a `switchyard worker` process
/// can join a test stack), with short lives, so expiry is seen within a test.
pub(crate) fn test_buckets() -> switchyard_bus::Buckets {
    switchyard_bus::Buckets {
        policy: switchyard_bus::POLICY_BUCKET.into(),
        sessions: switchyard_bus::SESSION_BUCKET.into(),
        session_ttl: std::time::Duration::from_secs(600),
        fleet: switchyard_bus::FLEET_BUCKET.into(),
        heartbeat_ttl: std::time::Duration::from_secs(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_server_listens_below_the_ephemeral_range_and_a_taken_port_is_told_apart() {
        let server = NatsServer::start().await;
        let port = server.port.load(Ordering::SeqCst);
        let floor = crate::ports::ephemeral_floor();
        if floor > 11_000 {
            assert!(port < floor, "{port} is an ephemeral port (from {floor})");
        }

        // A second server on the first one's port exits, and the first is kept.
        let other = NatsServer {
            accounts: None,
            dir: tempfile::tempdir().unwrap(),
            port: AtomicU16::new(0),
            child: Mutex::new(None),
        };
        std::fs::write(other.dir.path().join("nats.conf"), "").unwrap();
        assert!(!other.spawn(port).await, "started on a port in use");
        assert!(other.child.lock().unwrap().is_none());
        server.client().await.flush().await.unwrap();
    }
}
