//! Signing in on the consent page with one of the tenant's API keys: the key is checked
//! as at the endpoint (the same attempt limits), and the grant carries its role, capped by
//! the scopes asked for.

use super::Actor;
use super::authorize::{Code, Consented, expired_page, issue_code};
use super::scopes;
use crate::http::App;
use axum::response::Response;
use switchyard_bus::RefusalKind;

/// The key `api_key` is of `tenant`, and its role; or why not, and what to tell the user.
async fn checked(
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

/// Signs the user of `c` in with the API key they posted.
pub(super) async fn sign_in(c: &Consented<'_>) -> Response {
    let api_key = c.form.api_key.trim();
    let (key_id, role) = match checked(c.app, c.tenant, api_key, c.client).await {
        Ok(found) => found,
        Err((reason, problem)) => {
            // A failed sign-in is an authentication failure, under the key id it claimed.
            let claimed = switchyard_common::apikey::parse(api_key).map(|(id, _)| id);
            let actor = claimed
                .as_ref()
                .map_or(Actor::Nobody, |k| Actor::Key(k.as_str()));
            c.audit(RefusalKind::AuthFailure, reason, actor);
            return c.again(&problem);
        }
    };
    let granted = scopes::grant(&c.signin.scope, role).unwrap_or_default();
    if granted.is_empty() {
        return c.again("this key's role cannot grant what the client asks for");
    }
    if !c.take().await {
        return expired_page();
    }
    let record = Code {
        client_id: c.signin.client_id.clone(),
        redirect_uri: c.signin.redirect_uri.clone(),
        code_challenge: c.signin.code_challenge.clone(),
        scope: granted,
        key: key_id.to_string(),
        user: None,
    };
    let server = c.app.oauth();
    let Some(code) = issue_code(server, c.tenant, &record).await else {
        return c.back(&[("error", "temporarily_unavailable")]);
    };
    server.used(c.tenant, &c.signin.client_id).await;
    c.audit(
        RefusalKind::Authorization,
        "signed_in",
        Actor::Key(key_id.as_str()),
    );
    c.back(&[("code", &code)])
}
