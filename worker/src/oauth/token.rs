//! The token endpoint: a code is redeemed once, by the client it was issued to, with the
//! redirect URI it was issued for and the PKCE verifier of its challenge; a refresh token
//! is rotated on every use by a compare-and-set on its grant, and one used again (stolen,
//! or replayed) revokes its whole grant. Tokens live as long as the tenant's settings say
//! and die with the API key they were granted with, or, for a user of the tenant's
//! provider, with the provider or the user's role. And revocation (RFC 7009).

use super::authorize::{Code, code_key};
use super::{AccessClaims, digest, now_secs, random_id};
use crate::http::App;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use switchyard_bus::grant::{Grant, grant_key};

/// Earlier refresh tokens of a grant remembered, to know one used again.
const REMEMBERED: usize = 32;

#[derive(Debug, Default, Deserialize)]
pub struct Form {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    refresh_token: String,
    resource: Option<String>,
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn refused(error: &str, description: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}

/// `POST /t/{tenant}/oauth/token`.
pub async fn token(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::http::Peer>>,
    form: Result<axum::Form<Form>, axum::extract::rejection::FormRejection>,
) -> Response {
    let source = app.client_address(&headers, peer.as_deref());
    let Ok(axum::Form(form)) = form else {
        return refused(
            "invalid_request",
            "send a form (application/x-www-form-urlencoded)",
        );
    };
    let Some(endpoint) = app.endpoint_of(&headers, &tenant) else {
        return refused("invalid_request", "no such token endpoint");
    };
    if form
        .resource
        .as_ref()
        .is_some_and(|r| *r != endpoint.resource())
    {
        return refused(
            "invalid_target",
            "the resource is not this tenant's endpoint",
        );
    }
    match form.grant_type.as_str() {
        "authorization_code" => redeem(&app, &tenant, &endpoint, &form).await,
        "refresh_token" => refresh(&app, &tenant, &endpoint, &form, source).await,
        _ => refused(
            "unsupported_grant_type",
            "authorization_code and refresh_token are supported",
        ),
    }
}

/// Whether `verifier` is a PKCE verifier whose S256 challenge is `challenge`.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    use sha2::Digest as _;
    let plausible = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    plausible && computed == challenge
}

async fn redeem(
    app: &App,
    tenant: &str,
    endpoint: &crate::http::Endpoint,
    form: &Form,
) -> Response {
    let invalid = || {
        refused(
            "invalid_grant",
            "the code is not valid, was used, or expired",
        )
    };
    let server = app.oauth();
    let key = code_key(tenant, &form.code);
    let Ok(Some(entry)) = server.codes.get(&key).await else {
        return invalid();
    };
    // Redeemed once, even by two requests at once.
    if !matches!(server.codes.take(&key, entry.revision).await, Ok(true)) {
        return invalid();
    }
    let Ok(code) = serde_json::from_slice::<Code>(&entry.value) else {
        return invalid();
    };
    if code.client_id != form.client_id
        || code.redirect_uri != form.redirect_uri
        || !pkce_matches(&form.code_verifier, &code.code_challenge)
    {
        return invalid();
    }
    let Some(policy) = app.policy(tenant) else {
        return invalid();
    };
    let (_, refresh_life) = policy.token_lifetimes;
    let (grant_id, secret) = (random_id(), random_id());
    let grant = Grant {
        client_id: code.client_id,
        key: code.key,
        user: code.user,
        scope: code.scope,
        refresh: digest(&secret),
        used: Vec::new(),
        expires: now_secs() + refresh_life.as_secs(),
        created: now_secs(),
    };
    let access = match access_token(app, &policy, endpoint, (&grant_id, &grant)).await {
        Ok(access) => access,
        Err(refusal) => return refusal,
    };
    let stored = match serde_json::to_vec(&grant) {
        Ok(bytes) => {
            server
                .grants
                .create(&grant_key(tenant, &grant_id), bytes.into())
                .await
        }
        Err(_) => Ok(false),
    };
    if !matches!(stored, Ok(true)) {
        return unavailable();
    }
    issued(access, &format!("{grant_id}.{secret}"), &grant)
}

fn unavailable() -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "temporarily_unavailable", "error_description": "try again shortly"}),
    )
}

/// An access token for `grant`, if the grant's key still lives, and how long it lives; or
/// the answer saying why not. Made before the grant is stored or rotated, so that a
/// failure here leaves the client's refresh token as it was.
async fn access_token(
    app: &App,
    policy: &crate::policy::Tenant,
    endpoint: &crate::http::Endpoint,
    (grant_id, grant): (&str, &Grant),
) -> Result<(String, u64), Response> {
    let alive = match &grant.user {
        Some(user) => super::federate::holds(policy, user),
        None => crate::principal::KeyId::parse(&grant.key)
            .ok()
            .and_then(|id| policy.keys.get(&id))
            .is_some_and(|k| k.expires.is_none_or(|e| e > std::time::SystemTime::now())),
    };
    if !alive {
        return Err(refused(
            "invalid_grant",
            "the API key or the role this grant was signed in with is gone",
        ));
    }
    let life = policy.token_lifetimes.0.as_secs();
    let now = now_secs();
    let claims = AccessClaims {
        iss: endpoint.issuer(),
        aud: endpoint.resource(),
        sub: grant
            .user
            .as_ref()
            .map_or_else(|| format!("key:{}", grant.key), |u| u.subject.clone()),
        exp: now + life,
        iat: now,
        client_id: grant.client_id.clone(),
        scope: grant.scope.clone(),
        key: grant.key.clone(),
        idp: grant.user.as_ref().map(|u| u.issuer.clone()),
        idp_roles: grant
            .user
            .as_ref()
            .map(|u| u.values.clone())
            .unwrap_or_default(),
        gid: grant_id.to_owned(),
        jti: random_id(),
    };
    let keys = &app.oauth().keys;
    match keys
        .sign(
            policy.slug.as_str(),
            policy.signing_keys_not_before,
            &claims,
        )
        .await
    {
        Ok(token) => Ok((token, life)),
        Err(e) => {
            tracing::warn!(tenant = %policy.slug, error = %e, "cannot sign an access token");
            Err(unavailable())
        }
    }
}

