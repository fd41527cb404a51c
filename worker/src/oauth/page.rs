//! The pages a signing-in user sees: the consent page and errors. Every value on them is
//! escaped; they may not be framed (clickjacking), load nothing from elsewhere, post only
//! to this server, and are never cached.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// What the consent page shows and carries.
pub struct Consent<'a> {
    pub tenant: &'a str,
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    /// Where the answer to the form may send the browser: the redirect URI's origin, and
    /// the provider's when the user signs in there (space-separated).
    pub redirect_origin: &'a str,
    /// The host of the tenant's provider, when the user signs in there rather than with
    /// an API key.
    pub sign_in_at: Option<&'a str>,
    pub scopes: &'a [&'a str],
    pub signin: &'a str,
    pub csrf: &'a str,
    /// Why the last try failed, if it did.
    pub problem: Option<&'a str>,
}

/// `s` with the characters HTML gives meaning to escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn scope_text(scope: &str) -> String {
    match scope {
        super::scopes::READ => {
            "see its tools, resources and prompts, and call the tools that change nothing".into()
        }
        super::scopes::WRITE => "call every tool, including those that change things".into(),
        s => match s.strip_prefix(super::scopes::CONNECTOR) {
            Some(name) => format!("only through connector {}, not the others", escape(name)),
            None => "an unknown permission".into(),
        },
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}\
    input[type=password]{width:100%;padding:.5rem}button{padding:.5rem 1rem;margin:.5rem .5rem 0 0}\
    .problem{color:#a00}";

/// A page; its form may post to this server, and the answer redirect to `redirect_origin`
/// (browsers check a form's redirects against `form-action` too).
fn html(status: StatusCode, title: &str, body: &str, redirect_origin: Option<&str>) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut resp = (status, page).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let form_action = match redirect_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'none'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The consent page.
pub fn consent(c: &Consent<'_>) -> Response {
    let scopes: String = c
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code>: {}</li>", escape(s), scope_text(s)))
        .collect();
    let problem = c
        .problem
        .map(|p| format!("<p class=\"problem\">{}</p>", escape(p)))
        .unwrap_or_default();
    let (sign_in, allow, limit) = match c.sign_in_at {
        Some(at) => (
            format!(
                "<p>You will sign in at <strong>{}</strong>.</p>",
                escape(at)
            ),
            "Continue",
            format!(
                "The access it gets has your role at {} at most.",
                escape(c.tenant)
            ),
        ),
        None => (
            format!(
                "<label>Sign in with one of {}'s API keys<br>\
                 <input type=\"password\" name=\"api_key\" autocomplete=\"off\"></label><br>",
                escape(c.tenant)
            ),
            "Allow",
            "The access it gets has the key's role at most, and ends when the key is revoked."
                .to_owned(),
        ),
    };
    let body = format!(
        "<h1>Sign in to {tenant}</h1>\
         <p><strong>{client}</strong> asks to use the MCP endpoint of <strong>{tenant}</strong> \
         on your behalf. You will be sent back to <strong>{host}</strong>.</p>\
         <p>It asks to:</p><ul>{scopes}</ul>{problem}\
         <form method=\"post\">\
         <input type=\"hidden\" name=\"signin\" value=\"{signin}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{sign_in}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">{allow}</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form><p>{limit}</p>",
        tenant = escape(c.tenant),
        client = escape(c.client_name),
        host = escape(c.redirect_host),
        signin = escape(c.signin),
        csrf = escape(c.csrf),
    );
    let status = if c.problem.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    html(status, "Sign in", &body, Some(c.redirect_origin))
}

/// An error shown to the user, for what cannot be sent back to the client.
pub fn error(status: StatusCode, message: &str) -> Response {
    html(
        status,
        "Sign-in failed",
        &format!("<h1>Sign-in failed</h1><p>{}</p>", escape(message)),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(page: Response) -> Vec<u8> {
        let bytes = futures::executor::block_on(axum::body::to_bytes(page.into_body(), 1 << 20));
        bytes.unwrap().to_vec()
    }

    #[test]
    fn what_a_client_names_itself_cannot_become_markup() {
        let page = consent(&Consent {
            tenant: "acme",
            client_name: "<script>alert(1)</script>\"'",
            redirect_host: "a\"b",
            redirect_origin: "https://app.example",
            sign_in_at: Some("idp\"x"),
            scopes: &["tools:read"],
            signin: "s",
            csrf: "c",
            problem: Some("<b>x</b>"),
        });
        assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        // The form posts here and its answer redirects to the client: both allowed.
        assert!(
            csp.contains("form-action 'self' https://app.example;"),
            "{csp}"
        );
        assert_eq!(escape("<script>\"'&"), "&lt;script&gt;&quot;&#39;&amp;");
        let body = String::from_utf8_lossy(&body_of(page)).into_owned();
        assert!(
            !body.contains("<script>") && !body.contains("idp\""),
            "{body}"
        );
        assert!(
            !body.contains("api_key"),
            "the provider signs the user in: {body}"
        );
    }
}
