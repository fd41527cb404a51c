//! An HTTP fake of the Kubernetes API, for testing the namespace reconciler where no API
//! server can run: the REST paths of core and grouped resources (cluster-scoped and
//! namespaced), GET, LIST with label selectors, WATCH (events after a resourceVersion, then
//! live), server-side apply (PATCH, recorded with its field manager), create, replace with
//! optimistic concurrency, and DELETE. A test can edit objects behind the reconciler's back
//! (drift), mark a Deployment ready, make the next requests fail (409 or 5xx), and expire
//! every open watch (410). It serves on several listeners that share one state, so a test
//! can tell which client (replica) made each write.
//!
//! Serving one request is in `handler`, LIST and WATCH of a collection in `collections`;
//! this module holds the shared state and what a test calls.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

mod collections;
mod handler;

use handler::handle;

/// Identifies an object: its API path prefix (`api/v1` or `apis/GROUP/VERSION`), resource,
/// namespace (none for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub api: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// A read of one object, or a write the fake accepted or refused: which listener it came
/// through, the method and path, and for applies the field manager.
#[derive(Debug, Clone)]
pub struct Request {
    pub listener: usize,
    pub method: String,
    pub key: Key,
    pub field_manager: Option<String>,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    events: Vec<Event>,
    requests: Vec<Request>,
    /// Writes to fail next, with this status.
    failures: Vec<u16>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Event>,
    expire: tokio::sync::watch::Sender<u64>,
}

/// The fake API server; stops with the test.
pub struct KubeFake {
    pub urls: Vec<String>,
    shared: Shared,
}

impl Shared {
    fn record(&self, inner: &mut Inner, event_kind: &'static str, key: &Key, object: Value) {
        let event = Event {
            rv: inner.rv,
            key: key.clone(),
            kind: event_kind,
            object,
        };
        inner.events.push(event.clone());
        let _ = self.events.send(event);
    }
}

impl KubeFake {
    /// Starts the fake on `listeners` loopback ports.
    pub async fn start(listeners: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        let shared = Shared {
            inner: Arc::default(),
            events,
            expire: tokio::sync::watch::Sender::new(0),
        };
        let mut urls = Vec::new();
        for index in 0..listeners {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            urls.push(format!("http://{addr}"));
            let app = axum::Router::new()
                .fallback(handle)
                .with_state((shared.clone(), index));
            tokio::spawn(async move {
                axum::serve(listener, app).await.ok();
            });
        }
        Self { urls, shared }
    }

    /// A kube client of listener `index`.
    pub fn client(&self, index: usize) -> kube::Client {
        let config = kube::Config::new(self.urls[index].parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        self.shared.inner.lock().unwrap().objects.get(key).cloned()
    }

    /// Every object of `resource` in `namespace` (all namespaces when `None`).
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<(Key, Value)> {
        let inner = self.shared.inner.lock().unwrap();
        inner
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .filter(|(k, _)| namespace.is_none() || k.namespace.as_deref() == namespace)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Puts `object` at `key` as another party would (no field manager of ours).
    pub fn put(&self, key: &Key, mut object: Value) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.rv += 1;
        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let kind = if inner.objects.contains_key(key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        inner.objects.insert(key.clone(), object.clone());
        self.shared.record(&mut inner, kind, key, object);
    }

    /// Changes the object at `key` behind the reconciler's back.
    pub fn edit(&self, key: &Key, change: impl FnOnce(&mut Value)) {
        let mut object = self.get(key).expect("the object to edit exists");
        change(&mut object);
        self.put(key, object);
    }

    /// Reports `ready` ready replicas for the Deployment at `key`.
    pub fn set_ready(&self, key: &Key, ready: u32) {
        self.edit(key, |d| {
            d["status"] = json!({"readyReplicas": ready, "replicas": ready})
        });
    }

    /// Makes the next writes (apply, create, replace, delete) fail with these statuses.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .failures
            .extend_from_slice(statuses);
    }

    /// Ends every open watch with 410 Expired, as an API server that compacted does.
    pub fn expire_watches(&self) {
        self.shared.expire.send_modify(|g| *g += 1);
        self.shared.inner.lock().unwrap().events.clear();
    }
}

/// A key for a namespaced object of a core or grouped API.
pub fn key(api: &str, resource: &str, namespace: Option<&str>, name: &str) -> Key {
    Key {
        api: api.into(),
        resource: resource.into(),
        namespace: namespace.map(str::to_owned),
        name: name.into(),
    }
}
