//! What the built-in authorization server's routes (`crate::oauth`) use of the worker:
//! where a tenant's endpoint is, its current policy, the key check, and who is asking; and
//! the authenticator that checks its tokens beside API keys and providers' tokens.

use super::{App, Peer, discovery};
use http::HeaderMap;
use std::sync::Arc;

impl App {
    /// Tenant `tenant`'s endpoint as a request with `headers` reaches it.
    pub(crate) fn endpoint_of(
        &self,
        headers: &HeaderMap,
        tenant: &str,
    ) -> Option<discovery::Endpoint> {
        self.endpoint(super::inline::single_host(headers), tenant)
    }

    pub(crate) fn oauth(&self) -> &crate::oauth::Server {
        &self.oauth
    }

    pub(crate) fn auth(&self) -> &crate::auth::Authenticator {
        &self.auth
    }

    /// Puts a decision of the authorization server about a client of `tenant` (one this
    /// worker serves) on the audit trail: `reason` about `actor`, client `client`, from
    /// address `source`.
    pub(crate) fn audit_authorization(
        &self,
        tenant: &str,
        kind: switchyard_bus::RefusalKind,
        reason: &'static str,
        actor: crate::oauth::Actor<'_>,
        client: &str,
        source: Option<std::net::IpAddr>,
    ) {
        if self.policies.get(tenant).is_none() {
            return;
        }
        self.refusals.note(crate::refusals::Refused {
            tenant,
            kind,
            key: actor.key(),
            subject: actor.subject(),
            reason,
            target: Some(client),
            source,
        });
    }

    /// Tenant `tenant`'s current policy, if this worker serves it.
    pub(crate) fn policy(&self, tenant: &str) -> Option<Arc<crate::policy::Tenant>> {
        self.policies.get(tenant)
    }

    /// The client's address (see `serve::client_addr`) of a request from `peer`.
    pub(crate) fn client_address(
        &self,
        headers: &HeaderMap,
        peer: Option<&Peer>,
    ) -> Option<std::net::IpAddr> {
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        peer.map(|p| super::serve::client_addr(p.0.ip(), forwarded, &self.bounds.trusted_proxies))
    }
}

/// Checks API keys, and access tokens of tenants' providers and of the built-in server.
pub(super) fn authenticator(
    config: &crate::Config,
    metrics: &crate::metrics::Metrics,
    oauth: Arc<crate::oauth::Server>,
) -> std::io::Result<crate::auth::Authenticator> {
    let tokens = crate::auth::tokens::Tokens::new(config.guard())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(crate::auth::Authenticator::default()
        .counting(metrics.key_checks.clone())
        .with_tokens(tokens)
        .with_server(oauth))
}

/// Refuses a `tools/call` of a tool that changes things by a token whose scopes were
/// capped below its key's role, with 403 and an `insufficient_scope` challenge, so that the
/// client can sign in again for more (API keys get the tool's own refusal instead).
pub(super) async fn step_up(
    app: &App,
    policy: &crate::policy::Tenant,
    principal: &crate::principal::Principal,
    head: &super::gate::Head,
) -> Result<(), super::Refused> {
    let Some(tool) = head.tool() else {
        return Ok(());
    };
    if principal.scope_capped(policy) && app.breakers.changes_things(policy, tool).await {
        let id = head.id.clone().unwrap_or_default();
        return Err(super::Refused(
            crate::error::Error::ScopeNeeded(tool.to_owned()),
            id,
        ));
    }
    Ok(())
}
