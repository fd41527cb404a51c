//! Signing in at the tenant's own OpenID Connect provider. Once the user consents on the
//! consent page, the built-in server sends them to the provider as its client there
//! (authorization code with PKCE S256, a nonce, and a state naming the sign-in); the
//! provider sends them back to `/t/{tenant}/oauth/callback`, where the sign-in is taken
//! once, the code exchanged, and the ID token checked (the provider's keys, `iss`, `aud`
//! the client, the nonce) and its role claim mapped. The callback must reach the browser
//! that consented: a cookie set with the redirect (SameSite=Lax, so that it comes back with
//! the provider's redirect) must match the one kept with the sign-in. The client then gets
//! a code of its own, for a grant whose tokens carry the user's role-claim values, mapped
//! again at every check: a user whose values no longer give a role, or a tenant that
//! changes its provider, ends the grant's tokens.

use super::authorize::{
    Code, Consented, SignIn, add_cookie, back, cookie, expired_page, issue_code,
};
use super::{AccessClaims, Actor, User, digest, page, random_id, scopes};
use crate::auth::tokens::{Endpoints, Provider, TokenError};
use crate::error::{Error, Result};
use crate::http::{App, Endpoint};
use crate::policy::{Role, Status, Tenant};
use crate::principal::Principal;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchyard_bus::RefusalKind;

const COOKIE: &str = "sy_federate";

/// A sign-in sent to the provider, kept under its state until the provider answers.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    signin: SignIn,
    /// The provider and the client at it the user was sent to.
    issuer: String,
    client_id: String,
    verifier: String,
    nonce: String,
    /// Digest of the browser's cookie.
    binding: String,
}

/// `tenant`'s provider, if users sign in there.
pub(super) fn provider(app: &App, tenant: &str) -> Option<Arc<Provider>> {
    app.policy(tenant)?
        .provider
        .clone()
        .filter(|p| !p.client_id.is_empty())
}

fn unreachable_page() -> Response {
    page::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this tenant's sign-in service cannot be reached; try again shortly",
    )
}

/// Where `provider` signs users in; or the page saying it cannot be reached.
pub(super) async fn endpoints(
    app: &App,
    provider: &Provider,
) -> std::result::Result<Endpoints, Response> {
    let tokens = app.auth().tokens().ok_or_else(unreachable_page)?;
    tokens.endpoints(&provider.issuer).await.map_err(|e| {
        tracing::warn!(issuer = %provider.issuer, error = %e, "the tenant's provider is unreachable");
        unreachable_page()
    })
}

fn callback_url(endpoint: &Endpoint) -> String {
    format!("{}/oauth/callback", endpoint.issuer())
}

fn pending_key(tenant: &str, state: &str) -> String {
    format!("{tenant}.federate.{state}")
}

/// The S256 challenge of `verifier`.
fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// Sends the user of consented sign-in `c` to `provider`, binding the sign-in to this
/// browser.
pub(super) async fn begin(c: &Consented<'_>, provider: &Provider) -> Response {
    let (app, tenant, endpoint) = (c.app, c.tenant, c.endpoint);
    let found = match endpoints(app, provider).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let Ok(mut url) = url::Url::parse(&found.authorization) else {
        return unreachable_page();
    };
    if !c.take().await {
        return expired_page();
    }
    let server = app.oauth();
    let (state, binding) = (random_id(), random_id());
    let pending = Pending {
        signin: c.signin.clone(),
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
        verifier: random_id(),
        nonce: random_id(),
        binding: digest(&binding),
    };
    let kept = match serde_json::to_vec(&pending) {
        Ok(bytes) => matches!(
            server
                .codes
                .create(&pending_key(tenant, &state), bytes.into())
                .await,
            Ok(true)
        ),
        Err(_) => false,
    };
    if !kept {
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sign-in is unavailable; try again shortly",
        );
    }
    let scope: Vec<&str> = std::iter::once("openid")
        .chain(provider.sign_in_scopes.iter().map(String::as_str))
        .collect();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &callback_url(endpoint))
        .append_pair("scope", &scope.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256");
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let path = format!("/t/{tenant}/oauth/callback");
    let cookie = format!("{COOKIE}={binding}; Path={path}; HttpOnly; SameSite=Lax; Max-Age=600");
    add_cookie(&mut resp, endpoint, &cookie);
    resp
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
pub struct Answer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    error: Option<String>,
    iss: Option<String>,
}

