//! A connector's settings from a request: headers, URL (checked against the private-range
//! guard), prefix, tool patterns, retry and breaker policy, timeout.

use super::*;
use crate::compile::Keys;
use crate::error::{Error, Result};
use crate::model::{self, *};
use std::net::IpAddr;
use std::time::Duration;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::stored_header_aad;
use switchyard_proto::admin::v1 as pb;

/// Headers the worker sets itself or that would break the transport.
pub(super) const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];
pub(super) const MAX_HEADERS: usize = 32;
pub(super) const MAX_HEADER_VALUE: usize = 8 * 1024;
pub(super) const MAX_PATTERNS: usize = 100;

pub(super) fn header_name(field: &str, name: &str) -> Result<String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::invalid(field, format!("{name:?} is not a valid HTTP header name")))?;
    let lower = parsed.as_str().to_owned();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(Error::invalid(
            field,
            format!("{name:?} is set by the worker and cannot be configured"),
        ));
    }
    Ok(lower)
}

pub(super) fn header_value(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_HEADER_VALUE {
        return Err(Error::invalid(
            field,
            format!("must be 1-{MAX_HEADER_VALUE} bytes"),
        ));
    }
    // The value is a secret: say what is wrong without echoing it.
    http::HeaderValue::from_str(value)
        .map_err(|_| Error::invalid(field, "contains characters not allowed in a header"))?;
    Ok(())
}

/// Whether a query parameter named `name` likely carries a secret.
fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    const EXACT: [&str; 9] = [
        "key",
        "auth",
        "sig",
        "signature",
        "pass",
        "pwd",
        "code",
        "jwt",
        "bearer",
    ];
    const PARTS: [&str; 6] = ["token", "secret", "password", "passwd", "apikey", "api_key"];
    EXACT.contains(&n.as_str()) || PARTS.iter().any(|p| n.contains(p))
}

/// Whether `a` and `b` (both valid URLs) share scheme, host and port: a stored secret may
/// follow a change between them.
pub(super) fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Validates an upstream URL, including the private-range guard.
pub(super) async fn upstream_url(field: &str, raw: &str, guard: &UpstreamGuard) -> Result<String> {
    let url = url::Url::parse(raw).map_err(|e| Error::invalid(field, format!("{raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(field, "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            field,
            "must not carry credentials; put them in a header, whose value is stored sealed",
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(field, "must not have a #fragment"));
    }
    if let Some((name, _)) = url.query_pairs().find(|(k, _)| looks_like_credential(k)) {
        return Err(Error::invalid(
            field,
            format!(
                "the query parameter {name:?} looks like a credential; send it as a header \
                 (--header), whose value is stored sealed"
            ),
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| Error::invalid(field, "must name a host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    if guard.is_own_host(&host.to_string(), port) {
        return Err(Error::invalid(
            field,
            "points at this gateway's own endpoint; a connector cannot call the gateway",
        ));
    }
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(d)
            if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
        {
            vec![IpAddr::from([127, 0, 0, 1])]
        }
        url::Host::Domain(d) => {
            // Names that resolve now are checked now; workers check every connection again.
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((d.to_owned(), port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            }
        }
    };
    if let Some(ip) = addrs.into_iter().find(|ip| !guard.permits(*ip)) {
        return Err(Error::invalid(
            field,
            format!(
                "{ip} is in a private, loopback or link-local range; an operator can allow it \
                 with --upstream-allow"
            ),
        ));
    }
    Ok(url.to_string())
}

pub(super) fn prefix(field: &str, p: &str) -> Result<String> {
    if p.len() > 32
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(
            field,
            "must be at most 32 characters of A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if p.contains("__") || p.ends_with('_') {
        return Err(Error::invalid(
            field,
            "must not contain \"__\" or end with '_': it is the separator before tool names",
        ));
    }
    Ok(p.to_owned())
}

pub(super) fn patterns(field: &str, list: &[String]) -> Result<Vec<String>> {
    if list.len() > MAX_PATTERNS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_PATTERNS} patterns"),
        ));
    }
    for (i, p) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if p.is_empty() || p.len() > 256 {
            return Err(Error::invalid(f, "must be 1-256 characters"));
        }
        globset::Glob::new(p).map_err(|e| Error::invalid(f, format!("{p:?}: {e}")))?;
    }
    Ok(list.to_vec())
}

