//! LIST and WATCH of a collection: label selectors, the resourceVersion a watch starts
//! after, live events, and expiry (410).

use super::{Event, Key, Shared};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;

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

fn labels_match(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k.trim()] == v.trim(),
        None => false,
    })
}

fn in_collection(collection: &Key, key: &Key) -> bool {
    key.api == collection.api
        && key.resource == collection.resource
        && (collection.namespace.is_none() || key.namespace == collection.namespace)
}

pub(super) fn list(shared: &Shared, collection: &Key, query: &HashMap<String, String>) -> Response {
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

pub(super) fn watch(
    shared: &Shared,
    collection: &Key,
    query: &HashMap<String, String>,
) -> Response {
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
