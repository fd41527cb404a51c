//! Which connector serves what a client names, and what a caller may see of the
//! catalog: a tool, prompt or resource resolves to its connector (a tool also to whether
//! its call may be tried again); a listing keeps what the caller's scopes allow.

use super::Gateway;
use crate::error::Error;
use crate::policy::{Connector, Tenant};
use crate::principal::Principal;
use std::sync::Arc;

/// A tool call that failed, with the name of the connector it was for (empty when it
/// resolved to none).
pub(super) type Failed = (String, Error);

/// A tool call resolved to its connector: what the upstream calls the tool, and whether
/// the call may be tried again.
pub(super) struct ToolTarget {
    pub connector: Arc<Connector>,
    pub upstream_name: String,
    pub read_only: bool,
    pub retryable: bool,
    /// Its arguments that go in headers too (see `call_headers`).
    pub params: Option<Arc<crate::call_headers::ParamHeaders>>,
}

impl Gateway {
    /// Whether tool `name` of `tenant` changes things (is not marked read-only); `false`
    /// for a tool not found, whose call is refused for that later.
    pub async fn changes_things(&self, tenant: &Tenant, name: &str) -> bool {
        self.tool(tenant, name, None)
            .await
            .is_ok_and(|t| !t.read_only)
    }

    /// The connector serving the tool the client calls `name`, or why none does: a tool
    /// of a connector that is down fails with that connector's name. For `caller`, a
    /// connector its scopes leave out is refused before anything is said of its state.
    pub(super) async fn tool(
        &self,
        tenant: &Tenant,
        name: &str,
        caller: Option<&Principal>,
    ) -> Result<ToolTarget, Failed> {
        let (catalog, target) = self
            .resolve(tenant, |c| c.tool_names.get(name).cloned())
            .await;
        let down = catalog.unavailable_for(name);
        let owner = target
            .as_ref()
            .map(|t| t.connector.as_str())
            .or(down.map(|(c, _)| c));
        if let (Some(caller), Some(owner)) = (caller, owner)
            && !caller.may_use(owner)
        {
            let target = format!("tools/call {name}");
            let denied = self.out_of_scope(caller, tenant, owner, &target);
            return Err((owner.to_owned(), denied));
        }
        let unknown = || {
            let e = Error::UnknownName {
                kind: "tool",
                name: name.to_owned(),
            };
            (String::new(), e)
        };
        let Some(target) = target else {
            return Err(match down {
                Some((connector, failure)) => (
                    connector.to_owned(),
                    Error::UpstreamDown(failure.to_owned()),
                ),
                None => unknown(),
            });
        };
        if catalog.is_held(name) {
            return Err((
                target.connector,
                Error::ToolPendingApproval(name.to_owned()),
            ));
        }
        let connector = Self::connector(tenant, &target.connector)
            .cloned()
            .ok_or_else(unknown)?;
        let annotations = catalog.annotations.get(name).cloned().unwrap_or_default();
        let read_only = annotations.read_only_hint.unwrap_or(false);
        // A tool call is tried again only when the upstream says doing it twice is harmless
        // and the operator allowed it for this connector.
        let retryable = connector.retry.idempotent_tools
            && (read_only || annotations.idempotent_hint.unwrap_or(false));
        Ok(ToolTarget {
            connector,
            upstream_name: target.upstream,
            read_only,
            retryable,
            params: catalog.params.get(name).cloned(),
        })
    }

    /// The connector that lists resource `uri`.
    pub(super) async fn resource_owner(
        &self,
        tenant: &Tenant,
        uri: &str,
    ) -> Result<Arc<Connector>, Error> {
        let (_, owner) = self.resolve(tenant, |c| c.owner_of(uri)).await;
        owner
            .and_then(|o| Self::connector(tenant, &o).cloned())
            .ok_or_else(|| Error::UnknownName {
                kind: "resource",
                name: uri.to_owned(),
            })
    }

    /// The connector that lists prompt `name`, and the prompt's upstream name.
    pub(super) async fn prompt(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Option<(Arc<Connector>, String)> {
        let (_, target) = self
            .resolve(tenant, |c| c.prompt_names.get(name).cloned())
            .await;
        let target = target?;
        let connector = Self::connector(tenant, &target.connector)?.clone();
        Some((connector, target.upstream))
    }
}

/// Of `items`, those whose connector (`owner`) `principal`'s scopes allow.
pub(super) fn visible<T: Clone>(
    items: &[T],
    principal: &Principal,
    owner: impl Fn(&T) -> Option<String>,
) -> Vec<T> {
    items
        .iter()
        .filter(|item| owner(item).is_some_and(|c| principal.may_use(&c)))
        .cloned()
        .collect()
}
