//! An HTTP fake of the Kubernetes API, for testing the namespace reconciler where no API
//! server can run: the REST paths of core and grouped resources (cluster-scoped and
//! namespaced), GET, LIST with label selectors, WATCH (events after a resourceVersion, then
//! live), server-side apply (PATCH, recorded with its field manager), create, replace with
//! optimistic concurrency, and DELETE. A test can edit objects behind the reconciler's back
//! (drift), mark a Deployment ready, make the next requests fail (409 or 5xx), and expire
//! every open watch (410). It serves on several listeners that share one state, so a test
//! can tell which client (replica) made each write.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

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

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "namespaces" => "Namespace",
        "resourcequotas" => "ResourceQuota",
        "limitranges" => "LimitRange",
        "networkpolicies" => "NetworkPolicy",
        "serviceaccounts" => "ServiceAccount",
        "secrets" => "Secret",
        "services" => "Service",
        "deployments" => "Deployment",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "httproutes" => "HTTPRoute",
        "leases" => "Lease",
        _ => "Unknown",
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn labels_match(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k.trim()] == v.trim(),
        None => false,
    })
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

/// Splits a request path into the object's key (name empty for a collection), or `None`
/// when it is no resource path.
fn parse_path(path: &str) -> Option<Key> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, resource, name) = match rest {
        ["namespaces", ns, resource] => (Some(*ns), *resource, ""),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, *name),
        [resource] => (None, *resource, ""),
        [resource, name] => (None, *resource, *name),
        _ => return None,
    };
    Some(Key {
        api,
        resource: resource.into(),
        namespace: namespace.map(str::to_owned),
        name: name.into(),
    })
}

async fn handle(
    State((shared, listener)): State<(Shared, usize)>,
    method: Method,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(rest) = uri.path().strip_prefix("/fake/ready/") {
        // A control route for scripts: /fake/ready/NAMESPACE/DEPLOYMENT?replicas=N.
        let Some((namespace, name)) = rest.split_once('/') else {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/fake/ready/NAMESPACE/NAME",
            );
        };
        let replicas: u32 = query
            .get("replicas")
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let fake = KubeFake {
            urls: Vec::new(),
            shared: shared.clone(),
        };
        let k = key("apis/apps/v1", "deployments", Some(namespace), name);
        if fake.get(&k).is_none() {
            return status(StatusCode::NOT_FOUND, "NotFound", "no such deployment");
        }
        fake.set_ready(&k, replicas);
        return StatusCode::NO_CONTENT.into_response();
    }
    let Some(key) = parse_path(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    if method == Method::GET && key.name.is_empty() {
        return if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
            watch(&shared, &key, &query)
        } else {
            list(&shared, &key, &query)
        };
    }
    if method == Method::GET {
        let mut inner = shared.inner.lock().unwrap();
        let found = inner.objects.get(&key).cloned();
        inner.requests.push(Request {
            listener,
            method: method.to_string(),
            key: key.clone(),
            field_manager: None,
            status: if found.is_some() { 200 } else { 404 },
        });
        return match found {
            Some(o) => axum::Json(o).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{} {:?} not found", key.resource, key.name),
            ),
        };
    }
    let field_manager = query.get("fieldManager").cloned();
    let mut inner = shared.inner.lock().unwrap();
    let mut request = Request {
        listener,
        method: method.to_string(),
        key: key.clone(),
        field_manager: field_manager.clone(),
        status: 200,
    };
    if !inner.failures.is_empty() {
        let code = inner.failures.remove(0);
        request.status = code;
        inner.requests.push(request);
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = if code == StatusCode::CONFLICT {
            "Conflict"
        } else {
            "InternalError"
        };
        return status(code, reason, "injected failure");
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let response = match method {
        Method::PATCH => {
            let apply = headers
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
            match (apply, field_manager.as_deref(), parsed) {
                (true, Some(_), Some(applied)) => {
                    let existing = inner.objects.get(&key).cloned();
                    let mut object = applied;
                    let (uid, created, status_part) = match &existing {
                        Some(e) => (
                            e["metadata"]["uid"].clone(),
                            e["metadata"]["creationTimestamp"].clone(),
                            e.get("status").cloned(),
                        ),
                        None => (
                            json!(uuid::Uuid::new_v4().to_string()),
                            json!("2026-01-01T00:00:00Z"),
                            None,
                        ),
                    };
                    object["metadata"]["uid"] = uid;
                    object["metadata"]["creationTimestamp"] = created;
                    if let Some(ns) = &key.namespace {
                        object["metadata"]["namespace"] = json!(ns);
                    }
                    if let Some(s) = status_part {
                        object["status"] = s;
                    }
                    let unchanged = existing.as_ref().is_some_and(|e| {
                        let mut e = e.clone();
                        e["metadata"]["resourceVersion"] = Value::Null;
                        let mut o = object.clone();
                        o["metadata"]["resourceVersion"] = Value::Null;
                        e == o
                    });
                    if unchanged {
                        axum::Json(existing.unwrap_or_default()).into_response()
                    } else {
                        inner.rv += 1;
                        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
                        let kind = if existing.is_some() {
                            "MODIFIED"
                        } else {
                            "ADDED"
                        };
                        inner.objects.insert(key.clone(), object.clone());
                        shared.record(&mut inner, kind, &key, object.clone());
                        axum::Json(object).into_response()
                    }
                }
                _ => status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "only server-side apply with a field manager is served",
                ),
            }
        }
        Method::POST => match parsed {
            Some(mut object) => {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = Key {
                    name,
                    ..key.clone()
                };
                request.key = key.clone();
                if inner.objects.contains_key(&key) {
                    status(StatusCode::CONFLICT, "AlreadyExists", "already exists")
                } else {
                    inner.rv += 1;
                    object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
                    inner.objects.insert(key.clone(), object.clone());
                    shared.record(&mut inner, "ADDED", &key, object.clone());
                    (StatusCode::CREATED, axum::Json(object)).into_response()
                }
            }
            None => status(StatusCode::BAD_REQUEST, "BadRequest", "no body"),
        },
        Method::PUT => match (parsed, inner.objects.get(&key).cloned()) {
            (Some(mut object), Some(existing)) => {
                if object["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"]
                {
                    status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified",
                    )
                } else {
                    inner.rv += 1;
                    object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
                    inner.objects.insert(key.clone(), object.clone());
                    shared.record(&mut inner, "MODIFIED", &key, object.clone());
                    axum::Json(object).into_response()
                }
            }
            (_, None) => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
            (None, _) => status(StatusCode::BAD_REQUEST, "BadRequest", "no body"),
        },
        Method::DELETE => match inner.objects.remove(&key) {
            Some(object) => {
                inner.rv += 1;
                // A namespace takes its objects with it.
                if key.resource == "namespaces" && key.namespace.is_none() {
                    let inside: Vec<Key> = inner
                        .objects
                        .keys()
                        .filter(|k| k.namespace.as_deref() == Some(key.name.as_str()))
                        .cloned()
                        .collect();
                    for k in inside {
                        if let Some(o) = inner.objects.remove(&k) {
                            shared.record(&mut inner, "DELETED", &k, o);
                        }
                    }
                }
                shared.record(&mut inner, "DELETED", &key, object.clone());
                axum::Json(object).into_response()
            }
            None => status(StatusCode::NOT_FOUND, "NotFound", "not found"),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not served",
        ),
    };
    request.status = response.status().as_u16();
    inner.requests.push(request);
    response
}

