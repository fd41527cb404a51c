//! The policy compiler: turns a tenant's stored state into the `TenantPolicy` workers
//! enforce. Header secrets are opened with the master key and sealed again with the policy
//! key, bound to the tenant slug and connector name, so nothing on the bus is plaintext. An
//! isolated tenant's secrets are sealed with the key derived for it alone, the one its
//! dedicated workers hold.

use crate::error::{Error, Result};
use crate::model::{Millis, Role, TenantState, TenantStatus, Tier, month_of};
use switchyard_common::pins::ToolDigest;
use switchyard_common::seal::{Keyring, policy_header_aad, stored_header_aad};
use switchyard_proto::policy::v1 as pb;

/// Converts Unix milliseconds to a protobuf timestamp.
pub fn timestamp(millis: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The keys the compiler needs: the master keyring that opens stored secrets and the
/// policy keyring that seals them for workers.
#[derive(Debug, Clone)]
pub struct Keys {
    pub master: Keyring,
    pub policy: Keyring,
}

/// Compiles `state` as of `now`. Keys that are revoked or already expired are left out;
/// so are disabled connectors.
pub fn compile(state: &TenantState, keys: &Keys, now: Millis) -> Result<pb::TenantPolicy> {
    let t = &state.tenant;
    let tenant_sealed = t.placement.tier == Tier::Isolated;
    let sealing = if tenant_sealed {
        keys.policy.for_tenant(t.slug.as_str())
    } else {
        keys.policy.clone()
    };
    let mut connectors = Vec::new();
    for c in state.connectors.iter().filter(|c| c.enabled) {
        let mut headers = Vec::with_capacity(c.headers.len());
        for h in &c.headers {
            let value = keys
                .master
                .open(&stored_header_aad(&t.id, &c.id, &h.name), &h.sealed_value)
                .map_err(|e| {
                    Error::Internal(format!(
                        "header {:?} of connector {:?} (tenant {:?}) does not open: {e}",
                        h.name,
                        c.name.as_str(),
                        t.slug.as_str()
                    ))
                })?;
            headers.push(pb::SealedHeader {
                name: h.name.clone(),
                sealed_value: sealing.seal(
                    &policy_header_aad(t.slug.as_str(), c.name.as_str(), &h.name),
                    &value,
                ),
            });
        }
        let s = &c.settings;
        let pins = state
            .tool_pins
            .get(&c.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let kind = match &s.kind {
            crate::model::ConnectorKind::Mcp { url } => {
                pb::connector::Kind::Mcp(pb::McpConnector {
                    url: url.clone(),
                    headers,
                })
            }
        };
        connectors.push(pb::Connector {
            name: c.name.to_string(),
            prefix: s.prefix.clone().unwrap_or_else(|| c.name.to_string()),
            kind: Some(kind),
            timeout_ms: s.timeout_ms,
            allow_tools: s.allow_tools.clone(),
            deny_tools: s.deny_tools.clone(),
            retry: Some(pb::Retry {
                max_attempts: s.retry.max_attempts,
                initial_backoff_ms: s.retry.initial_backoff_ms,
                max_backoff_ms: s.retry.max_backoff_ms,
                retry_idempotent_tools: s.retry.retry_idempotent_tools,
            }),
            breaker: Some(pb::Breaker {
                consecutive_failures: s.breaker.consecutive_failures,
                failure_rate_percent: s.breaker.failure_rate_percent,
                minimum_calls: s.breaker.minimum_calls,
                open_ms: s.breaker.open_ms,
                half_open_probes: s.breaker.half_open_probes,
            }),
            tool_pins: pins
                .iter()
                .filter_map(|(tool, digest)| {
                    ToolDigest::parse(digest).map(|d| (tool.clone(), d.as_bytes().to_vec()))
                })
                .collect(),
            auto_approve_tools: s.auto_approve_tools,
            new_tools_pending: pins.len() >= crate::store::MAX_TOOL_PINS,
        });
    }
    let keys = state
        .keys
        .iter()
        .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now))
        .map(|k| pb::KeyVerifier {
            id: k.id.to_string(),
            verifier: k.verifier.clone(),
            role: role(k.role) as i32,
            requests_per_second: k.requests_per_second.unwrap_or(0),
            burst: k.burst.unwrap_or(0),
            expire_time: k.expires_at.map(timestamp),
        })
        .collect();
    let q = &t.quotas;
    // Used up: tool calls are refused until the month (UTC) ends.
    let tool_calls_exhausted_until = (q.monthly_tool_calls > 0
        && state.tool_calls_this_month >= q.monthly_tool_calls)
        .then(|| timestamp(month_of(now).1));
    Ok(pb::TenantPolicy {
        tenant: t.slug.to_string(),
        revision: t.policy_revision,
        status: match t.status {
            TenantStatus::Active => pb::Status::Active,
            TenantStatus::Suspended => pb::Status::Suspended,
        } as i32,
        suspend_reason: t.suspend_reason.clone(),
        quotas: Some(pb::Quotas {
            requests_per_second: q.requests_per_second,
            burst: q.burst,
            max_concurrent_requests: q.max_concurrent_requests,
            max_sessions: q.max_sessions,
            max_concurrent_other_requests: q.max_concurrent_other_requests,
            monthly_tool_calls: q.monthly_tool_calls,
        }),
        connectors,
        keys,
        compile_time: Some(timestamp(now)),
        tool_calls_exhausted_until,
        dedicated: t.dedicated(),
        tenant_sealed,
        argument_audit: match t.audit.arguments {
            crate::model::ArgumentAudit::None => pb::ArgumentAudit::None,
            crate::model::ArgumentAudit::Digest => pb::ArgumentAudit::Digest,
            crate::model::ArgumentAudit::Redacted => pb::ArgumentAudit::Redacted,
        } as i32,
        sensitive_keys: t.audit.sensitive_keys.clone(),
        audit_fail_closed: t.audit.fail_closed,
        identity: Some(identity(&t.identity)),
    })
}

/// What workers need of a tenant's identity settings, with the defaults filled in.
fn identity(i: &crate::model::IdentitySettings) -> pb::Identity {
    use crate::model::{DEFAULT_ACCESS_TOKEN_SECONDS, DEFAULT_REFRESH_TOKEN_SECONDS};
    let provider = i.provider.clone().unwrap_or_default();
    let or = |v: u32, default: u32| if v == 0 { default } else { v };
    pb::Identity {
        api_keys_disabled: i.api_keys_disabled,
        issuer: provider.issuer,
        audience: provider.audience,
        role_claim: provider.role_claim,
        roles: provider
            .roles
            .into_iter()
            .map(|m| pb::RoleGrant {
                value: m.value,
                role: role(m.role) as i32,
            })
            .collect(),
        access_token_seconds: or(i.access_token_seconds, DEFAULT_ACCESS_TOKEN_SECONDS),
        refresh_token_seconds: or(i.refresh_token_seconds, DEFAULT_REFRESH_TOKEN_SECONDS),
        client_id: provider.client_id,
        sign_in_scopes: provider.sign_in_scopes,
        revoked_grants: i
            .revoked_grants
            .iter()
            .filter(|r| r.until > crate::model::now_millis())
            .map(|r| r.id.clone())
            .collect(),
        signing_keys_not_before: u64::try_from(i.signing_keys_not_before / 1000).unwrap_or(0),
    }
}

fn role(role: Role) -> pb::Role {
    match role {
        Role::Viewer => pb::Role::Viewer,
        Role::Editor => pb::Role::Editor,
        Role::Admin => pb::Role::Admin,
    }
}
