//! The authorization endpoint: the request is checked (a client from its metadata
//! document or registration, a redirect URI it lists, PKCE S256), then kept as a sign-in
//! in progress (an address begins 30 a minute at most) and the consent page shown; the
//! page posts back one of the tenant's API keys. The sign-in is bound to the browser that
//! began it (a cookie that must match the form), so another site can neither post it nor
//! frame it. Until the redirect URI is known to be the client's, errors are shown, never
//! sent to it.

use super::page::{self, Consent};
use super::{digest, random_id, scopes};
use crate::http::{App, Endpoint};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchyard_bus::RefusalKind;

const COOKIE: &str = "sy_signin";
/// Longest `state` kept and sent back.
const MAX_STATE: usize = 512;

#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    state: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    #[serde(default)]
    scope: String,
    resource: Option<String>,
}

/// A sign-in in progress, kept for the consent page's post.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SignIn {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    /// Digest of the browser's cookie value.
    pub csrf: String,
}

/// An authorization code, kept under its digest until redeemed.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub key: String,
}

/// Where the client is sent back, with `params` and the issuer (RFC 9207).
fn back(
    redirect_uri: &str,
    state: Option<&str>,
    issuer: &str,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return page::error(StatusCode::BAD_REQUEST, "the redirect URI is not a URL");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn refuse(req: &Request, issuer: &str, error: &str, description: &str) -> Response {
    back(
        &req.redirect_uri,
        req.state.as_deref(),
        issuer,
        &[("error", error), ("error_description", description)],
    )
}

/// `GET /t/{tenant}/oauth/authorize`: checks the request and shows the consent page.
pub async fn page(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::http::Peer>>,
    Query(req): Query<Request>,
) -> Response {
    let Some(endpoint) = app.endpoint_of(&headers, &tenant) else {
        return page::error(StatusCode::NOT_FOUND, "there is no such sign-in page");
    };
    let server = app.oauth();
    if !server
        .limits
        .sign_in(app.client_address(&headers, peer.as_deref()))
    {
        return page::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many sign-ins from this address; wait a minute and try again",
        );
    }
    let client = match server.client(&tenant, &req.client_id).await {
        Ok(c) => c,
        Err(e) => return page::error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if !client.redirect_uris.contains(&req.redirect_uri) {
        return page::error(
            StatusCode::BAD_REQUEST,
            "the redirect URI is not one the client's metadata document lists",
        );
    }
    if req.state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return page::error(StatusCode::BAD_REQUEST, "the state parameter is too long");
    }
    if let Some((error, description)) = check(&req, &endpoint) {
        return refuse(&req, &endpoint.issuer(), error, &description);
    }
    let (signin, csrf) = (random_id(), random_id());
    let record = SignIn {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
        code_challenge: req.code_challenge.clone(),
        scope: req.scope.clone(),
        csrf: digest(&csrf),
    };
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the sign-in cannot be kept",
        );
    };
    // A tenant this worker does not serve gets the same page, and nothing is kept: its
    // form can only expire.
    let kept = app.policy(&tenant).is_none()
        || matches!(
            server
                .codes
                .create(&signin_key(&tenant, &signin), bytes.into())
                .await,
            Ok(true)
        );
    if !kept {
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sign-in is unavailable; try again shortly",
        );
    }
    let mut resp = show(&tenant, &record, &signin, &csrf, None);
    set_cookie(&mut resp, &endpoint, &tenant, &csrf);
    resp
}

/// The checks of a request whose redirect URI is the client's: what fails is sent back
/// to it, as an error code and a description.
fn check(req: &Request, endpoint: &Endpoint) -> Option<(&'static str, String)> {
    if req.response_type != "code" {
        return Some(("unsupported_response_type", "only code is supported".into()));
    }
    if req.code_challenge_method != "S256" || !plausible_challenge(&req.code_challenge) {
        return Some(("invalid_request", "PKCE with S256 is required".into()));
    }
    if let Err(scopes::Unknown(s)) = scopes::grant(&req.scope, crate::policy::Role::Admin) {
        return Some(("invalid_scope", format!("unknown scope {s}")));
    }
    if req
        .resource
        .as_ref()
        .is_some_and(|r| *r != endpoint.resource())
    {
        let why = "the resource is not this tenant's endpoint";
        return Some(("invalid_target", why.into()));
    }
    None
}

/// The consent page for sign-in `signin`.
fn show(tenant: &str, s: &SignIn, signin: &str, csrf: &str, problem: Option<&str>) -> Response {
    let asked = if s.scope.trim().is_empty() {
        scopes::ALL.to_vec()
    } else {
        s.scope.split(' ').filter(|x| !x.is_empty()).collect()
    };
    let redirect = url::Url::parse(&s.redirect_uri).ok();
    let host = redirect
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let origin = redirect.map_or_else(String::new, |u| u.origin().ascii_serialization());
    page::consent(&Consent {
        tenant,
        client_name: &s.client_name,
        redirect_host: &host,
        redirect_origin: &origin,
        scopes: &asked,
        signin,
        csrf,
        problem,
    })
}

fn set_cookie(resp: &mut Response, endpoint: &Endpoint, tenant: &str, csrf: &str) {
    let secure = if endpoint.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={csrf}; Path=/t/{tenant}/oauth; HttpOnly; SameSite=Strict; Max-Age=600{secure}"
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

fn signin_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.signin.{id}")
}

pub(super) fn code_key(tenant: &str, code: &str) -> String {
    format!("{tenant}.code.{}", digest(code))
}

/// A code challenge of the form S256 gives: 43 base64url characters.
fn plausible_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Deserialize)]
pub struct Form {
    #[serde(default)]
    signin: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    decision: String,
}

