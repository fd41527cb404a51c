//! A client of the built-in authorization server, driven over HTTP as a browser and an MCP
//! client would: its client ID metadata document served on loopback, PKCE, the consent
//! page filled in with an API key, and the token endpoint.

use serde_json::{Value, json};
use std::net::SocketAddr;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// `pairs` as a form body.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A client's metadata document, served at `id` until dropped.
#[derive(Debug)]
pub struct ClientDoc {
    pub id: String,
    pub redirect_uri: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ClientDoc {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ClientDoc {
    /// A client named `name` whose one redirect URI is `redirect_uri` (by default a
    /// `/callback` beside the document).
    pub async fn serve(name: &str, redirect_uri: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let id = format!("http://{addr}/client.json");
        let redirect_uri =
            redirect_uri.map_or_else(|| format!("http://{addr}/callback"), str::to_owned);
        let doc = json!({
            "client_id": id,
            "client_name": name,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        });
        let app = axum::Router::new().route(
            "/client.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            id,
            redirect_uri,
            server,
        }
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    use rand::RngCore as _;
    use sha2::Digest as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(bytes);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An HTTP client that follows no redirects, as a test of where they lead needs.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The consent page at `authorize_url`, as a browser gets it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// The sign-in cookie it set, as a `Cookie` header value.
    pub cookie: Option<String>,
}

impl Page {
    pub async fn open(http: &reqwest::Client, authorize_url: &str) -> Self {
        let resp = http.get(authorize_url).send().await.unwrap();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        Self {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
            cookie,
        }
    }

    /// The value of the form's hidden field `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).expect("the field is on the page") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    /// Posts the form back to `authorize_url` with `api_key` and `decision`, sending
    /// `cookie` (the page's own unless told otherwise).
    pub async fn submit(
        &self,
        http: &reqwest::Client,
        authorize_url: &str,
        api_key: &str,
        decision: &str,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let action = authorize_url.split('?').next().unwrap();
        let mut req = http
            .post(action)
            .header("content-type", FORM)
            .body(encode(&[
                ("signin", self.field("signin").as_str()),
                ("csrf", self.field("csrf").as_str()),
                ("api_key", api_key),
                ("decision", decision),
            ]));
        if let Some(c) = cookie.or(self.cookie.as_deref()) {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }
}

/// The authorization URL of `issuer`'s server for `client`, with `challenge` and `state`.
pub fn authorize_url(issuer: &str, client: &ClientDoc, challenge: &str, state: &str) -> String {
    let mut url = url::Url::parse(&format!("{issuer}/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state);
    url.to_string()
}

/// The query parameter `name` of `url`.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A form posted to `token_endpoint`: the status and the JSON answer.
pub async fn token(
    http: &reqwest::Client,
    token_endpoint: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let resp = http
        .post(token_endpoint)
        .header("content-type", FORM)
        .body(encode(form))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "token answers are never cached"
    );
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Redeems `code` at `issuer`'s token endpoint as `client_id` would, with `verifier` and
/// `client`'s redirect URI: the status and the JSON answer.
pub async fn redeem(
    issuer: &str,
    client: &ClientDoc,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (u16, Value) {
    token(
        &reqwest::Client::new(),
        &format!("{issuer}/oauth/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ],
    )
    .await
}

/// Signs `client` in at `issuer` with `key`: the callback URL the browser is sent to.
pub async fn sign_in(issuer: &str, client: &ClientDoc, key: &str, challenge: &str) -> String {
    let http = browser();
    let url = authorize_url(issuer, client, challenge, "st-1");
    let page = Page::open(&http, &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let answer = page.submit(&http, &url, key, "allow", None).await;
    assert_eq!(answer.status().as_u16(), 303, "{:?}", answer.text().await);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// A stack whose tenant `acme` has a connector (`up`) and is served: the stack, the
/// upstream and acme's key.
pub async fn acme() -> (crate::Stack, crate::upstream::TestUpstream, String) {
    let stack = crate::Stack::start().await;
    let up = crate::upstream::TestUpstream::start("up").await;
    let key = stack.tenant_with_connector("acme", "up", &up.url).await;
    stack.wait_serving("acme", &key).await;
    (stack, up, key)
}
