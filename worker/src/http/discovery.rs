//! How a tenant's AI clients learn where to sign in (RFC 9728): each endpoint has protected
//! resource metadata naming the tenant's authorization server, and a refusal of a missing
//! or bad credential points at it. What is answered depends only on the path and on where
//! the endpoint is reached, never on whether the tenant exists: probing the metadata tells
//! nobody which tenants there are.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use std::sync::Arc;
use switchyard_common::ids::TenantSlug;

use crate::oauth::scopes::ALL as SCOPES;

/// Where tenant `tenant`'s endpoint is reached, and the URLs that follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme and authority, no trailing slash (`https://mcp.example.com`).
    origin: String,
    tenant: TenantSlug,
}

impl Endpoint {
    /// Tenant `tenant`'s endpoint under the public URL or, with none configured, under the
    /// request's `host` when it is one this worker accepts (`hosts`: loopback then). `None`
    /// when `tenant` cannot be a tenant's name or the `Host` is not accepted.
    pub fn of(
        public: Option<&url::Url>,
        host: Option<&HeaderValue>,
        hosts: &[String],
        tenant: &str,
    ) -> Option<Self> {
        let tenant = TenantSlug::parse(tenant).ok()?;
        let origin = match (public, host) {
            (Some(url), _) => url.origin().ascii_serialization(),
            (None, Some(host)) if super::inline::allowed_authority(host, hosts) => {
                format!("http://{}", host.to_str().ok()?.to_ascii_lowercase())
            }
            (None, _) => return None,
        };
        Some(Self { origin, tenant })
    }

    /// The resource URL (RFC 8707) the tenant's access tokens are for.
    pub fn resource(&self) -> String {
        format!("{}/t/{}/mcp", self.origin, self.tenant)
    }

    /// The tenant's authorization server's issuer.
    pub fn issuer(&self) -> String {
        format!("{}/t/{}", self.origin, self.tenant)
    }

    /// Where the endpoint's protected resource metadata is (the well-known path inserted
    /// before the endpoint's path).
    pub fn metadata(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/t/{}/mcp",
            self.origin, self.tenant
        )
    }

    /// The `WWW-Authenticate` parameters that point a refused client at the metadata.
    pub fn challenge(&self) -> String {
        format!(
            "resource_metadata=\"{}\", scope=\"{}\"",
            self.metadata(),
            SCOPES.join(" ")
        )
    }

    /// The protected resource metadata document.
    pub fn document(&self) -> serde_json::Value {
        json!({
            "resource": self.resource(),
            "authorization_servers": [self.issuer()],
            "scopes_supported": SCOPES,
            "bearer_methods_supported": ["header"],
            "resource_name": format!("{} on Switchyard", self.tenant),
        })
    }
}

/// `GET /.well-known/oauth-protected-resource/t/{tenant}/mcp`.
pub(super) async fn protected_resource(
    State(app): State<Arc<super::App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    match app.endpoint(super::inline::single_host(&headers), &tenant) {
        Some(endpoint) => (
            [(http::header::CACHE_CONTROL, "public, max-age=300")],
            axum::Json(endpoint.document()),
        )
            .into_response(),
        None => not_found(),
    }
}

/// `GET /.well-known/oauth-protected-resource`: the root document a client falls back to
/// when a refusal named no metadata. Each tenant's endpoint is a resource of its own, so
/// there is no document for the host as a whole; every refusal names the tenant's.
pub(super) async fn root_metadata() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "error": "not_found",
            "error_description": "each tenant endpoint has its own metadata, at \
                /.well-known/oauth-protected-resource/t/{tenant}/mcp",
        })),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found"})),
    )
        .into_response()
}

/// What lets any browser origin read a metadata document: they hold nothing private, and
/// browser-based clients such as MCP Inspector fetch them.
pub fn readable_anywhere() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([http::Method::GET])
        .allow_headers(tower_http::cors::Any)
}

/// The metadata routes, readable from any browser origin.
pub(super) fn routes() -> axum::Router<Arc<super::App>> {
    use axum::routing::get;
    let cors = readable_anywhere();
    axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource/t/{tenant}/mcp",
            get(protected_resource),
        )
        .route("/.well-known/oauth-protected-resource", get(root_metadata))
        .layer(cors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> Option<HeaderValue> {
        Some(value.parse().unwrap())
    }

    #[test]
    fn the_public_url_decides_where_an_endpoint_is_whatever_the_host_says() {
        let public = url::Url::parse("https://MCP.example.com/").unwrap();
        let e = Endpoint::of(Some(&public), host("evil.example").as_ref(), &[], "acme").unwrap();
        assert_eq!(e.resource(), "https://mcp.example.com/t/acme/mcp");
        assert_eq!(e.issuer(), "https://mcp.example.com/t/acme");
        assert_eq!(
            e.metadata(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/t/acme/mcp"
        );
        let port = url::Url::parse("https://mcp.example.com:8443").unwrap();
        let e = Endpoint::of(Some(&port), None, &[], "acme").unwrap();
        assert_eq!(e.resource(), "https://mcp.example.com:8443/t/acme/mcp");
    }

    #[test]
    fn without_a_public_url_only_an_accepted_host_makes_an_endpoint() {
        let loopback = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let e = Endpoint::of(None, host("127.0.0.1:8080").as_ref(), &loopback, "acme").unwrap();
        assert_eq!(e.resource(), "http://127.0.0.1:8080/t/acme/mcp");
        assert!(Endpoint::of(None, host("evil.example").as_ref(), &loopback, "acme").is_none());
        assert!(Endpoint::of(None, None, &loopback, "acme").is_none());
    }

    #[test]
    fn a_name_no_tenant_can_have_makes_no_endpoint() {
        let public = url::Url::parse("https://mcp.example.com").unwrap();
        for bad in ["", "Acme", "a\"b", "a\r\nb", "../x", &"a".repeat(300)] {
            assert!(
                Endpoint::of(Some(&public), None, &[], bad).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_document_names_the_resource_and_the_tenants_own_issuer() {
        let public = url::Url::parse("https://mcp.example.com").unwrap();
        let doc = Endpoint::of(Some(&public), None, &[], "acme")
            .unwrap()
            .document();
        assert_eq!(doc["resource"], "https://mcp.example.com/t/acme/mcp");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://mcp.example.com/t/acme"])
        );
        assert_eq!(doc["scopes_supported"], json!(SCOPES));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}