/// The token answer: `access` living `life` seconds, `refresh`, and the grant's scope.
fn issued((access, life): (String, u64), refresh: &str, grant: &Grant) -> Response {
    answer(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": life,
            "refresh_token": refresh,
            "scope": grant.scope,
        }),
    )
}

async fn refresh(
    app: &App,
    tenant: &str,
    endpoint: &crate::http::Endpoint,
    form: &Form,
    source: Option<std::net::IpAddr>,
) -> Response {
    let invalid = || refused("invalid_grant", "the refresh token is not valid");
    let Some((grant_id, secret)) = form
        .refresh_token
        .split_once('.')
        .filter(|(id, _)| super::plausible_id(id))
    else {
        return invalid();
    };
    let server = app.oauth();
    let key = grant_key(tenant, grant_id);
    let Ok(Some(entry)) = server.grants.get(&key).await else {
        return invalid();
    };
    let Ok(mut grant) = serde_json::from_slice::<Grant>(&entry.value) else {
        return invalid();
    };
    if grant.client_id != form.client_id {
        return invalid();
    }
    let presented = digest(secret);
    if grant.used.contains(&presented) {
        // Used before: whoever holds the current one may be a thief. End the grant.
        let _ = server.grants.delete(&key).await;
        reused(app, tenant, &grant, source);
        return refused(
            "invalid_grant",
            "the refresh token was used before; sign in again",
        );
    }
    if grant.refresh != presented || grant.expires <= now_secs() {
        return invalid();
    }
    let Some(policy) = app.policy(tenant) else {
        return invalid();
    };
    // Revoked, though its entry outlived the revocation (a failed delete).
    if policy.revoked_grants.contains(grant_id) {
        return invalid();
    }
    let access = match access_token(app, &policy, endpoint, (grant_id, &grant)).await {
        Ok(access) => access,
        Err(refusal) => return refusal,
    };
    let next = random_id();
    grant.used.push(presented);
    if grant.used.len() > REMEMBERED {
        grant.used.remove(0);
    }
    grant.refresh = digest(&next);
    let Ok(bytes) = serde_json::to_vec(&grant) else {
        return unavailable();
    };
    match server
        .grants
        .update(&key, bytes.into(), entry.revision)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            // Another request rotated this token first: the same token used twice.
            let _ = server.grants.delete(&key).await;
            reused(app, tenant, &grant, source);
            return refused(
                "invalid_grant",
                "the refresh token was used before; sign in again",
            );
        }
        Err(_) => return unavailable(),
    }
    issued(access, &format!("{grant_id}.{next}"), &grant)
}

/// A refresh token of `grant` used again, its grant ended: on the audit trail.
fn reused(app: &App, tenant: &str, grant: &Grant, source: Option<std::net::IpAddr>) {
    tracing::info!(
        tenant,
        "a refresh token was used again; its grant is revoked"
    );
    app.audit_authorization(
        tenant,
        switchyard_bus::RefusalKind::Authorization,
        "refresh_token_reused",
        super::Actor::of(grant),
        &grant.client_id,
        source,
    );
}

#[derive(Debug, Default, Deserialize)]
pub struct Revocation {
    #[serde(default)]
    token: String,
}

/// `POST /t/{tenant}/oauth/revoke` (RFC 7009): a refresh token ends its grant. Access
/// tokens end on their own within their lifetime. The answer is the same whatever was
/// sent, so it tells nothing about tokens.
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    form: Result<axum::Form<Revocation>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Ok(axum::Form(r)) = form
        && crate::principal::TenantSlug::parse(&tenant).is_ok()
        && let Some((grant_id, secret)) = r.token.split_once('.')
        && super::plausible_id(grant_id)
    {
        let key = grant_key(&tenant, grant_id);
        let server = app.oauth();
        if let Ok(Some(entry)) = server.grants.get(&key).await
            && let Ok(grant) = serde_json::from_slice::<Grant>(&entry.value)
            && (grant.refresh == digest(secret) || grant.used.contains(&digest(secret)))
        {
            let _ = server.grants.delete(&key).await;
        }
    }
    answer(StatusCode::OK, json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_matches_only_its_own_challenge() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(&verifier.replace('d', "e"), challenge));
        assert!(!pkce_matches("short", challenge));
        assert!(!pkce_matches(challenge, challenge));
    }
}