/// The sign-in `answer` names, taken once, if this browser began it.
async fn take(app: &App, tenant: &str, headers: &HeaderMap, answer: &Answer) -> Option<Pending> {
    if !super::plausible_id(&answer.state) {
        return None;
    }
    let server = app.oauth();
    let key = pending_key(tenant, &answer.state);
    let entry = server.codes.get(&key).await.ok()??;
    let pending: Pending = serde_json::from_slice(&entry.value).ok()?;
    if cookie(headers, COOKIE).map(digest) != Some(pending.binding.clone()) {
        return None;
    }
    matches!(server.codes.take(&key, entry.revision).await, Ok(true)).then_some(pending)
}

/// `GET /t/{tenant}/oauth/callback`: the provider sends the user back.
pub async fn callback(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::http::Peer>>,
    Query(answer): Query<Answer>,
) -> Response {
    let Some(endpoint) = app.endpoint_of(&headers, &tenant) else {
        return page::error(StatusCode::NOT_FOUND, "there is no such sign-in page");
    };
    let Some(pending) = take(&app, &tenant, &headers, &answer).await else {
        return expired_page();
    };
    let source = app.client_address(&headers, peer.as_deref());
    let s = &pending.signin;
    let issuer = endpoint.issuer();
    let finish =
        |params: &[(&str, &str)]| back(&s.redirect_uri, s.state.as_deref(), &issuer, params);
    let audit = |kind, reason, actor| {
        app.audit_authorization(&tenant, kind, reason, actor, &s.client_id, source);
    };
    if answer.error.is_some() {
        audit(
            RefusalKind::Authorization,
            "sign_in_declined",
            Actor::Nobody,
        );
        let why = "the sign-in at the identity provider did not succeed";
        return finish(&[("error", "access_denied"), ("error_description", why)]);
    }
    let (user, role) = match signed_in(&app, &tenant, &endpoint, &pending, &answer).await {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(tenant, error = %e, "a sign-in at the tenant's provider failed");
            audit(RefusalKind::AuthFailure, e.reason(), Actor::Nobody);
            let (error, why) = refusal(&e, &tenant);
            return finish(&[("error", error), ("error_description", &why)]);
        }
    };
    let granted = scopes::grant(&s.scope, role).unwrap_or_default();
    if granted.is_empty() {
        let why = "your role cannot grant what the client asks for";
        return finish(&[("error", "access_denied"), ("error_description", why)]);
    }
    let record = Code {
        client_id: s.client_id.clone(),
        redirect_uri: s.redirect_uri.clone(),
        code_challenge: s.code_challenge.clone(),
        scope: granted,
        key: String::new(),
        user: Some(user),
    };
    let server = app.oauth();
    let Some(code) = issue_code(server, &tenant, &record).await else {
        return finish(&[("error", "temporarily_unavailable")]);
    };
    server.used(&tenant, &s.client_id).await;
    if let Some(user) = &record.user {
        audit(
            RefusalKind::Authorization,
            "signed_in",
            Actor::User(&user.subject),
        );
    }
    finish(&[("code", &code)])
}

/// What the client is told of a failed sign-in.
fn refusal(e: &Error, tenant: &str) -> (&'static str, String) {
    match e {
        Error::IdentityProviderUnavailable => (
            "temporarily_unavailable",
            "the identity provider cannot be reached".to_owned(),
        ),
        Error::InsufficientScope(_) => (
            "access_denied",
            format!("your account has no role at {tenant}"),
        ),
        Error::Suspended(_) => ("access_denied", format!("{tenant} is suspended")),
        _ => (
            "access_denied",
            "the identity provider's answer could not be verified".to_owned(),
        ),
    }
}

