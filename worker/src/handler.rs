//! The MCP server every tenant's clients talk to: an rmcp `ServerHandler` that aggregates
//! the tools, prompts and resources of the tenant's connectors and routes calls to them.
//! It reads the authenticated caller from the HTTP request and the tenant's *current*
//! policy on every request, so a removed connector, revoked key or suspension applies to
//! sessions already open.

use crate::auth::Caller;
use crate::names::NameMap;
use crate::policy::{Connector, Policies, Role, Tenant};
use crate::upstream::{UpstreamError, Upstreams};
use futures::future::join_all;
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a tenant's aggregated listing is reused for routing calls.
const CATALOG_TTL: Duration = Duration::from_secs(30);
/// How old a catalog may be before a name it does not know makes the worker list afresh.
const RELIST_AFTER: Duration = Duration::from_secs(1);

/// What one listing of all a tenant's connectors found.
#[derive(Debug, Default)]
struct Catalog {
    revision: u64,
    at: Option<Instant>,
    tool_names: NameMap,
    tools: Vec<Tool>,
    prompt_names: NameMap,
    prompts: Vec<Prompt>,
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
    /// Which connector listed each resource URI (or template URI prefix).
    resource_owner: HashMap<String, String>,
    template_owner: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Gateway {
    policies: Arc<Policies>,
    upstreams: Arc<Upstreams>,
    usage: crate::usage::Reporter,
    catalogs: Arc<Mutex<HashMap<String, Arc<Catalog>>>>,
}

fn tool_error(connector: &str, reason: &str, text: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    let meta = json!({ "reason": reason, "connector": connector });
    if let serde_json::Value::Object(map) = meta {
        result.meta = Some(MetaObject(map));
    }
    result
}

impl Gateway {
    pub fn new(
        policies: Arc<Policies>,
        upstreams: Arc<Upstreams>,
        usage: crate::usage::Reporter,
    ) -> Self {
        Self {
            policies,
            upstreams,
            usage,
            catalogs: Arc::default(),
        }
    }

    fn tenant(&self, ctx: &RequestContext<RoleServer>) -> Result<(Caller, Arc<Tenant>), McpError> {
        let caller = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| McpError::internal_error("request is not authenticated", None))?;
        let tenant = self
            .policies
            .get(&caller.tenant)
            .ok_or_else(|| McpError::invalid_request("this tenant no longer exists", None))?;
        Ok((caller, tenant))
    }