/// The browser's sign-in cookie.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn expired_page() -> Response {
    page::error(
        StatusCode::BAD_REQUEST,
        "this sign-in expired or was not started in this browser; start again from your client",
    )
}

/// The sign-in a consent post names, if this browser began it on this server's own page.
async fn load(
    app: &App,
    tenant: &str,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(SignIn, switchyard_bus::Versioned), Response> {
    // Only this server's own page may post here.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin")
    {
        return Err(page::error(
            StatusCode::FORBIDDEN,
            "this form must be sent from its own page",
        ));
    }
    if cookie(headers) != Some(form.csrf.as_str())
        || form.csrf.is_empty()
        || !super::plausible_id(&form.signin)
    {
        return Err(expired_page());
    }
    let key = signin_key(tenant, &form.signin);
    let Ok(Some(entry)) = app.oauth().codes.get(&key).await else {
        return Err(expired_page());
    };
    match serde_json::from_slice::<SignIn>(&entry.value) {
        Ok(signin) if signin.csrf == digest(&form.csrf) => Ok((signin, entry)),
        _ => Err(expired_page()),
    }
}

/// The key `api_key` is of `tenant`, and its role; or why not, and what to tell the user.
async fn signed_in(
    app: &App,
    tenant: &str,
    api_key: &str,
    client: Option<std::net::IpAddr>,
) -> Result<(crate::principal::KeyId, crate::policy::Role), (&'static str, String)> {
    use crate::error::Error;
    let policy = app.policy(tenant).ok_or(Error::InvalidCredential);
    let checked = match &policy {
        Ok(p) => app.auth().key(p, api_key, client).await,
        Err(_) => Err(Error::InvalidCredential),
    };
    match (checked, &policy) {
        (Ok(id), Ok(p)) => {
            let role = p
                .keys
                .get(&id)
                .map_or(crate::policy::Role::Unspecified, |k| k.role);
            Ok((id, role))
        }
        (Err(e @ (Error::TooManyAttempts(_) | Error::AuthBusy)), _) => Err((
            e.reason(),
            "too many tries; wait a minute and try again".to_owned(),
        )),
        (Err(e @ Error::Suspended(_)), _) => Err((e.reason(), e.to_string())),
        _ => Err((
            Error::InvalidCredential.reason(),
            format!("that is not a valid API key of {tenant}"),
        )),
    }
}

/// A new code for `record`, kept until redeemed; `None` when it cannot be kept.
async fn issue_code(server: &super::Server, tenant: &str, record: &Code) -> Option<String> {
    let code = random_id();
    let bytes = serde_json::to_vec(record).ok()?;
    let key = code_key(tenant, &code);
    matches!(server.codes.create(&key, bytes.into()).await, Ok(true)).then_some(code)
}

/// `POST /t/{tenant}/oauth/authorize`: the consent page's answer.
pub async fn consent(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    peer: Option<axum::Extension<crate::http::Peer>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Form>,
) -> Response {
    let Some(endpoint) = app.endpoint_of(&headers, &tenant) else {
        return page::error(StatusCode::NOT_FOUND, "there is no such sign-in page");
    };
    let (signin, entry) = match load(&app, &tenant, &headers, &form).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let server = app.oauth();
    let key = signin_key(&tenant, &form.signin);
    let expired = expired_page;
    let issuer = endpoint.issuer();
    let finish = |params: &[(&str, &str)]| {
        back(
            &signin.redirect_uri,
            signin.state.as_deref(),
            &issuer,
            params,
        )
    };
    let client = app.client_address(&headers, peer.as_deref());
    let audit = |kind, reason, key: Option<&str>| {
        app.audit_authorization(&tenant, kind, reason, key, &signin.client_id, client);
    };
    if form.decision != "allow" {
        if matches!(server.codes.take(&key, entry.revision).await, Ok(true)) {
            audit(RefusalKind::Authorization, "sign_in_declined", None);
            return finish(&[
                ("error", "access_denied"),
                ("error_description", "the user declined"),
            ]);
        }
        return expired();
    }
    let (key_id, role) = match signed_in(&app, &tenant, form.api_key.trim(), client).await {
        Ok(found) => found,
        Err((reason, problem)) => {
            // A failed sign-in is an authentication failure, under the key id it claimed.
            let claimed = switchyard_common::apikey::parse(form.api_key.trim()).map(|(id, _)| id);
            audit(
                RefusalKind::AuthFailure,
                reason,
                claimed.as_ref().map(|k| k.as_str()),
            );
            return show(&tenant, &signin, &form.signin, &form.csrf, Some(&problem));
        }
    };
    let granted = scopes::grant(&signin.scope, role).unwrap_or_default();
    if granted.is_empty() {
        let problem = "this key's role cannot grant what the client asks for";
        return show(&tenant, &signin, &form.signin, &form.csrf, Some(problem));
    }
    // The sign-in is used once, even if two posts race.
    if !matches!(server.codes.take(&key, entry.revision).await, Ok(true)) {
        return expired();
    }
    let record = Code {
        client_id: signin.client_id.clone(),
        redirect_uri: signin.redirect_uri.clone(),
        code_challenge: signin.code_challenge.clone(),
        scope: granted,
        key: key_id.to_string(),
    };
    let Some(code) = issue_code(server, &tenant, &record).await else {
        return finish(&[("error", "temporarily_unavailable")]);
    };
    server.used(&tenant, &signin.client_id).await;
    audit(
        RefusalKind::Authorization,
        "signed_in",
        Some(key_id.as_str()),
    );
    finish(&[("code", &code)])
}