/// The user the provider's `answer` to `pending` signs in, and their role: the code
/// exchanged at the provider the user was sent to, if it is still the tenant's, and the
/// ID token checked.
async fn signed_in(
    app: &App,
    tenant: &str,
    endpoint: &Endpoint,
    pending: &Pending,
    answer: &Answer,
) -> Result<(User, Role)> {
    let policy = app.policy(tenant).ok_or(Error::InvalidCredential)?;
    let provider = policy
        .provider
        .as_ref()
        .filter(|p| p.issuer == pending.issuer && p.client_id == pending.client_id)
        .ok_or(Error::InvalidCredential)?;
    // An answer naming another issuer is a mix-up (RFC 9207).
    if answer.iss.as_ref().is_some_and(|i| *i != provider.issuer) {
        return Err(Error::InvalidCredential);
    }
    let tokens = app
        .auth()
        .tokens()
        .ok_or(Error::IdentityProviderUnavailable)?;
    let unavailable = |e: TokenError| {
        tracing::warn!(tenant, error = %e, "the tenant's provider is unreachable");
        Error::IdentityProviderUnavailable
    };
    let found = tokens
        .endpoints(&provider.issuer)
        .await
        .map_err(unavailable)?;
    let callback = callback_url(endpoint);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", answer.code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("client_id", provider.client_id.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ];
    let (status, body) = tokens
        .exchange(&found.token, &form)
        .await
        .map_err(unavailable)?;
    let Some(id_token) = body["id_token"].as_str().filter(|_| status.is_success()) else {
        tracing::info!(tenant, %status, error = %body["error"], "the provider gave no ID token");
        return Err(Error::InvalidCredential);
    };
    let user = tokens
        .verify_id_token(provider, id_token, &pending.nonce)
        .await
        .map_err(|e| match e {
            TokenError::Invalid(why) => {
                tracing::info!(tenant, error = %why, "an ID token was refused");
                Error::InvalidCredential
            }
            TokenError::NoRole(claim) => Error::InsufficientScope(claim),
            TokenError::Unavailable(_) => unavailable(e),
        })?;
    if policy.status == Status::Suspended {
        return Err(Error::Suspended(policy.suspend_reason.clone()));
    }
    let role = provider
        .role_of(&user.values)
        .ok_or(Error::InvalidCredential)?;
    let user = User {
        issuer: provider.issuer.clone(),
        subject: user.subject,
        values: user.values,
    };
    Ok((user, role))
}

/// The caller an access token of a signed-in user is: the user, with the role their
/// claim values give under the tenant's current mapping, capped by `scope_role`. The
/// token dies when the tenant's provider is no longer the one the user signed in at, or
/// the values give no role any more.
pub(super) fn principal(
    tenant: &Tenant,
    claims: AccessClaims,
    scope_role: Role,
) -> Result<Principal> {
    let issuer = claims.idp.as_deref().unwrap_or_default();
    let role = mapped_role(tenant, issuer, &claims.idp_roles)?;
    Ok(Principal::signed_in(
        tenant.slug.clone(),
        claims.sub,
        role,
        scope_role,
    ))
}

/// Whether a grant of `user` still holds under `policy`: the same provider, and a role.
pub(super) fn holds(policy: &Tenant, user: &User) -> bool {
    mapped_role(policy, &user.issuer, &user.values).is_ok()
}

/// The role `values` of the role claim of a user of `issuer` give under `tenant`'s
/// current provider and mapping: refused when the provider is another now, and for want
/// of a role when none maps.
fn mapped_role(tenant: &Tenant, issuer: &str, values: &[String]) -> Result<Role> {
    let provider = tenant
        .provider
        .as_ref()
        .filter(|p| p.issuer == issuer)
        .ok_or(Error::InvalidCredential)?;
    provider
        .role_of(values)
        .ok_or_else(|| Error::InsufficientScope(provider.role_claim.clone()))
}
