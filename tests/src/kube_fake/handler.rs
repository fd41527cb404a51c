//! Serving one request: the path's object key, reads, server-side applies, creates,
//! replaces with optimistic concurrency, deletes, injected failures and the control route.

use super::collections::{list, watch};
use super::{Key, KubeFake, Request, Shared, key};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
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

pub(super) async fn handle(
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