    fn connector<'t>(tenant: &'t Tenant, name: &str) -> Option<&'t Arc<Connector>> {
        tenant.connectors.iter().find(|c| c.name == name)
    }

    /// The tenant's catalog, listed afresh when older than `max_age` or made for an older
    /// policy revision.
    async fn catalog(&self, tenant: &Tenant, max_age: Duration) -> Arc<Catalog> {
        let cached = self
            .catalogs
            .lock()
            .ok()
            .and_then(|c| c.get(&tenant.slug).cloned());
        if let Some(c) = cached
            && c.revision == tenant.revision
            && c.at.is_some_and(|at| at.elapsed() < max_age)
        {
            return c;
        }
        let catalog = Arc::new(self.list_all(tenant).await);
        if let Ok(mut c) = self.catalogs.lock() {
            c.insert(tenant.slug.clone(), catalog.clone());
        }
        catalog
    }

    async fn list_all(&self, tenant: &Tenant) -> Catalog {
        let listings = join_all(tenant.connectors.iter().map(|c| async move {
            let listing = async {
                let peer = self.upstreams.peer(&tenant.slug, c).await?;
                let info = peer.peer_info();
                let caps = info.as_ref().map(|i| i.capabilities.clone()).unwrap_or_default();
                let tools = match caps.tools {
                    Some(_) => peer.list_all_tools().await.unwrap_or_default(),
                    None => Vec::new(),
                };
                let prompts = match caps.prompts {
                    Some(_) => peer.list_all_prompts().await.unwrap_or_default(),
                    None => Vec::new(),
                };
                let (resources, templates) = match caps.resources {
                    Some(_) => (
                        peer.list_all_resources().await.unwrap_or_default(),
                        peer.list_all_resource_templates().await.unwrap_or_default(),
                    ),
                    None => (Vec::new(), Vec::new()),
                };
                Ok::<_, UpstreamError>((tools, prompts, resources, templates))
            };
            let result = match tokio::time::timeout(c.timeout, listing).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout(c.timeout.as_millis() as u64)),
            };
            if let Err(e) = &result {
                tracing::warn!(tenant = %tenant.slug, connector = %c.name, error = %e, "listing an upstream failed");
                self.upstreams.forget(&tenant.slug, &c.name);
            }
            (c.clone(), result.unwrap_or_default())
        }))
        .await;

        let mut catalog = Catalog {
            revision: tenant.revision,
            at: Some(Instant::now()),
            ..Catalog::default()
        };
        let mut tool_defs = HashMap::new();
        let mut prompt_defs = HashMap::new();
        let mut tool_entries = Vec::new();
        let mut prompt_entries = Vec::new();
        for (c, (tools, prompts, resources, templates)) in &listings {
            let mut names = Vec::new();
            for t in tools.iter().filter(|t| c.exposes(&t.name)) {
                names.push(t.name.to_string());
                tool_defs.insert((c.name.clone(), t.name.to_string()), t.clone());
            }
            tool_entries.push((c.name.as_str(), c.prefix.as_str(), names));
            let mut pnames = Vec::new();
            for p in prompts {
                pnames.push(p.name.clone());
                prompt_defs.insert((c.name.clone(), p.name.clone()), p.clone());
            }
            prompt_entries.push((c.name.as_str(), c.prefix.as_str(), pnames));
            for r in resources {
                if catalog
                    .resource_owner
                    .insert(r.uri.clone(), c.name.clone())
                    .is_some()
                {
                    tracing::warn!(tenant = %tenant.slug, uri = %r.uri, "resource listed by two connectors; hidden");
                    catalog.resource_owner.insert(r.uri.clone(), String::new());
                } else {
                    catalog.resources.push(r.clone());
                }
            }
            for t in templates {
                let prefix = t
                    .uri_template
                    .split('{')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                catalog.template_owner.push((prefix, c.name.clone()));
                catalog.templates.push(t.clone());
            }
        }
        catalog.resources.retain(|r| {
            catalog
                .resource_owner
                .get(&r.uri)
                .is_some_and(|o| !o.is_empty())
        });
        let (tool_names, tool_order) = NameMap::build(tool_entries);
        let (prompt_names, prompt_order) = NameMap::build(prompt_entries);
        for name in tool_names.collisions() {
            tracing::warn!(tenant = %tenant.slug, tool = %name, "tool name exposed by more than one connector; hidden");
        }
        for name in prompt_names.collisions() {
            tracing::warn!(tenant = %tenant.slug, prompt = %name, "prompt name exposed by more than one connector; hidden");
        }
        for (exposed, target) in tool_order {
            if let Some(def) = tool_defs.get(&(target.connector, target.upstream)) {
                let mut t = def.clone();
                t.name = exposed.into();
                catalog.tools.push(t);
            }
        }
        for (exposed, target) in prompt_order {
            if let Some(def) = prompt_defs.get(&(target.connector, target.upstream)) {
                let mut p = def.clone();
                p.name = exposed;
                catalog.prompts.push(p);
            }
        }
        catalog.tool_names = tool_names;
        catalog.prompt_names = prompt_names;
        catalog
    }

    /// Calls `upstream` on `connector`; failures become results the model can read.
    async fn call_upstream(
        &self,
        tenant: &Tenant,
        connector: &Connector,
        upstream: &str,
        request: CallToolRequestParams,
    ) -> CallToolResponse {
        let peer = match self.upstreams.peer(&tenant.slug, connector).await {
            Ok(p) => p,
            Err(e) => {
                return CallToolResponse::Complete(upstream_failure(
                    &connector.name,
                    &e,
                    "upstream_unavailable",
                ));
            }
        };
        let mut params = CallToolRequestParams::new(upstream.to_owned());
        if let Some(args) = request.arguments {
            params = params.with_arguments(args);
        }
        if let Some(responses) = request.input_responses {
            params = params.with_input_responses(responses);
        }
        if let Some(state) = request.request_state {
            params = params.with_request_state(state);
        }
        match tokio::time::timeout(connector.timeout, peer.call_tool_once(params)).await {
            Ok(Ok(CallToolResponse::Complete(mut result))) => {
                // A legacy upstream leaves the discriminator out; modern clients need it
                // (rmcp drops it again for legacy clients).
                result.result_type.get_or_insert(ResultType::COMPLETE);
                CallToolResponse::Complete(result)
            }
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.upstreams.forget(&tenant.slug, &connector.name);
                CallToolResponse::Complete(upstream_failure(&connector.name, &e, "upstream_error"))
            }
            Err(_) => CallToolResponse::Complete(upstream_failure(
                &connector.name,
                &format!("no answer within {} ms", connector.timeout.as_millis()),
                "upstream_timeout",
            )),
        }
    }

    /// Reports a real call that reached a connector.
    fn report(
        &self,
        caller: &Caller,
        method: &str,
        target: &str,
        connector: &str,
        ok: bool,
        started: (SystemTime, Instant),
    ) {
        self.usage.record(switchyard_bus::UsageEvent {
            id: uuid::Uuid::new_v4().simple().to_string(),
            tenant: caller.tenant.clone(),
            key_id: caller.key_id.clone(),
            method: method.to_owned(),
            target: target.to_owned(),
            connector: connector.to_owned(),
            ok,
            at_ms: started
                .0
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            duration_ms: started.1.elapsed().as_millis() as u64,
        });
    }

    /// Sends a non-tool request to a connector. Failures are JSON-RPC errors naming the
    /// connector (only tool calls answer failures with a result the model reads).
    async fn forward<T, F>(
        &self,
        tenant: &Tenant,
        connector: &Connector,
        send: impl FnOnce(rmcp::service::Peer<rmcp::RoleClient>) -> F,
    ) -> Result<T, McpError>
    where
        F: std::future::Future<Output = Result<T, rmcp::service::ServiceError>>,
    {
        let failed = |e: &dyn std::fmt::Display| {
            McpError::internal_error(
                format!("the {} connector failed: {e}", connector.name),
                None,
            )
        };
        let peer = self
            .upstreams
            .peer(&tenant.slug, connector)
            .await
            .map_err(|e| failed(&e))?;
        match tokio::time::timeout(connector.timeout, send(peer)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.upstreams.forget(&tenant.slug, &connector.name);
                Err(failed(&e))
            }
            Err(_) => Err(failed(&format!(
                "no answer within {} ms",
                connector.timeout.as_millis()
            ))),
        }
    }

    /// Looks a name up, listing afresh once if the cached catalog does not know it.
    async fn resolve<T>(
        &self,
        tenant: &Tenant,
        find: impl Fn(&Catalog) -> Option<T>,
    ) -> (Arc<Catalog>, Option<T>) {
        let catalog = self.catalog(tenant, CATALOG_TTL).await;
        if let Some(found) = find(&catalog) {
            return (catalog, Some(found));
        }
        // At most one fresh listing a second per tenant, so unknown names cannot make the
        // worker list every upstream on every request.
        let fresh = self.catalog(tenant, RELIST_AFTER).await;
        let found = find(&fresh);
        (fresh, found)
    }
}

