//! What the audit trail records of each object: the fields an operator can change, as JSON.
//! Secret values never appear: a connector's header values are shown by a digest of their
//! sealed form (which changes whenever a value is given again, and says nothing of the
//! value), an API key's verifier not at all.

use crate::model::{ApiKey, Connector, OperatorToken, Tenant};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn tenant(t: &Tenant) -> Value {
    let q = &t.quotas;
    json!({
        "display_name": t.display_name,
        "status": t.status.as_str(),
        "suspend_reason": t.suspend_reason,
        "quotas": {
            "requests_per_second": q.requests_per_second,
            "burst": q.burst,
            "max_concurrent_requests": q.max_concurrent_requests,
            "max_concurrent_other_requests": q.max_concurrent_other_requests,
            "max_sessions": q.max_sessions,
            "monthly_tool_calls": q.monthly_tool_calls,
            "max_connectors": q.max_connectors,
        },
        "tier": t.placement.tier.as_str(),
        "compute_profile": t.placement.compute_profile,
        "audit": {
            "arguments": t.audit.arguments.as_str(),
            "sensitive_keys": t.audit.sensitive_keys,
            "retention_days": t.audit.retention_days,
            "fail_closed": t.audit.fail_closed,
        },
        // No secrets here: the issuer and audience are public, the role map is policy.
        "identity": t.identity,
    })
}

pub fn connector(c: &Connector) -> Value {
    let headers: serde_json::Map<String, Value> = c
        .headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                Value::String(sealed_digest(&h.sealed_value)),
            )
        })
        .collect();
    json!({
        "enabled": c.enabled,
        "settings": serde_json::to_value(&c.settings).unwrap_or(Value::Null),
        "headers": headers,
    })
}

pub fn api_key(k: &ApiKey) -> Value {
    json!({
        "role": k.role.as_str(),
        "description": k.description,
        "requests_per_second": k.requests_per_second,
        "burst": k.burst,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
    })
}

pub fn operator_token(t: &OperatorToken) -> Value {
    json!({
        "name": t.name,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
    })
}

/// `sealed:` and the first 12 hex digits of the SHA-256 of a sealed header value.
fn sealed_digest(sealed: &[u8]) -> String {
    let digest = Sha256::digest(sealed);
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sealed:{hex}")
}
