//! The authorization server's metadata (RFC 8414), at the well-known path inserted before
//! the issuer's path. Like the protected resource metadata, it depends only on the path and
//! the public URL, never on whether the tenant exists.

use super::scopes;
use crate::http::{App, Endpoint};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// The metadata document of `endpoint`'s authorization server.
pub fn document(endpoint: &Endpoint) -> serde_json::Value {
    let issuer = endpoint.issuer();
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": scopes::ALL,
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    })
}

async fn metadata(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    match app.endpoint_of(&headers, &tenant) {
        Some(endpoint) => (
            [(http::header::CACHE_CONTROL, "public, max-age=300")],
            axum::Json(document(&endpoint)),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not_found"})),
        )
            .into_response(),
    }
}

/// The metadata route, readable from any browser origin.
pub(super) fn routes() -> axum::Router<Arc<App>> {
    let cors = crate::http::readable_anywhere();
    axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server/t/{tenant}",
            axum::routing::get(metadata),
        )
        .layer(cors)
}
