//! The authorization endpoint: the request is checked (a client from its metadata
//! document or registration, a redirect URI it lists, PKCE S256), then kept as a sign-in
//! in progress (an address begins 30 a minute at most) and the consent page shown; the
//! page posts back one of the tenant's API keys, or, for a tenant with its own provider,
//! sends the user there (`federate`). The sign-in is bound to the browser that
//! began it (a cookie that must match the form), so another site can neither post it nor
//! frame it. Until the redirect URI is known to be the client's, errors are shown, never
//! sent to it.

use super::page::{self, Consent};
use super::{Actor, digest, random_id, scopes};
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The API key signed in with; empty for a user of the tenant's provider.
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<super::User>,
}

/// Where the client is sent back, with `params` and the issuer (RFC 9207).
pub(super) fn back(
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
    // A tenant with its own provider: the user signs in there, once they consent here.
    let sign_in_at = match super::federate::provider(&app, &tenant) {
        Some(provider) => match super::federate::endpoints(&app, &provider).await {
            Ok(found) => Some(found.authorization),
            Err(refused) => return refused,
        },
        None => None,
    };
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
    let mut resp = show(
        &tenant,
        &record,
        &signin,
        &csrf,
        None,
        sign_in_at.as_deref(),
    );
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

/// The consent page for sign-in `signin`; with `sign_in_at`, the provider's authorization
/// endpoint the user signs in at.
fn show(
    tenant: &str,
    s: &SignIn,
    signin: &str,
    csrf: &str,
    problem: Option<&str>,
    sign_in_at: Option<&str>,
) -> Response {
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
    let mut origin = redirect.map_or_else(String::new, |u| u.origin().ascii_serialization());
    let at = sign_in_at.and_then(|a| url::Url::parse(a).ok());
    if let Some(at) = &at {
        origin = format!("{origin} {}", at.origin().ascii_serialization());
    }
    page::consent(&Consent {
        tenant,
        client_name: &s.client_name,
        redirect_host: &host,
        redirect_origin: &origin,
        sign_in_at: at.as_ref().and_then(url::Url::host_str),
        scopes: &asked,
        signin,
        csrf,
        problem,
    })
}

fn set_cookie(resp: &mut Response, endpoint: &Endpoint, tenant: &str, csrf: &str) {
    add_cookie(
        resp,
        endpoint,
        &format!("{COOKIE}={csrf}; Path=/t/{tenant}/oauth; HttpOnly; SameSite=Strict; Max-Age=600"),
    );
}

/// Sets `cookie`, only over https when the endpoint is https.
pub(super) fn add_cookie(resp: &mut Response, endpoint: &Endpoint, cookie: &str) {
    let secure = if endpoint.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    if let Ok(v) = http::HeaderValue::from_str(&format!("{cookie}{secure}")) {
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
    pub(super) api_key: String,
    #[serde(default)]
    decision: String,
}

/// The browser's cookie `name`.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

pub(super) fn expired_page() -> Response {
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
    if cookie(headers, COOKIE) != Some(form.csrf.as_str())
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

/// A new code for `record`, kept until redeemed; `None` when it cannot be kept.
pub(super) async fn issue_code(
    server: &super::Server,
    tenant: &str,
    record: &Code,
) -> Option<String> {
    let code = random_id();
    let bytes = serde_json::to_vec(record).ok()?;
    let key = code_key(tenant, &code);
    matches!(server.codes.create(&key, bytes.into()).await, Ok(true)).then_some(code)
}

/// A consent page's answer, from the browser that was shown the page.
pub(super) struct Consented<'a> {
    pub app: &'a App,
    pub tenant: &'a str,
    pub endpoint: &'a Endpoint,
    pub form: &'a Form,
    pub signin: &'a SignIn,
    /// The sign-in's entry in the store, and its key there.
    pub entry: &'a switchyard_bus::Versioned,
    pub key: &'a str,
    pub client: Option<std::net::IpAddr>,
}

impl Consented<'_> {
    /// Sends the browser back to the client with `params`.
    pub fn back(&self, params: &[(&str, &str)]) -> Response {
        let s = self.signin;
        back(
            &s.redirect_uri,
            s.state.as_deref(),
            &self.endpoint.issuer(),
            params,
        )
    }

    /// Puts a decision about this sign-in's client on the audit trail.
    pub fn audit(&self, kind: RefusalKind, reason: &'static str, actor: Actor<'_>) {
        let client = &self.signin.client_id;
        self.app
            .audit_authorization(self.tenant, kind, reason, actor, client, self.client);
    }

    /// Takes the sign-in from the store: true once, even if two posts race.
    pub async fn take(&self) -> bool {
        let codes = &self.app.oauth().codes;
        matches!(codes.take(self.key, self.entry.revision).await, Ok(true))
    }

    /// The consent page again, saying what went wrong.
    pub fn again(&self, problem: &str) -> Response {
        let f = self.form;
        show(
            self.tenant,
            self.signin,
            &f.signin,
            &f.csrf,
            Some(problem),
            None,
        )
    }
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
    let key = signin_key(&tenant, &form.signin);
    let consented = Consented {
        app: &app,
        tenant: &tenant,
        endpoint: &endpoint,
        form: &form,
        signin: &signin,
        entry: &entry,
        key: &key,
        client: app.client_address(&headers, peer.as_deref()),
    };
    if form.decision != "allow" {
        if !consented.take().await {
            return expired_page();
        }
        consented.audit(
            RefusalKind::Authorization,
            "sign_in_declined",
            Actor::Nobody,
        );
        return consented.back(&[
            ("error", "access_denied"),
            ("error_description", "the user declined"),
        ]);
    }
    match super::federate::provider(&app, &tenant) {
        Some(provider) => super::federate::begin(&consented, &provider).await,
        None => super::with_key::sign_in(&consented).await,
    }
}
