//! Dynamic client registration (RFC 7591), for clients that do not publish a client ID
//! metadata document. Registrations are public clients only, kept under the tenant in the
//! shared registrations store, whose entries expire after a day; a sign-in moves one to
//! the grants store, where it lives as long as a refresh token may. Registering is
//! rate-limited per address, per tenant and per worker (`limits`), and is answered alike
//! whether or not the tenant exists (a registration for a tenant that does not exist is
//! kept, unused, until it expires).

use super::{now_secs, random_id};
use crate::http::App;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// How long a registration nobody signed in with lives.
pub const UNUSED_FOR: u64 = 86_400;
/// How long a registration lives after its last sign-in.
pub const USED_FOR: u64 = 90 * 86_400;
/// Redirect URIs a client may list, and how long each may be.
pub const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI: usize = 512;

/// A registered client, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Registered {
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// When it expires unless used, in seconds since the epoch.
    pub expires: u64,
}

#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// Whether `uri` may be a client's redirect URI: https, or http on a loopback host (native
/// apps, RFC 8252), without a fragment, at most 512 characters.
pub(super) fn redirect_allowed(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    uri.len() <= MAX_URI
        && url.fragment().is_none()
        && url.host().is_some()
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// Why `req` cannot be registered, as RFC 7591 names it.
fn invalid(req: &Request) -> Option<(&'static str, &'static str)> {
    if req.redirect_uris.is_empty() || req.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Some((
            "invalid_redirect_uri",
            "redirect_uris must list 1 to 10 URIs",
        ));
    }
    if !req.redirect_uris.iter().all(|u| redirect_allowed(u)) {
        return Some((
            "invalid_redirect_uri",
            "redirect URIs must be https, or http on a loopback host, without a fragment",
        ));
    }
    if req
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return Some((
            "invalid_client_metadata",
            "only public clients (token_endpoint_auth_method none) are registered",
        ));
    }
    None
}

/// `POST /t/{tenant}/oauth/register`.
pub async fn register(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::http::Peer>>,
    body: Result<axum::Json<Request>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if app.endpoint_of(&headers, &tenant).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "no such registration endpoint",
        );
    }
    let Ok(axum::Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "send the client's metadata as a JSON object",
        );
    };
    if let Some((code, why)) = invalid(&req) {
        return error(StatusCode::BAD_REQUEST, code, why);
    }
    let server = app.oauth();
    if !server
        .limits
        .register(&tenant, app.client_address(&headers, peer.as_deref()))
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many registrations; try again later",
        );
    }
    let name = super::clients::display_name(req.client_name.as_deref())
        .unwrap_or_else(|| "An unnamed client".to_owned());
    let id = random_id();
    let record = Registered {
        name: name.clone(),
        redirect_uris: req.redirect_uris.clone(),
        expires: now_secs() + UNUSED_FOR,
    };
    let stored = match serde_json::to_vec(&record) {
        Ok(bytes) => {
            server
                .registered
                .create(&client_key(&tenant, &id), bytes.into())
                .await
        }
        Err(_) => Ok(false),
    };
    if !matches!(stored, Ok(true)) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again shortly",
        );
    }
    created(&id, &name, &req.redirect_uris)
}

/// The answer to a registration: the client's ID and what was registered.
fn created(id: &str, name: &str, redirect_uris: &[String]) -> Response {
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(json!({
            "client_id": id,
            "client_id_issued_at": now_secs(),
            "client_name": name,
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        })),
    )
        .into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// Where registration `id` of `tenant` is kept.
pub(super) fn client_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.client.{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_https_or_loopback_without_fragments() {
        for good in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://localhost:8080/cb",
        ] {
            assert!(redirect_allowed(good), "{good}");
        }
        for bad in [
            "http://evil.example/cb",
            "https://a.example/cb#x",
            "javascript:alert(1)",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(!redirect_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn only_public_clients_with_redirects_are_registered() {
        let req = |uris: Vec<&str>, method: Option<&str>| Request {
            redirect_uris: uris.into_iter().map(str::to_owned).collect(),
            client_name: None,
            token_endpoint_auth_method: method.map(str::to_owned),
        };
        assert!(invalid(&req(vec!["https://a.example/cb"], Some("none"))).is_none());
        assert_eq!(
            invalid(&req(vec![], None)).unwrap().0,
            "invalid_redirect_uri"
        );
        assert_eq!(
            invalid(&req(
                vec!["https://a.example/cb"],
                Some("client_secret_basic")
            ))
            .unwrap()
            .0,
            "invalid_client_metadata"
        );
    }
}
