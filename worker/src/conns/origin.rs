//! Where an upstream's connections go, and what its requests name: read once from the
//! connector's URL, not per request.

use http::HeaderValue;
use http::uri::PathAndQuery;

#[derive(Debug, Clone)]
pub struct Origin {
    pub https: bool,
    /// The host as the resolver takes it (an IPv6 address without brackets).
    host: String,
    pub port: u16,
    /// `Host` of every request: host, and port when it is not the scheme's own.
    authority: HeaderValue,
    /// The path and query every request is sent to.
    pub target: PathAndQuery,
}

impl Origin {
    /// The origin of `url`; why not, when it is not an `http` or `https` URL with a host,
    /// or carries credentials of its own (which only the general client sends).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL carries credentials".into());
        }
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("the scheme {other} is not HTTP")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the URL names no host".into()),
        };
        let port = url.port_or_known_default().ok_or("the URL names no port")?;
        let written = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{written}:{p}"),
            None => written.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let target = PathAndQuery::try_from(target).map_err(|e| e.to_string())?;
        Ok(Self {
            https,
            host,
            port,
            authority,
            target,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn authority(&self) -> &str {
        self.authority.to_str().unwrap_or_default()
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.authority
    }

    /// The name TLS verifies the upstream's certificate for.
    pub(super) fn server_name(&self) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
        rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}
