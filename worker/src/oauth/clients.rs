//! Who a client is, when its client ID is the URL of its metadata document (OAuth Client
//! ID Metadata Documents; registered clients are in `register`), fetched through the same
//! egress guard as upstreams and cached briefly. The document must name itself as the
//! client ID, list the redirect URIs the client may use (matched exactly, under the same
//! rules as registered ones), and ask for no client authentication: every client is public
//! and proves itself with PKCE. Client IDs are https URLs with a path; for development,
//! plain http on a loopback host is accepted too.

use crate::egress::JsonFetcher;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_common::netguard::UpstreamGuard;

const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is used.
const FRESH: Duration = Duration::from_secs(300);
const MAX_CACHED: usize = 1_000;
const MAX_CLIENT_ID: usize = 512;
const MAX_REDIRECT_URIS: usize = super::register::MAX_REDIRECT_URIS;
const MAX_NAME: usize = 100;

/// A client, as its metadata document describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// What the consent page calls it: its `client_name`, else its client ID's host.
    pub name: String,
    pub redirect_uris: Vec<String>,
}

/// Why a client ID cannot be used, said to the user (never with a redirect).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("the client ID must be the https URL of the client's metadata document")]
    NotAUrl,
    #[error("no client is registered with this client ID, or its registration expired")]
    Unknown,
    #[error("client registrations cannot be read now; try again shortly")]
    Unavailable,
    /// The detail is logged, not shown: it would help probe other hosts.
    #[error("the client's metadata document cannot be fetched")]
    Unreachable(String),
    #[error("the client's metadata document is not valid: {0}")]
    Invalid(String),
}

#[derive(Debug)]
pub struct Clients {
    fetcher: JsonFetcher,
    cache: Mutex<HashMap<String, (Arc<Client>, Instant)>>,
}

impl Clients {
    pub fn new(guard: UpstreamGuard) -> std::io::Result<Self> {
        Ok(Self {
            fetcher: JsonFetcher::new(guard, FETCH_TIMEOUT).map_err(std::io::Error::other)?,
            cache: Mutex::default(),
        })
    }

    /// The client `id` names.
    pub async fn get(&self, id: &str) -> Result<Arc<Client>, ClientError> {
        let url = client_id_url(id)?;
        if let Some((client, at)) = lock(&self.cache).get(id)
            && at.elapsed() < FRESH
        {
            return Ok(client.clone());
        }
        let doc = self
            .fetcher
            .get(id, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "client metadata document not fetched");
                ClientError::Unreachable(e)
            })?;
        let client = Arc::new(parse(id, &url, &doc)?);
        let mut cache = lock(&self.cache);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(id.to_owned(), (client.clone(), Instant::now()));
        Ok(client)
    }
}

/// `id` as a URL, when it may be a client ID.
fn client_id_url(id: &str) -> Result<url::Url, ClientError> {
    if id.len() > MAX_CLIENT_ID {
        return Err(ClientError::NotAUrl);
    }
    let url = url::Url::parse(id).map_err(|_| ClientError::NotAUrl)?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let ok = scheme_ok
        && url.path() != "/"
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        // The client ID is compared as a string: it must be the URL as written.
        && url.as_str() == id;
    if ok {
        Ok(url)
    } else {
        Err(ClientError::NotAUrl)
    }
}

/// What a client calls itself, fit to show: control characters dropped, at most 100
/// characters; `None` when nothing is left.
pub(super) fn display_name(raw: Option<&str>) -> Option<String> {
    let name: String = raw?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    (!name.trim().is_empty()).then_some(name)
}

/// The client `doc` describes, fetched from `id`.
fn parse(id: &str, url: &url::Url, doc: &serde_json::Value) -> Result<Client, ClientError> {
    let invalid = |why: &str| ClientError::Invalid(why.to_owned());
    if doc["client_id"].as_str() != Some(id) {
        return Err(invalid("its client_id is not the URL it was fetched from"));
    }
    match doc
        .get("token_endpoint_auth_method")
        .and_then(|m| m.as_str())
    {
        None | Some("none") => {}
        Some(_) => return Err(invalid("token_endpoint_auth_method must be none")),
    }
    let redirect_uris: Vec<String> = doc["redirect_uris"]
        .as_array()
        .ok_or_else(|| invalid("redirect_uris is missing"))?
        .iter()
        .map(|u| u.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid("redirect_uris holds something other than strings"))?;
    if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid("redirect_uris must list 1 to 10 URIs"));
    }
    if !redirect_uris
        .iter()
        .all(|u| super::register::redirect_allowed(u))
    {
        return Err(invalid(
            "redirect URIs must be https, or http on a loopback host, without a fragment",
        ));
    }
    let name = display_name(doc["client_name"].as_str())
        .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
    Ok(Client {
        id: id.to_owned(),
        name,
        redirect_uris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_client_id_is_an_https_url_with_a_path_or_a_loopback_one() {
        for good in [
            "https://app.example.com/oauth/client.json",
            "http://127.0.0.1:8080/client.json",
            "http://localhost:3000/c",
        ] {
            assert!(client_id_url(good).is_ok(), "{good}");
        }
        for bad in [
            "my-client",
            "http://app.example.com/client.json",
            "https://app.example.com/",
            "https://app.example.com/c#x",
            "https://u:p@app.example.com/c",
            "https://APP.example.com/c",
            "ftp://app.example.com/c",
        ] {
            assert_eq!(client_id_url(bad), Err(ClientError::NotAUrl), "{bad}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(600));
        assert_eq!(client_id_url(&long), Err(ClientError::NotAUrl));
    }

    #[test]
    fn a_document_must_name_itself_and_list_its_redirects() {
        let id = "https://app.example.com/client.json";
        let url = url::Url::parse(id).unwrap();
        let good = json!({"client_id": id, "client_name": "Agent\u{7}", "redirect_uris": ["https://app.example.com/cb"]});
        let client = parse(id, &url, &good).unwrap();
        assert_eq!(client.name, "Agent");
        assert_eq!(client.redirect_uris, vec!["https://app.example.com/cb"]);
        let unnamed = json!({"client_id": id, "redirect_uris": ["https://app.example.com/cb"]});
        assert_eq!(parse(id, &url, &unnamed).unwrap().name, "app.example.com");
        for bad in [
            json!({"client_id": "https://evil.example/c", "redirect_uris": ["https://a/cb"]}),
            json!({"client_id": id}),
            json!({"client_id": id, "redirect_uris": []}),
            json!({"client_id": id, "redirect_uris": [1]}),
            json!({"client_id": id, "redirect_uris": ["javascript:alert(1)"]}),
            json!({"client_id": id, "redirect_uris": ["http://app.example.com/cb"]}),
            json!({"client_id": id, "redirect_uris": ["https://a/cb#f"]}),
            json!({"client_id": id, "redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
        ] {
            assert!(
                matches!(parse(id, &url, &bad), Err(ClientError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