fn in_collection(collection: &Key, key: &Key) -> bool {
    key.api == collection.api
        && key.resource == collection.resource
        && (collection.namespace.is_none() || key.namespace == collection.namespace)
}

fn list(shared: &Shared, collection: &Key, query: &HashMap<String, String>) -> Response {
    let inner = shared.inner.lock().unwrap();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|(k, o)| {
            in_collection(collection, k) && labels_match(o, query.get("labelSelector"))
        })
        .map(|(_, o)| o.clone())
        .collect();
    let api_version = collection
        .api
        .trim_start_matches("api/")
        .trim_start_matches("apis/");
    axum::Json(json!({
        "apiVersion": api_version,
        "kind": format!("{}List", kind_of(&collection.resource)),
        "metadata": {"resourceVersion": inner.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn watch(shared: &Shared, collection: &Key, query: &HashMap<String, String>) -> Response {
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let selector = query.get("labelSelector").cloned();
    // Subscribed under the lock: no event falls between the backlog and the live stream.
    let (backlog, expired, live) = {
        let inner = shared.inner.lock().unwrap();
        let live = shared.events.subscribe();
        let oldest = inner
            .events
            .first()
            .map_or(inner.rv, |e| e.rv.saturating_sub(1));
        let expired = since < oldest && since != 0;
        let backlog: Vec<Event> = inner
            .events
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        (backlog, expired, live)
    };
    let after = backlog.last().map_or(since, |e| e.rv);
    let gone = || {
        json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410}})
    };
    let collection = collection.clone();
    let matches = move |e: &Event| {
        in_collection(&collection, &e.key) && labels_match(&e.object, selector.as_ref())
    };
    let line = |v: Value| Ok::<_, std::io::Error>(axum::body::Bytes::from(format!("{v}\n")));
    if expired {
        return Response::new(Body::from_stream(futures::stream::iter([line(gone())])));
    }
    let live = tokio_stream::wrappers::BroadcastStream::new(live);
    let mut expire = shared.expire.subscribe();
    let matches_live = matches.clone();
    let first = futures::stream::iter(backlog.into_iter().filter(move |e| matches(e)))
        .map(move |e| line(json!({"type": e.kind, "object": e.object})));
    let rest = live
        .filter_map(move |e| {
            let keep = e.ok().filter(|e| e.rv > after && matches_live(e));
            async move { keep }
        })
        .map(move |e| line(json!({"type": e.kind, "object": e.object})))
        .take_until(async move {
            let _ = expire.changed().await;
        })
        .chain(futures::stream::once(async move { line(gone()) }));
    Response::new(Body::from_stream(first.chain(rest)))
}
