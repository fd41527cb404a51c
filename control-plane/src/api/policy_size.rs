//! The bound on a tenant's compiled policy: every change that adds to it (a connector, its
//! headers and patterns, an API key) is refused when the policy would grow past
//! `POLICY_MAX_BYTES`, naming the field that made it. Well under NATS's default maximum
//! message (1 MiB), so a tenant's policy always fits on the bus.

use crate::compile::{Keys, compile};
use crate::error::{Error, Result};
use crate::model::{ApiKey, Connector, TenantState, now_millis};
use prost::Message as _;

/// The largest compiled policy a tenant may have, in bytes.
pub const POLICY_MAX_BYTES: usize = 512 * 1024;

/// Refuses `state` (a tenant's state with a change applied) when its policy would be over
/// the bound, naming `field`. A state that does not compile is not this check's to refuse.
pub(super) fn fits(state: &TenantState, keys: &Keys, field: &str) -> Result<()> {
    let Ok(policy) = compile(state, keys, now_millis()) else {
        return Ok(());
    };
    let size = policy.encoded_len();
    if size > POLICY_MAX_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "would make the tenant's policy {size} bytes, over the bound of \
                 {POLICY_MAX_BYTES}; use fewer or smaller headers, patterns, connectors or keys"
            ),
        ));
    }
    Ok(())
}

/// `state` with `connector` added, or put in place of the one of the same name.
pub(super) fn with_connector(state: &TenantState, connector: Connector) -> TenantState {
    let mut state = state.clone();
    state.connectors.retain(|c| c.name != connector.name);
    state.connectors.push(connector);
    state
}

/// `state` with one more key like `key`.
pub(super) fn with_key(state: &TenantState, key: ApiKey) -> TenantState {
    let mut state = state.clone();
    state.keys.push(key);
    state
}

/// `state` with one more revoked grant like `id`, live for `until`.
pub(super) fn with_revoked_grant(
    state: &TenantState,
    id: &str,
    until: crate::model::Millis,
) -> TenantState {
    let mut state = state.clone();
    state
        .tenant
        .identity
        .revoked_grants
        .push(crate::model::RevokedGrant {
            id: id.to_owned(),
            until,
        });
    state
}
