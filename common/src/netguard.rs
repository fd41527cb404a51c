//! The guard against connectors that point into the platform's own network: an upstream
//! address in a private, loopback, link-local or otherwise non-public range is refused
//! unless an operator allowed its range explicitly. Cloud metadata services (`METADATA`)
//! are refused whatever is allowed, in any form (IPv4-mapped IPv6 included). The gateway's
//! own public host is refused too, so no connector makes the gateway call itself.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ranges an operator allowed despite the guard (`--upstream-allow`).
#[derive(Debug, Clone, Default)]
pub struct UpstreamGuard {
    allowed: Vec<IpNet>,
    /// The gateway's own public hosts and ports.
    own: Vec<(String, u16)>,
}

impl UpstreamGuard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed,
            own: Vec::new(),
        }
    }

    /// This guard, also refusing the gateway's own endpoint at `host` and `port`.
    #[must_use]
    pub fn with_own_host(mut self, host: &str, port: u16) -> Self {
        self.own.push((normal_host(host), port));
        self
    }

    /// This guard, also refusing the gateway's own endpoint at `url` (its public URL);
    /// unchanged if `url` names no host.
    #[must_use]
    pub fn with_own_url(self, url: &url::Url) -> Self {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => self.with_own_host(host, port),
            _ => self,
        }
    }

    /// Whether `host`:`port` is the gateway's own endpoint. A host name is the gateway
    /// whatever the port (an ingress may serve it on several); an address or `localhost`
    /// only with the same port, so other servers on the same machine stay reachable.
    pub fn is_own_host(&self, host: &str, port: u16) -> bool {
        let host = normal_host(host);
        self.own.iter().any(|(own, own_port)| {
            let literal = own == "localhost" || own.parse::<IpAddr>().is_ok();
            *own == host && (!literal || *own_port == port)
        })
    }

    pub fn allowed_ranges(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a connection to `ip` may be made.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if METADATA.contains(&ip) {
            return false;
        }
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// A host as compared: lower case, without a trailing dot or IPv6 brackets.
fn normal_host(host: &str) -> String {
    host.trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Cloud metadata services, which hand out the platform's own credentials: AWS, GCP and
/// Azure's link-local service and AWS's IPv6 one, Azure's wire server, Alibaba Cloud's.
pub const METADATA: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Maps IPv4-mapped and IPv4-compatible IPv6 addresses to IPv4, so `::ffff:10.0.0.1` is
/// judged as `10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 can reach private IPv4
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_own_host_is_recognised() {
        let g = UpstreamGuard::default()
            .with_own_host("MCP.example.com", 443)
            .with_own_host("127.0.0.1", 8080);
        assert!(g.is_own_host("mcp.example.com", 443));
        assert!(
            g.is_own_host("mcp.example.com.", 80),
            "a name whatever the port"
        );
        assert!(!g.is_own_host("api.example.com", 443));
        assert!(g.is_own_host("127.0.0.1", 8080));
        assert!(
            !g.is_own_host("127.0.0.1", 9000),
            "an address only on its port"
        );
        assert!(!UpstreamGuard::default().is_own_host("mcp.example.com", 443));
        let url = "https://mcp.example.com/".parse().unwrap();
        assert!(
            UpstreamGuard::default()
                .with_own_url(&url)
                .is_own_host("mcp.example.com", 443)
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges_are_refused() {
        let guard = UpstreamGuard::default();
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!guard.permits(ip(s)), "{s}");
        }
        for s in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(guard.permits(ip(s)), "{s}");
        }
    }

    #[test]
    fn metadata_services_are_refused_whatever_is_allowed() {
        let everything =
            UpstreamGuard::new(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        for s in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "168.63.129.16",
            "::ffff:168.63.129.16",
            "100.100.100.200",
        ] {
            assert!(!everything.permits(ip(s)), "{s}");
        }
        assert!(everything.permits(ip("10.0.0.1")));
        assert!(everything.permits(ip("168.63.129.17")));
    }

    #[test]
    fn allowed_ranges_are_permitted() {
        let guard = UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("::ffff:127.0.0.1")));
        assert!(!guard.permits(ip("10.0.0.1")));
    }
}