fn upstream_failure(connector: &str, e: &dyn std::fmt::Display, reason: &str) -> CallToolResult {
    tool_error(
        connector,
        reason,
        format!("The {connector} connector failed: {e}. Other tools still work; try again later."),
    )
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
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
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, Duration::ZERO).await;
        Ok(ListToolsResult::with_all_items(catalog.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = (SystemTime::now(), Instant::now());
        let (caller, tenant) = self.tenant(&ctx)?;
        let name = request.name.to_string();
        let (catalog, target) = self
            .resolve(&tenant, |c| c.tool_names.get(&name).cloned())
            .await;
        let Some(target) = target else {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        };
        let Some(connector) = Self::connector(&tenant, &target.connector) else {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        };
        if caller.role == Role::Viewer {
            let read_only = catalog
                .tools
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.annotations.as_ref())
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false);
            if !read_only {
                return Ok(CallToolResponse::Complete(tool_error(
                    &connector.name,
                    "permission_denied",
                    format!(
                        "This API key has the viewer role, which may call only read-only tools; {name} is not marked read-only."
                    ),
                )));
            }
        }
        let response = self
            .call_upstream(&tenant, connector, &target.upstream, request)
            .await;
        let ok = matches!(&response, CallToolResponse::Complete(r) if r.is_error != Some(true))
            || matches!(&response, CallToolResponse::InputRequired(_));
        self.report(&caller, "tools/call", &name, &connector.name, ok, started);
        Ok(response)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, Duration::ZERO).await;
        Ok(ListPromptsResult::with_all_items(catalog.prompts.clone()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let started = (SystemTime::now(), Instant::now());
        let (caller, tenant) = self.tenant(&ctx)?;
        let (_, target) = self
            .resolve(&tenant, |c| c.prompt_names.get(&request.name).cloned())
            .await;
        let target = target.ok_or_else(|| {
            McpError::invalid_params(format!("unknown prompt: {}", request.name), None)
        })?;
        let connector = Self::connector(&tenant, &target.connector).ok_or_else(|| {
            McpError::invalid_params(format!("unknown prompt: {}", request.name), None)
        })?;
        let mut params = request.clone();
        params.name = target.upstream;
        params.meta = None;
        let response = self
            .forward(&tenant, connector, |peer| async move {
                peer.get_prompt_once(params).await
            })
            .await;
        self.report(
            &caller,
            "prompts/get",
            &request.name,
            &connector.name,
            response.is_ok(),
            started,
        );
        let response = response?;
        Ok(match response {
            GetPromptResponse::Complete(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                GetPromptResponse::Complete(r)
            }
            other => other,
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, Duration::ZERO).await;
        Ok(ListResourcesResult::with_all_items(
            catalog.resources.clone(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, Duration::ZERO).await;
        Ok(ListResourceTemplatesResult::with_all_items(
            catalog.templates.clone(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let started = (SystemTime::now(), Instant::now());
        let (caller, tenant) = self.tenant(&ctx)?;
        let uri = request.uri.clone();
        let owner = |c: &Catalog| {
            c.resource_owner
                .get(&uri)
                .filter(|o| !o.is_empty())
                .cloned()
                .or_else(|| {
                    c.template_owner
                        .iter()
                        .filter(|(prefix, _)| {
                            !prefix.is_empty() && uri.starts_with(prefix.as_str())
                        })
                        .max_by_key(|(prefix, _)| prefix.len())
                        .map(|(_, owner)| owner.clone())
                })
        };
        let (_, owner) = self.resolve(&tenant, owner).await;
        let owner = owner.ok_or_else(|| {
            McpError::resource_not_found(format!("unknown resource: {uri}"), None)
        })?;
        let connector = Self::connector(&tenant, &owner).ok_or_else(|| {
            McpError::resource_not_found(format!("unknown resource: {uri}"), None)
        })?;
        let mut params = request.clone();
        params.meta = None;
        let response = self
            .forward(&tenant, connector, |peer| async move {
                peer.read_resource_once(params).await
            })
            .await;
        self.report(
            &caller,
            "resources/read",
            &uri,
            &connector.name,
            response.is_ok(),
            started,
        );
        let response = response?;
        Ok(match response {
            ReadResourceResponse::Complete(mut r) => {
                r.result_type.get_or_insert(ResultType::COMPLETE);
                ReadResourceResponse::Complete(r)
            }
            other => other,
        })
    }
}
