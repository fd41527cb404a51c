//! Requests of a session served inline (see `http::inline`), without rmcp's session
//! worker and its channels. The handler is the same (`Service::handle_request`, which
//! shapes the answer for the session's protocol version as rmcp's service does); the
//! session's peer, remembered the first time rmcp serves the session, carries whatever the
//! call sends the client meanwhile (`ordered` takes it to the call's stream).

use super::{ClientSession, Gateway, lock};
use rmcp::model::{ClientRequest, RequestId, ServerJsonRpcMessage};
use rmcp::service::{Peer, RequestContext, RoleServer, Service as _};
use std::sync::Arc;

impl Gateway {
    /// Remembers the session `ctx` belongs to, and its peer, for `session` to find.
    pub(super) fn remember(&self, ctx: &RequestContext<RoleServer>) {
        if self.client.peer.get().is_some() {
            return;
        }
        let Some(id) = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        if self.client.peer.set(ctx.peer.clone()).is_ok() {
            lock(&self.core.live).insert(id.to_owned(), Arc::downgrade(&self.client));
        }
    }

    /// The gateway of session `id` and its peer, when rmcp holds the session in memory here
    /// and has served it.
    pub fn session(&self, id: &str) -> Option<(Gateway, Peer<RoleServer>)> {
        let client: Arc<ClientSession> = lock(&self.core.live).get(id)?.upgrade()?;
        let peer = client.peer.get()?.clone();
        let gateway = Gateway {
            core: self.core.clone(),
            client,
        };
        Some((gateway, peer))
    }

    /// Serves `request` (`id`) of this session, whose client is `peer`, inline; `parts` is
    /// its HTTP request's head, carrying what the gate found (the principal, its places).
    pub async fn serve_inline(
        &self,
        peer: Peer<RoleServer>,
        id: RequestId,
        mut request: ClientRequest,
        parts: http::request::Parts,
    ) -> ServerJsonRpcMessage {
        use rmcp::model::{GetExtensions as _, GetMeta as _};
        let mut ctx = RequestContext::new(id.clone(), peer);
        ctx.meta = std::mem::take(request.get_meta_mut());
        ctx.extensions = std::mem::take(request.extensions_mut());
        ctx.extensions.insert(parts);
        match self.handle_request(request, ctx).await {
            Ok(result) => ServerJsonRpcMessage::response(result, id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        }
    }
}
