//! One connector of a tenant's policy as the request path uses it: its header secrets
//! opened, tool filters compiled, retries and breaker settled, and the fingerprint that
//! tells its upstream sessions apart.

use super::pb;
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::time::Duration;
use switchyard_common::seal::{Keyring, policy_header_aad};

/// One connector as the request path uses it.
#[derive(Debug)]
pub struct Connector {
    pub name: String,
    pub prefix: String,
    pub url: String,
    /// Header values in plaintext: kept in memory only, never logged.
    pub headers: http::HeaderMap,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: crate::resilience::BreakerConfig,
    allow: Option<GlobSet>,
    deny: GlobSet,
    /// Identifies this configuration; an upstream client made for another is replaced.
    pub fingerprint: u64,
    /// The approved digest of each tool.
    pub pins: crate::pins::Pins,
}

impl Connector {
    /// A connector for unit tests: `name` under `prefix`, with these tool patterns.
    #[cfg(test)]
    pub fn for_test(name: &str, prefix: &str, allow: &[&str], deny: &[&str]) -> Self {
        let list = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Self {
            name: name.into(),
            prefix: prefix.into(),
            url: format!("http://{name}.test/mcp"),
            headers: http::HeaderMap::new(),
            timeout: Duration::from_secs(1),
            retry: retry_policy(pb::Retry::default()),
            breaker: breaker_config(pb::Breaker::default()),
            allow: (!allow.is_empty()).then(|| globs(&list(allow))),
            deny: globs(&list(deny)),
            fingerprint: 0,
            pins: crate::pins::Pins::default(),
        }
    }

    /// Whether the upstream tool `name` is exposed.
    pub fn exposes(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(name)) && !self.deny.is_match(name)
    }
}

/// How calls to one connector are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retries).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Whether tools annotated idempotent or read-only are retried.
    pub idempotent_tools: bool,
}

fn retry_policy(r: pb::Retry) -> RetryPolicy {
    RetryPolicy {
        max_attempts: r.max_attempts.max(1),
        initial_backoff: Duration::from_millis(u64::from(r.initial_backoff_ms)),
        max_backoff: Duration::from_millis(u64::from(r.max_backoff_ms.max(r.initial_backoff_ms))),
        idempotent_tools: r.retry_idempotent_tools,
    }
}

fn breaker_config(b: pb::Breaker) -> crate::resilience::BreakerConfig {
    crate::resilience::BreakerConfig {
        consecutive_failures: b.consecutive_failures,
        failure_rate_percent: b.failure_rate_percent,
        minimum_calls: b.minimum_calls,
        open_for: Duration::from_millis(u64::from(b.open_ms.max(1))),
        half_open_probes: b.half_open_probes,
    }
}

fn globs(patterns: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // The control plane validated the patterns; one that still fails matches nothing.
        if let Ok(g) = Glob::new(p) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// What identifies an upstream session of a connector: a digest, keyed by the policy key
/// so secrets cannot be guessed from it, over what the upstream sees (name, URL, header
/// names and values). Stable across re-sealing, key changes of the tenant's other objects
/// and changes the upstream does not see (timeouts, filters, retries).
fn fingerprint(keys: &Keyring, parts: &[&[u8]]) -> u64 {
    let d = keys
        .primary()
        .keyed_digest("connector upstream session", parts);
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// One connector of tenant `tenant`, its header values opened; `None` (logged) when one
/// does not open, or when it is of a kind this worker does not serve.
pub(super) fn connector(tenant: &str, c: pb::Connector, keys: &Keyring) -> Option<Connector> {
    let pins = crate::pins::Pins::from_policy(&c);
    let Some(pb::connector::Kind::Mcp(mcp)) = c.kind else {
        return None;
    };
    let mut headers = http::HeaderMap::new();
    let mut material: Vec<Vec<u8>> = vec![c.name.as_bytes().to_vec(), mcp.url.as_bytes().to_vec()];
    for h in &mcp.headers {
        let aad = policy_header_aad(tenant, &c.name, &h.name);
        let parsed = keys.open(&aad, &h.sealed_value).ok().and_then(|v| {
            let name = http::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            let value = http::HeaderValue::from_bytes(&v).ok()?;
            Some((name, value))
        });
        let Some((name, mut value)) = parsed else {
            tracing::error!(
                tenant,
                connector = %c.name,
                header = %h.name,
                "connector secret does not open with this worker's policy key; connector left out"
            );
            return None;
        };
        material.push(h.name.as_bytes().to_vec());
        material.push(value.as_bytes().to_vec());
        value.set_sensitive(true);
        headers.append(name, value);
    }
    let fp = fingerprint(
        keys,
        &material.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    Some(Connector {
        pins,
        prefix: c.prefix,
        url: mcp.url,
        headers,
        timeout: Duration::from_millis(u64::from(c.timeout_ms.max(1))),
        retry: retry_policy(c.retry.unwrap_or_default()),
        breaker: breaker_config(c.breaker.unwrap_or_default()),
        allow: (!c.allow_tools.is_empty()).then(|| globs(&c.allow_tools)),
        deny: globs(&c.deny_tools),
        fingerprint: fp,
        name: c.name,
    })
}
