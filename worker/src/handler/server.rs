//! The `ServerHandler` methods: listings come from the catalog, keeping what the caller's
//! scopes allow; `tools/call`, `prompts/get` and `resources/read` resolve their name to a
//! connector (`lookup`) and take the one routing path; completions and subscriptions go
//! to the connector that lists what they name. Failures of a tool call become a result
//! the model reads; the others become JSON-RPC errors (`Error::into_mcp`).

use super::lookup::{Failed, visible};
use super::routing::Route;
use super::{Gateway, in_session};
use crate::error::Error;
use crate::exchange::Outcome;
use crate::policy::{Role, Tenant};
use crate::principal::Principal;
use crate::sync::lock;
use rmcp::ErrorData as McpError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use std::result::Result;
use switchyard_bus::UsageMethod;

use super::catalog::LIST_FRESH;

impl Gateway {
    async fn call_tool_inner(
        &self,
        request: &CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
        principal: &Principal,
        tenant: &Tenant,
    ) -> Result<CallToolResponse, Failed> {
        let name = request.name.to_string();
        let target = self.tool(tenant, &name, Some(principal)).await?;
        let connector = target.connector.name.clone();
        if let (Some(params), Some(headers)) = (&target.params, standard_headers(ctx))
            && let Err(why) = params.check(request.arguments.as_ref(), headers)
        {
            let refused = self.refused(principal, tenant, &name, Error::HeaderMismatch(why));
            return Err((connector, refused));
        }
        let mut params = CallToolRequestParams::new(target.upstream_name.clone());
        params.arguments = request.arguments.clone();
        let route = Route {
            ctx,
            principal,
            tenant,
            connector: &target.connector,
            target: format!("tools/call {name}"),
            retryable: target.retryable,
            params: target.params.clone(),
        };
        let role = principal.role(tenant);
        if role == Some(Role::Viewer) && !target.read_only {
            let caller = if principal.by_token() {
                "This access token"
            } else {
                "This API key"
            };
            let denied = Error::PermissionDenied(format!(
                "{caller} has the viewer role, which may call only read-only tools; {name} is not marked read-only."
            ));
            return Err((connector, self.refused(principal, tenant, &name, denied)));
        }
        self.serve(route, UsageMethod::ToolsCall, request, params)
            .await
            .map_err(|e| (connector, e))
    }
}

