//! Listing what one connector offers, within its timeout and the worker's bound on how
//! much one connector may list. A session a listing failed on in transport, or that did
//! not answer in time, is not used again.

use super::Gateway;
use super::catalog::Listing;
use crate::policy::{Connector, Tenant};
use crate::upstream::{Session, UpstreamError};
use rmcp::model::PaginatedRequestParams;
use rmcp::service::ServiceError;
use std::future::Future;
use std::time::Instant;

/// Why a listing failed.
enum Failure {
    Service(&'static str, ServiceError),
    TooMany(&'static str),
}

/// Lists everything one connector offers.
pub(super) async fn list_one(
    gw: &Gateway,
    tenant: &Tenant,
    c: &Connector,
) -> Result<Listing, UpstreamError> {
    let started = Instant::now();
    let timeout = || UpstreamError::Timeout(c.timeout.as_millis() as u64);
    let leasing = gw.core.upstreams.lease(tenant.slug.as_str(), c, None);
    let lease = tokio::time::timeout(c.timeout, leasing)
        .await
        .map_err(|_| timeout())??;
    let Some(session) = lease.session() else {
        return Ok(Listing::default());
    };
    let max = gw.core.upstreams.bounds.max_listed;
    let left = c.timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, list_on(session, max)).await {
        Ok(Ok(listing)) => Ok(listing),
        Ok(Err(Failure::Service(what, e))) => {
            if !matches!(e, ServiceError::McpError(_)) {
                session.mark_broken();
            }
            Err(UpstreamError::Protocol(format!("{what}: {e}")))
        }
        Ok(Err(Failure::TooMany(what))) => Err(UpstreamError::Bound(format!(
            "it lists more than {max} {what}, more than this worker takes from one connector \
             (an operator can raise --max-listed-per-connector)"
        ))),
        Err(_) => {
            session.mark_broken();
            Err(timeout())
        }
    }
}

/// Lists what `session`'s upstream declared it offers, at most `max` of each kind.
async fn list_on(session: &Session, max: usize) -> Result<Listing, Failure> {
    let peer = session.peer();
    let caps = peer
        .peer_info()
        .as_ref()
        .map(|i| i.capabilities.clone())
        .unwrap_or_default();
    let mut l = Listing::default();
    if caps.tools.is_some() {
        l.tools = paged("tools", max, |p| async {
            let r = peer.list_tools(p).await?;
            Ok((r.tools, r.next_cursor))
        })
        .await?;
    }
    if caps.prompts.is_some() {
        l.prompts = paged("prompts", max, |p| async {
            let r = peer.list_prompts(p).await?;
            Ok((r.prompts, r.next_cursor))
        })
        .await?;
    }
    if caps.resources.is_some() {
        l.resources = paged("resources", max, |p| async {
            let r = peer.list_resources(p).await?;
            Ok((r.resources, r.next_cursor))
        })
        .await?;
        l.templates = paged("resource templates", max, |p| async {
            let r = peer.list_resource_templates(p).await?;
            Ok((r.resource_templates, r.next_cursor))
        })
        .await?;
    }
    Ok(l)
}

/// Every page of one kind (`what`), following cursors, refused once there are more than
/// `max` items: an upstream cannot grow a worker's memory by paging without end.
async fn paged<T, F, Fut>(what: &'static str, max: usize, page: F) -> Result<Vec<T>, Failure>
where
    F: Fn(Option<PaginatedRequestParams>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let (mut more, next) = page(params).await.map_err(|e| Failure::Service(what, e))?;
        if items.len() + more.len() > max {
            return Err(Failure::TooMany(what));
        }
        items.append(&mut more);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}
