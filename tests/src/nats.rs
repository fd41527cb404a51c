//! A private nats-server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// A private nats-server (JetStream on) on a random port; killed when dropped. It can be
/// stopped and started again on the same port and storage, to test outages.
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
        server.spawn(None).await;
        server
    }

    async fn spawn(&self, port: Option<u16>) {
        let ports_dir = self.dir.path().join("ports");
        std::fs::create_dir_all(&ports_dir).unwrap();
        for f in std::fs::read_dir(&ports_dir).unwrap() {
            std::fs::remove_file(f.unwrap().path()).ok();
        }
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let child = std::process::Command::new("nats-server")
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg])
            .arg("-sd")
            .arg(self.dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let port = loop {
            let found = std::fs::read_dir(&ports_dir)
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .find_map(|text| {
                    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                    let url = v["nats"][0].as_str()?.to_owned();
                    url.rsplit(':').next()?.parse::<u16>().ok()
                });
            if let Some(p) = found {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        self.port.store(port, Ordering::SeqCst);
        *self.child.lock().unwrap() = Some(child);
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
        self.spawn(Some(port)).await;
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