pub(super) fn apply_retry(
    mut r: RetrySettings,
    p: Option<&pb::RetryPolicy>,
) -> Result<RetrySettings> {
    let Some(p) = p else { return Ok(r) };
    if let Some(v) = p.max_attempts {
        r.max_attempts = in_range("retry.max_attempts", v, 1, 10)?;
    }
    if let Some(v) = p.initial_backoff_ms {
        r.initial_backoff_ms = in_range("retry.initial_backoff_ms", v, 1, 60_000)?;
    }
    if let Some(v) = p.max_backoff_ms {
        r.max_backoff_ms = in_range("retry.max_backoff_ms", v, 1, 300_000)?;
    }
    if let Some(v) = p.retry_idempotent_tools {
        r.retry_idempotent_tools = v;
    }
    if r.max_backoff_ms < r.initial_backoff_ms {
        return Err(Error::invalid(
            "retry.max_backoff_ms",
            "must not be less than initial_backoff_ms",
        ));
    }
    Ok(r)
}

pub(super) fn apply_breaker(
    mut b: BreakerSettings,
    p: Option<&pb::BreakerPolicy>,
) -> Result<BreakerSettings> {
    let Some(p) = p else { return Ok(b) };
    if let Some(v) = p.consecutive_failures {
        b.consecutive_failures = in_range("breaker.consecutive_failures", v, 1, 1000)?;
    }
    if let Some(v) = p.failure_rate_percent {
        b.failure_rate_percent = in_range("breaker.failure_rate_percent", v, 1, 100)?;
    }
    if let Some(v) = p.minimum_calls {
        b.minimum_calls = in_range("breaker.minimum_calls", v, 1, 100_000)?;
    }
    if let Some(v) = p.open_ms {
        b.open_ms = in_range("breaker.open_ms", v, 100, 3_600_000)?;
    }
    if let Some(v) = p.half_open_probes {
        b.half_open_probes = in_range("breaker.half_open_probes", v, 1, 100)?;
    }
    Ok(b)
}

pub(super) fn timeout_ms(field: &str, v: u32) -> Result<u32> {
    if v == 0 {
        return Ok(model::DEFAULT_TIMEOUT_MS);
    }
    in_range(field, v, 1, 600_000)
}

/// Header names and values to seal, validated. `existing` supplies values for headers
/// given without one (update keeps the stored value).
pub(super) fn headers_in(
    field: &str,
    headers: &[pb::Header],
    existing: &[SealedHeader],
) -> Result<Vec<(String, HeaderValue)>> {
    Ok(headers_given(field, headers, Some(existing))?.0)
}

/// Like `headers_in`, but with `existing` `None` (the URL moved to another origin) a header
/// given without a value is dropped rather than kept: the second list names those.
pub(super) fn headers_given(
    field: &str,
    headers: &[pb::Header],
    existing: Option<&[SealedHeader]>,
) -> Result<(Vec<Given>, Vec<String>)> {
    if headers.len() > MAX_HEADERS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out: Vec<(String, HeaderValue)> = Vec::with_capacity(headers.len());
    let mut dropped = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let name = header_name(&format!("{field}[{i}].name"), &h.name)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Error::invalid(
                format!("{field}[{i}].name"),
                format!("header {name:?} is given twice"),
            ));
        }
        let value = match &h.value {
            Some(v) => {
                header_value(&format!("{field}[{i}].value"), v)?;
                HeaderValue::New(v.clone())
            }
            None if existing.is_none() => {
                dropped.push(name);
                continue;
            }
            None => match existing.unwrap_or_default().iter().find(|e| e.name == name) {
                Some(e) => HeaderValue::Keep(e.sealed_value.clone()),
                None => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].value"),
                        format!("header {name:?} has no stored value to keep; give one"),
                    ));
                }
            },
        };
        out.push((name, value));
    }
    Ok((out, dropped))
}

/// A header to store: its name and value.
pub(super) type Given = (String, HeaderValue);

#[derive(Clone)]
pub(super) enum HeaderValue {
    New(String),
    Keep(Vec<u8>),
}

pub(super) fn seal_headers(
    keys: &Keys,
    tenant_id: &str,
    connector_id: &str,
    headers: Vec<(String, HeaderValue)>,
) -> Vec<SealedHeader> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let sealed_value = match value {
                HeaderValue::New(v) => keys.master.seal(
                    &stored_header_aad(tenant_id, connector_id, &name),
                    v.as_bytes(),
                ),
                HeaderValue::Keep(sealed) => sealed,
            };
            SealedHeader { name, sealed_value }
        })
        .collect()
}