/// The HTTP headers of a request whose protocol version has its headers mirror its body
/// (2026-07-28 on), which the receiver checks.
fn standard_headers(ctx: &RequestContext<RoleServer>) -> Option<&http::HeaderMap> {
    let headers = &ctx.extensions.get::<http::request::Parts>()?.headers;
    let version = headers.get("mcp-protocol-version")?.to_str().ok()?;
    (version >= ProtocolVersion::STANDARD_HEADERS.as_str()).then_some(headers)
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new("switchyard", env!("CARGO_PKG_VERSION")))
        .with_instructions("Tools of this tenant's connectors, named {connector}__{tool}.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        let tools = visible(&catalog.tools, &principal, |t| {
            catalog.tool_connector(&t.name).map(str::to_owned)
        });
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        match self
            .call_tool_inner(&request, &ctx, &principal, &tenant)
            .await
        {
            Ok(response) => Ok(response),
            // The upstream refused the call (bad arguments, a capability the client lacks,
            // ...): its answer is for the client, as it is.
            Err((_, Error::Service(rmcp::service::ServiceError::McpError(e))))
                if e.code != rmcp::model::ErrorCode::INTERNAL_ERROR =>
            {
                Err(e)
            }
            // What the client got wrong (a name, its input), what this worker cannot take
            // on now, and a caller that lost access are JSON-RPC errors; the rest is a
            // result the model reads.
            Err((
                connector,
                e @ (Error::UnknownName { .. }
                | Error::BadInput(_)
                | Error::HeaderMismatch(_)
                | Error::Capacity(_)
                | Error::CredentialRevoked
                | Error::Suspended(_)
                | Error::TenantGone),
            )) => Err(e.into_mcp(&connector)),
            Err((connector, e)) => {
                if e.attempted().is_some() {
                    tracing::warn!(tenant = %tenant.slug, connector = %connector, tool = %request.name, error = %e, "tool call failed upstream");
                }
                Ok(CallToolResponse::Complete(e.tool_result(&connector)))
            }
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        let prompts = visible(&catalog.prompts, &principal, |p| {
            catalog.prompt_connector(&p.name).map(str::to_owned)
        });
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let Some((connector, upstream_name)) = self.prompt(&tenant, &request.name).await else {
            return Err(Error::UnknownName {
                kind: "prompt",
                name: request.name.clone(),
            }
            .into_mcp(""));
        };
        let mut params = request.clone();
        params.name = upstream_name;
        params.meta = None;
        let route = Route {
            ctx: &ctx,
            principal: &principal,
            tenant: &tenant,
            connector: &connector,
            target: format!("prompts/get {}", request.name),
            retryable: true,
            params: None,
        };
        self.serve(route, UsageMethod::PromptsGet, &request, params)
            .await
            .map_err(|e| e.into_mcp(&connector.name))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        let resources = visible(&catalog.resources, &principal, |r| catalog.owner_of(&r.uri));
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        let templates = visible(&catalog.templates, &principal, |t| {
            catalog.template_of(&t.uri_template)
        });
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let connector = self
            .resource_owner(&tenant, &request.uri)
            .await
            .map_err(|e| e.into_mcp(""))?;
        let mut params = request.clone();
        params.meta = None;
        let route = Route {
            ctx: &ctx,
            principal: &principal,
            tenant: &tenant,
            connector: &connector,
            target: format!("resources/read {}", request.uri),
            retryable: true,
            params: None,
        };
        self.serve(route, UsageMethod::ResourcesRead, &request, params)
            .await
            .map_err(|e| e.into_mcp(&connector.name))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let (principal, tenant) = self.tenant(&ctx).map_err(|e| e.into_mcp(""))?;
        let mut params = request.clone();
        params.meta = None;
        let connector = match &request.r#ref {
            Reference::Prompt(p) => self.prompt(&tenant, &p.name).await.map(|(c, upstream)| {
                if let Reference::Prompt(up) = &mut params.r#ref {
                    up.name = upstream;
                }
                c
            }),
            Reference::Resource(r) => {
                let (_, owner) = self.resolve(&tenant, |c| c.template_of(&r.uri)).await;
                owner.and_then(|name| Self::connector(&tenant, &name).cloned())
            }
            _ => None,
        };
        // Nothing to complete from: no suggestions rather than an error.
        let empty = || CompleteResult::new(CompletionInfo::default());
        let Some(connector) = connector else {
            return Ok(empty());
        };
        let upstream_request = ClientRequest::CompleteRequest(Request::new(params));
        let route = Route {
            ctx: &ctx,
            principal: &principal,
            tenant: &tenant,
            connector: &connector,
            target: "completion/complete".into(),
            retryable: true,
            params: None,
        };
        let outcome = self
            .carry(
                &route,
                upstream_request.clone(),
                |_, _| upstream_request.clone(),
                (None, None),
            )
            .await
            .map_err(|e| e.into_mcp(&connector.name))?;
        match outcome {
            Outcome::Result(ServerResult::CompleteResult(r)) => Ok(r),
            _ => Ok(empty()),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *lock(&self.client.log_level) = Some(request.level);
        let sessions: Vec<_> = self
            .client
            .upstream
            .lock()
            .await
            .values()
            .cloned()
            .collect();
        for s in sessions.iter().filter(|s| s.logs()) {
            let _ = s.peer().set_level(request.clone()).await;
            // Its log messages now reach the client's GET stream.
            super::upstream_sessions::anchor(&ctx);
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let upstream_request = ClientRequest::SubscribeRequest(Request::new(request.clone()));
        self.subscription(&ctx, &request.uri, upstream_request)
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let upstream_request = ClientRequest::UnsubscribeRequest(Request::new(request.clone()));
        self.subscription(&ctx, &request.uri, upstream_request)
            .await
    }
}

impl Gateway {
    /// Forwards a (un)subscription to the connector that lists `uri`, on the client
    /// session's own upstream session, whose updates reach that client.
    async fn subscription(
        &self,
        ctx: &RequestContext<RoleServer>,
        uri: &str,
        upstream_request: ClientRequest,
    ) -> Result<(), McpError> {
        if !in_session(ctx) {
            // Updates go to the session that subscribed; without one there is nowhere to
            // send them (MCP 2026-07-28 clients listen with subscriptions/listen instead).
            return Err(Error::NeedsSession("resources/subscribe").into_mcp(""));
        }
        let (principal, tenant) = self.tenant(ctx).map_err(|e| e.into_mcp(""))?;
        let connector = self
            .resource_owner(&tenant, uri)
            .await
            .map_err(|e| e.into_mcp(""))?;
        let subscribing = matches!(upstream_request, ClientRequest::SubscribeRequest(_));
        let max = self.core.upstreams.bounds.max_subscriptions;
        if subscribing
            && lock(&self.client.subscribed)
                .get(&connector.name)
                .is_some_and(|u| u.len() >= max && !u.contains(uri))
        {
            return Err(Error::BadInput(format!(
                "a session may hold at most {max} subscriptions on one connector"
            ))
            .into_mcp(&connector.name));
        }
        let route = Route {
            ctx,
            principal: &principal,
            tenant: &tenant,
            connector: &connector,
            target: format!("resources/subscribe {uri}"),
            retryable: false,
            params: None,
        };
        self.carry(
            &route,
            upstream_request.clone(),
            |_, _| upstream_request.clone(),
            (None, None),
        )
        .await
        .map_err(|e| e.into_mcp(&connector.name))?;
        if subscribing {
            // Its updates reach the client's GET stream.
            super::upstream_sessions::anchor(ctx);
        }
        let mut subscribed = lock(&self.client.subscribed);
        let uris = subscribed.entry(connector.name.clone()).or_default();
        if subscribing {
            uris.insert(uri.to_owned());
        } else {
            uris.remove(uri);
        }
        Ok(())
    }
}
