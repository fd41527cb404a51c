//! The MCP server every tenant's clients talk to: an rmcp `ServerHandler` that aggregates
//! the tools, prompts and resources of the tenant's connectors and routes calls to them.
//! It reads the authenticated caller from the HTTP request and the tenant's *current*
//! policy on every request, so a removed connector, revoked key or suspension applies to
//! sessions already open. One `Gateway` serves one client session (or one request without
//! a session); the upstream sessions it opens belong to that client alone.

// Logging is deprecated for future protocol versions; the versions served here have it.
#![allow(deprecated)]

use crate::auth::Caller;
use crate::exchange::{Call, Failure, Holder, Holds, Outcome, STATE_PREFIX, Upstream};
use crate::metrics::ReasonLabel;
use crate::names::NameMap;
use crate::policy::{Connector, Policies, Role, Tenant};
use crate::relay::Owner;
use crate::resilience::{Breaker, BreakerConfig, BreakerState, RetryBudget, backoff};
use crate::resume::{MayEnd, Takeover};
use crate::sessions::{Sessions, UpstreamRecord};
use crate::upstream::{Hooks, Session, UpstreamError, Upstreams, client_info};
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
/// How old a catalog a client's listing may be answered from: listings are not limited
/// like real work, so many of them must not each ask every upstream.
const LIST_FRESH: Duration = Duration::from_secs(1);

/// What one listing of all a tenant's connectors found.
#[derive(Debug, Default)]
struct Catalog {
    revision: u64,
    at: Option<Instant>,
    tool_names: NameMap,
    tools: Vec<Tool>,
    /// Each exposed tool's annotations, for the checks every call makes.
    annotations: HashMap<String, ToolAnnotations>,
    prompt_names: NameMap,
    prompts: Vec<Prompt>,
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
    /// Which connector listed each resource URI (or template URI prefix).
    resource_owner: HashMap<String, String>,
    template_owner: Vec<(String, String)>,
    /// Which connector listed each URI template, by the template itself.
    template_by_uri: HashMap<String, String>,
    /// Connectors whose listing failed: name, prefix and what went wrong.
    unavailable: Vec<(String, String, String)>,
}

impl Catalog {
    /// The connector a resource URI belongs to: the one that listed it, else the one whose
    /// template has the longest matching literal prefix.
    fn owner_of(&self, uri: &str) -> Option<String> {
        self.resource_owner
            .get(uri)
            .filter(|o| !o.is_empty())
            .cloned()
            .or_else(|| {
                self.template_owner
                    .iter()
                    .filter(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map(|(_, owner)| owner.clone())
            })
    }

    /// The connector whose tools `name` would be, if it could not be listed.
    fn unavailable_for(&self, name: &str) -> Option<(&str, &str)> {
        self.unavailable
            .iter()
            .find(|(_, prefix, _)| {
                !prefix.is_empty()
                    && name
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with("__"))
            })
            .map(|(connector, _, failure)| (connector.as_str(), failure.as_str()))
    }

    /// The connector that listed the URI template `template`.
    fn template_of(&self, template: &str) -> Option<String> {
        self.template_by_uri.get(template).cloned()
    }
}

/// The breaker and retry budget of one tenant x connector.
#[derive(Debug)]
struct Guard {
    breaker: Mutex<Breaker>,
    budget: Mutex<RetryBudget>,
}

/// A call the breaker let through; dropped without an outcome (cancelled), it gives its
/// probe place back.
struct Ticket<'a> {
    guard: &'a Guard,
    pass: Option<crate::resilience::Pass>,
}

impl Ticket<'_> {
    fn record(mut self, ok: bool) {
        if let (Some(pass), Ok(mut b)) = (self.pass.take(), self.guard.breaker.lock()) {
            b.record(pass, ok);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let (Some(pass), Ok(mut b)) = (self.pass.take(), self.guard.breaker.lock()) {
            b.abandon(pass);
        }
    }
}

impl Guard {
    fn new(config: BreakerConfig) -> Self {
        Self {
            breaker: Mutex::new(Breaker::new(config)),
            budget: Mutex::new(RetryBudget::default()),
        }
    }

    fn acquire(&self) -> Result<Ticket<'_>, Failure> {
        let mut b = self
            .breaker
            .lock()
            .map_err(|_| Failure::Input("breaker unavailable".into()))?;
        let pass = b
            .acquire()
            .map_err(|open| Failure::CircuitOpen(open.retry_at))?;
        Ok(Ticket {
            guard: self,
            pass: Some(pass),
        })
    }
}

/// What every client session of a worker shares.
#[derive(Debug)]
struct Core {
    policies: Arc<Policies>,
    upstreams: Arc<Upstreams>,
    usage: crate::usage::Reporter,
    /// Shared session records (upstream sessions of client sessions).
    sessions: Arc<Sessions>,
    catalogs: Mutex<HashMap<String, Arc<Catalog>>>,
    /// Per tenant, taken while its connectors are listed.
    listing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    holds: Holds,
    /// Breakers and retry budgets by tenant and connector.
    guards: Mutex<HashMap<(String, String), Arc<Guard>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// What belongs to one client session.
#[derive(Debug, Default)]
struct Scope {
    /// Upstream sessions by connector name.
    sessions: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// The log level the client asked for, applied to upstream sessions opened later.
    log_level: Mutex<Option<LoggingLevel>>,
    /// The upstream session ids recorded in the shared store, by connector name.
    recorded: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct Gateway {
    core: Arc<Core>,
    scope: Arc<Scope>,
}

/// Requests that may carry a client's answers to input requests (MCP 2026-07-28).
trait WithInput: Clone {
    fn state(&self) -> Option<&str>;
    fn answers(&self) -> Option<&InputResponses>;
    fn set_input(&mut self, answers: Option<InputResponses>, state: Option<String>);
    fn into_request(self) -> ClientRequest;
}

macro_rules! with_input {
    ($params:ty, $variant:ident) => {
        impl WithInput for $params {
            fn state(&self) -> Option<&str> {
                self.request_state.as_deref()
            }
            fn answers(&self) -> Option<&InputResponses> {
                self.input_responses.as_ref()
            }
            fn set_input(&mut self, answers: Option<InputResponses>, state: Option<String>) {
                self.input_responses = answers;
                self.request_state = state;
            }
            fn into_request(self) -> ClientRequest {
                ClientRequest::$variant(Request::new(self))
            }
        }
    };
}

with_input!(CallToolRequestParams, CallToolRequest);
with_input!(GetPromptRequestParams, GetPromptRequest);
with_input!(ReadResourceRequestParams, ReadResourceRequest);

/// Whether the request belongs to a session (protocol 2025-03-26 .. 2025-11-25); requests
/// of 2026-07-28 carry none.
fn in_session(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.extensions
        .get::<http::request::Parts>()
        .is_some_and(|p| p.headers.contains_key("mcp-session-id"))
}

fn tool_error(connector: &str, reason: &str, text: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    let meta = json!({ "reason": reason, "connector": connector });
    if let serde_json::Value::Object(map) = meta {
        result.meta = Some(MetaObject(map));
    }
    result
}

/// The usage report of one real call, sent when the call ends however it ends: a call its
/// client cancelled was still attempted upstream, and counts.
struct Report {
    usage: crate::usage::Reporter,
    event: Option<switchyard_bus::UsageEvent>,
    started: Instant,
}

impl Report {
    /// The call ended with `outcome`: `None` when nothing was sent upstream (the breaker was
    /// open, the client's input was unusable) or only a round of input was asked for, which
    /// is not reported; otherwise whether it succeeded.
    fn finish(mut self, outcome: Option<bool>) {
        match outcome {
            Some(ok) => self.send(ok),
            None => self.event = None,
        }
    }

    fn send(&mut self, ok: bool) {
        if let Some(mut event) = self.event.take() {
            event.ok = ok;
            event.duration_ms = self.started.elapsed().as_millis() as u64;
            self.usage.record(event);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.send(false);
    }
}

/// What to report of a request other than a tool call: nothing for a round of input or a
/// request never sent, else whether it succeeded.
fn reported(outcome: &Result<Outcome, Failure>) -> Option<bool> {
    match outcome {
        Ok(Outcome::InputRequired(_) | Outcome::Result(ServerResult::InputRequiredResult(_))) => {
            None
        }
        Ok(_) => Some(true),
        Err(f) => attempted(f),
    }
}

/// Whether a failed request was sent upstream (and so counts as a call).
fn attempted(failure: &Failure) -> Option<bool> {
    match failure {
        Failure::CircuitOpen(_) | Failure::Input(_) => None,
        _ => Some(false),
    }
}

impl Gateway {
    pub fn new(
        policies: Arc<Policies>,
        upstreams: Arc<Upstreams>,
        usage: crate::usage::Reporter,
        sessions: Arc<Sessions>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            core: Arc::new(Core {
                policies,
                upstreams,
                usage,
                sessions,
                catalogs: Mutex::default(),
                listing: Mutex::default(),
                holds: Holds::new(crate::relay::Diverted(metrics.relay_diverted.clone())),
                guards: Mutex::default(),
                metrics,
            }),
            scope: Arc::default(),
        }
    }

    /// A gateway for one more client session (or one request without a session).
    pub fn fork(&self) -> Self {
        Self {
            core: self.core.clone(),
            scope: Arc::default(),
        }
    }

    /// The upstream session of `c` this request uses: its client session's own (opened on
    /// first use), or for a request without a session one borrowed from the pool.
    async fn upstream(
        &self,
        ctx: &RequestContext<RoleServer>,
        tenant: &Tenant,
        c: &Connector,
    ) -> Result<Upstream, UpstreamError> {
        if !in_session(ctx) {
            let owner = Owner {
                peer: ctx.peer.clone(),
                wants_logs: ctx.meta.get("io.modelcontextprotocol/logLevel").is_some(),
                session: false,
            };
            return self
                .core
                .upstreams
                .lease(&tenant.slug, c, Some(owner))
                .await
                .map(Upstream::Leased);
        }
        let client_session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut sessions = self.scope.sessions.lock().await;
        if let Some(s) = sessions.get(&c.name)
            && s.fingerprint == c.fingerprint
            && !s.is_closed()
        {
            let s = s.clone();
            drop(sessions);
            self.record(&client_session, c, &s).await;
            return Ok(Upstream::Scoped(s));
        }
        // Another worker (or this one, before the session went idle) may have opened this
        // client session's upstream session: carry on with it.
        let recorded = self
            .core
            .sessions
            .upstreams(&client_session)
            .await
            .remove(&c.name)
            .filter(|r| r.fingerprint == c.fingerprint);
        let takeover = recorded.as_ref().and_then(|r| {
            Some(Takeover {
                session_id: r.session_id.clone(),
                init: serde_json::from_value(r.init.clone()).ok()?,
            })
        });
        if let Some(r) = &recorded
            && let Ok(mut known) = self.scope.recorded.lock()
        {
            known.insert(c.name.clone(), r.session_id.clone());
        }
        let may_end: MayEnd = {
            let store = self.core.sessions.clone();
            let id = client_session.clone();
            Arc::new(move || {
                let store = store.clone();
                let id = id.clone();
                Box::pin(async move { store.ended(&id).await })
            })
        };
        let caps = ctx
            .peer
            .peer_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
        let hooks = Hooks { takeover, may_end };
        let session = Arc::new(
            self.core
                .upstreams
                .connect(c, client_info(caps), Some(hooks))
                .await?,
        );
        session.relay.set_owner(Some(Owner {
            peer: ctx.peer.clone(),
            wants_logs: true,
            session: true,
        }));
        let level = self.scope.log_level.lock().ok().and_then(|l| *l);
        if let Some(level) = level
            && session.logs()
        {
            let _ = session
                .peer()
                .set_level(SetLevelRequestParams::new(level))
                .await;
        }
        sessions.insert(c.name.clone(), session.clone());
        drop(sessions);
        self.record(&client_session, c, &session).await;
        Ok(Upstream::Scoped(session))
    }

    /// Records the upstream session id of `c` with the client session, when it is new, so
    /// another worker carries on the same upstream session.
    async fn record(&self, client_session: &str, c: &Connector, session: &Session) {
        let Some(assigned) = session.assigned.lock().ok().and_then(|a| a.clone()) else {
            return;
        };
        let known = self
            .scope
            .recorded
            .lock()
            .ok()
            .and_then(|k| k.get(&c.name).cloned());
        if known.as_deref() == Some(assigned.as_str()) {
            return;
        }
        let Some(init) = session.server_info() else {
            return;
        };
        let record = UpstreamRecord {
            fingerprint: c.fingerprint,
            session_id: assigned.clone(),
            init,
        };
        self.core
            .sessions
            .record_upstream(client_session, &c.name, record)
            .await;
        if let Ok(mut k) = self.scope.recorded.lock() {
            k.insert(c.name.clone(), assigned);
        }
    }

    /// Carries `request` to connector `c` and back (see `exchange`), or continues a call
    /// held for the client's input when `state` is one this worker issued.
    #[allow(clippy::too_many_arguments)]
    async fn carry(
        &self,
        ctx: &RequestContext<RoleServer>,
        caller: &Caller,
        tenant: &Tenant,
        c: &Connector,
        target: String,
        request: ClientRequest,
        rebuild: impl Fn(InputResponses, Option<String>) -> ClientRequest,
        input: (Option<&str>, Option<&InputResponses>),
        retryable: bool,
    ) -> Result<Outcome, Failure> {
        let session_client = in_session(ctx);
        // A 2026-07-28 client's capabilities and log level hold for this request only. A
        // session client takes log messages at the level it set (every level until it sets
        // one), which a 2026-07-28 upstream learns per request.
        let mut meta = RequestMetaObject::new();
        if session_client {
            let level = self.scope.log_level.lock().ok().and_then(|l| *l);
            let level = serde_json::to_value(level.unwrap_or(LoggingLevel::Debug))
                .unwrap_or_else(|_| serde_json::json!("debug"));
            meta.insert("io.modelcontextprotocol/logLevel".to_owned(), level);
        } else {
            for key in [
                "io.modelcontextprotocol/clientCapabilities",
                "io.modelcontextprotocol/logLevel",
            ] {
                if let Some(v) = ctx.meta.get(key) {
                    meta.insert(key.to_owned(), v.clone());
                }
            }
        }
        let meta = Some(meta);
        // A session client's log level is set on its upstream sessions; a 2026-07-28
        // client asks for logs per request.
        let wants_logs =
            session_client || ctx.meta.get("io.modelcontextprotocol/logLevel").is_some();
        let call = Call {
            client: ctx.peer.clone(),
            request_id: ctx.id.clone(),
            wants_logs,
            session_client,
            holder: Holder {
                tenant: caller.tenant.clone(),
                key_id: caller.key_id.clone(),
                target,
            },
            client_token: ctx.meta.get_progress_token(),
            meta,
            timeout: c.timeout,
        };
        if let (Some(state), answers) = input
            && state.starts_with(STATE_PREFIX)
        {
            return self.core.holds.resume_with(&call, state, answers).await;
        }
        let guard = self.guard(&tenant.slug, c);
        if let Ok(mut budget) = guard.budget.lock() {
            budget.deposit();
        }
        let attempts = if retryable { c.retry.max_attempts } else { 1 };
        let mut attempt = 0;
        loop {
            let ticket = guard.acquire()?;
            let result = async {
                let upstream = self.upstream(ctx, tenant, c).await?;
                let session = upstream.session().cloned();
                let result = self
                    .core
                    .holds
                    .exchange(&call, upstream, request.clone(), &rebuild)
                    .await;
                if let (Err(f), Some(s)) = (&result, session)
                    && f.is_transient()
                {
                    s.mark_broken();
                }
                result
            }
            .await;
            ticket.record(!result.as_ref().is_err_and(Failure::counts_against_upstream));
            if let Ok(b) = guard.breaker.lock() {
                let value = b.state().gauge();
                self.core
                    .metrics
                    .breakers
                    .get_or_create(&crate::metrics::BreakerLabel {
                        tenant: tenant.slug.clone(),
                        connector: c.name.clone(),
                    })
                    .set(value);
            }
            match result {
                Err(f) if f.is_transient() && attempt + 1 < attempts => {
                    let allowed = guard.budget.lock().is_ok_and(|mut b| b.withdraw());
                    let outcome = if allowed {
                        "attempted"
                    } else {
                        "budget_exhausted"
                    };
                    self.core
                        .metrics
                        .retries
                        .get_or_create(&ReasonLabel { reason: outcome })
                        .inc();
                    if !allowed {
                        return Err(f);
                    }
                    tracing::debug!(tenant = %tenant.slug, connector = %c.name, attempt, error = %f, "retrying");
                    let wait = backoff(attempt, c.retry.initial_backoff, c.retry.max_backoff);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The breaker and retry budget of `tenant` x `c`, following the connector's breaker
    /// configuration.
    fn guard(&self, tenant: &str, c: &Connector) -> Arc<Guard> {
        let Ok(mut guards) = self.core.guards.lock() else {
            return Arc::new(Guard::new(c.breaker));
        };
        let guard = guards
            .entry((tenant.to_owned(), c.name.clone()))
            .or_insert_with(|| Arc::new(Guard::new(c.breaker)));
        if guard.breaker.lock().is_ok_and(|b| b.config() != c.breaker) {
            *guard = Arc::new(Guard::new(c.breaker));
        }
        guard.clone()
    }

    /// Every breaker this worker has, with its state.
    pub fn breakers(&self) -> Vec<(String, String, BreakerState)> {
        let Ok(guards) = self.core.guards.lock() else {
            return Vec::new();
        };
        guards
            .iter()
            .filter_map(|((t, c), g)| Some((t.clone(), c.clone(), g.breaker.lock().ok()?.state())))
            .collect()
    }

    /// Forgets breakers of tenants or connectors that are gone.
    pub fn retain_breakers(&self, keep: impl Fn(&str, &str) -> bool) {
        if let Ok(mut guards) = self.core.guards.lock() {
            guards.retain(|(t, c), _| keep(t, c));
        }
    }

    /// Lets go of what is no longer needed: expired held calls, idle pooled upstream
    /// sessions, and the state of tenants and connectors that are gone.
    pub fn sweep(&self) {
        self.core.holds.purge();
        let policies = &self.core.policies;
        let exists = |tenant: &str, connector: &str| {
            policies
                .get(tenant)
                .is_some_and(|t| t.connectors.iter().any(|c| c.name == connector))
        };
        self.core.upstreams.sweep(exists);
        self.retain_breakers(exists);
        if let Ok(mut catalogs) = self.core.catalogs.lock() {
            catalogs.retain(|tenant, _| policies.get(tenant).is_some());
        }
        if let Ok(mut listing) = self.core.listing.lock() {
            listing.retain(|tenant, _| policies.get(tenant).is_some());
        }
    }

    /// Carries a client's request (`client`, renamed for the upstream as `upstream`) to
    /// connector `c`. Answers to this worker's own input requests stay here; an upstream's
    /// own input rounds pass through untouched.
    #[allow(clippy::too_many_arguments)]
    async fn forward<P: WithInput>(
        &self,
        ctx: &RequestContext<RoleServer>,
        caller: &Caller,
        tenant: &Tenant,
        c: &Connector,
        target: String,
        client: &P,
        upstream: P,
        retryable: bool,
    ) -> Result<Outcome, Failure> {
        let ours = client.state().is_some_and(|s| s.starts_with(STATE_PREFIX));
        let mut first = upstream.clone();
        if ours {
            first.set_input(None, None);
        } else {
            first.set_input(client.answers().cloned(), client.state().map(str::to_owned));
        }
        let rebuild = |answers: InputResponses, state: Option<String>| {
            let mut again = upstream.clone();
            again.set_input(Some(answers), state);
            again.into_request()
        };
        let input = (client.state(), client.answers());
        self.carry(
            ctx,
            caller,
            tenant,
            c,
            target,
            first.into_request(),
            rebuild,
            input,
            retryable,
        )
        .await
    }

    fn tenant(&self, ctx: &RequestContext<RoleServer>) -> Result<(Caller, Arc<Tenant>), McpError> {
        let caller = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| McpError::internal_error("request is not authenticated", None))?;
        let tenant = self
            .core
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
        let fresh = || {
            self.core
                .catalogs
                .lock()
                .ok()
                .and_then(|c| c.get(&tenant.slug).cloned())
                .filter(|c| {
                    c.revision == tenant.revision && c.at.is_some_and(|at| at.elapsed() < max_age)
                })
        };
        if let Some(c) = fresh() {
            return c;
        }
        // One listing at a time per tenant: the others wait for it and use its result.
        let turn = self
            .core
            .listing
            .lock()
            .map(|mut l| l.entry(tenant.slug.clone()).or_default().clone())
            .unwrap_or_default();
        let _turn = turn.lock().await;
        if let Some(c) = fresh() {
            return c;
        }
        let catalog = Arc::new(self.list_all(tenant).await);
        if let Ok(mut c) = self.core.catalogs.lock() {
            c.insert(tenant.slug.clone(), catalog.clone());
        }
        catalog
    }

    async fn list_all(&self, tenant: &Tenant) -> Catalog {
        let listings = join_all(tenant.connectors.iter().map(|c| async move {
            let listing = async {
                let lease = self.core.upstreams.lease(&tenant.slug, c, None).await?;
                let Some(session) = lease.session() else {
                    return Ok(Default::default());
                };
                let peer = session.peer();
                let info = peer.peer_info();
                let caps = info.as_ref().map(|i| i.capabilities.clone()).unwrap_or_default();
                let failed = |what: &str, e: rmcp::service::ServiceError| {
                    UpstreamError::Protocol(format!("{what}: {e}"))
                };
                let tools = match caps.tools {
                    Some(_) => peer.list_all_tools().await.map_err(|e| failed("tools/list", e))?,
                    None => Vec::new(),
                };
                let prompts = match caps.prompts {
                    Some(_) => peer.list_all_prompts().await.map_err(|e| failed("prompts/list", e))?,
                    None => Vec::new(),
                };
                let (resources, templates) = match caps.resources {
                    Some(_) => (
                        peer.list_all_resources()
                            .await
                            .map_err(|e| failed("resources/list", e))?,
                        peer.list_all_resource_templates()
                            .await
                            .map_err(|e| failed("resources/templates/list", e))?,
                    ),
                    None => (Vec::new(), Vec::new()),
                };
                Ok::<_, UpstreamError>((tools, prompts, resources, templates))
            };
            let result = match tokio::time::timeout(c.timeout, listing).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout(c.timeout.as_millis() as u64)),
            };
            let failure = result.as_ref().err().map(|e| {
                tracing::warn!(tenant = %tenant.slug, connector = %c.name, error = %e, "listing an upstream failed");
                e.public()
            });
            (c.clone(), result.unwrap_or_default(), failure)
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
        for (c, _, failure) in &listings {
            if let Some(failure) = failure {
                catalog
                    .unavailable
                    .push((c.name.clone(), c.prefix.clone(), failure.clone()));
            }
        }
        for (c, (tools, prompts, resources, templates), _) in &listings {
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
                catalog
                    .template_by_uri
                    .insert(t.uri_template.clone(), c.name.clone());
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
                if let Some(a) = &t.annotations {
                    catalog.annotations.insert(exposed.clone(), a.clone());
                }
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

    /// Starts the usage report of a real call to `connector`.
    fn report(&self, caller: &Caller, method: &str, target: &str, connector: &str) -> Report {
        Report {
            usage: self.core.usage.clone(),
            event: Some(switchyard_bus::UsageEvent {
                id: uuid::Uuid::new_v4().simple().to_string(),
                tenant: caller.tenant.clone(),
                key_id: caller.key_id.clone(),
                method: method.to_owned(),
                target: target.to_owned(),
                connector: connector.to_owned(),
                ok: false,
                at_ms: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                duration_ms: 0,
            }),
            started: Instant::now(),
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

/// A failure as a `tools/call` result the model reads, naming the connector.
fn failure_result(connector: &str, failure: &Failure) -> CallToolResult {
    let reason = match failure {
        Failure::Upstream(UpstreamError::Timeout(_)) => "upstream_timeout",
        Failure::Upstream(_) => "upstream_unavailable",
        Failure::Service(_) => "upstream_error",
        Failure::Input(_) => "input_invalid",
        Failure::CircuitOpen(_) => "circuit_open",
    };
    let mut result = upstream_failure(connector, &failure.public(), reason);
    if let Failure::CircuitOpen(at) = failure {
        let ms = at
            .saturating_duration_since(tokio::time::Instant::now())
            .as_millis() as u64;
        if let Some(meta) = result.meta.as_mut() {
            meta.0.insert("retryAfterMs".into(), json!(ms));
        }
    }
    result
}

/// A failure of a request other than `tools/call`, as a JSON-RPC error naming the connector.
fn failure_error(connector: &str, failure: Failure) -> McpError {
    match failure {
        Failure::Service(rmcp::service::ServiceError::McpError(e)) => e,
        Failure::Input(message) => McpError::invalid_params(message, None),
        other => McpError::internal_error(
            format!("the {connector} connector failed: {}", other.public()),
            None,
        ),
    }
}

/// Results of session-era upstreams lack the discriminator 2026-07-28 clients require
/// (rmcp drops it again for session clients).
fn complete(result_type: &mut Option<ResultType>) {
    result_type.get_or_insert(ResultType::COMPLETE);
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
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        Ok(ListToolsResult::with_all_items(catalog.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (caller, tenant) = self.tenant(&ctx)?;
        let name = request.name.to_string();
        let (catalog, target) = self
            .resolve(&tenant, |c| c.tool_names.get(&name).cloned())
            .await;
        let unknown = || McpError::invalid_params(format!("unknown tool: {name}"), None);
        let Some(target) = target else {
            // A tool of a connector that is down: say so, in a result the model reads.
            if let Some((connector, failure)) = catalog.unavailable_for(&name) {
                return Ok(CallToolResponse::Complete(upstream_failure(
                    connector,
                    &failure,
                    "upstream_unavailable",
                )));
            }
            return Err(unknown());
        };
        let connector = Self::connector(&tenant, &target.connector).ok_or_else(unknown)?;
        let annotations = catalog.annotations.get(&name).cloned().unwrap_or_default();
        let read_only = annotations.read_only_hint.unwrap_or(false);
        // A tool call is tried again only when the upstream says doing it twice is harmless
        // and the operator allowed it for this connector.
        let retryable = connector.retry.idempotent_tools
            && (read_only || annotations.idempotent_hint.unwrap_or(false));
        if caller.role == Role::Viewer && !read_only {
            return Ok(CallToolResponse::Complete(tool_error(
                &connector.name,
                "permission_denied",
                format!(
                    "This API key has the viewer role, which may call only read-only tools; {name} is not marked read-only."
                ),
            )));
        }
        let mut params = CallToolRequestParams::new(target.upstream.clone());
        params.arguments = request.arguments.clone();
        let report = self.report(&caller, "tools/call", &name, &connector.name);
        let outcome = self
            .forward(
                &ctx,
                &caller,
                &tenant,
                connector,
                format!("tools/call {name}"),
                &request,
                params,
                retryable,
            )
            .await;
        let (response, reported) = match outcome {
            Ok(Outcome::InputRequired(asked))
            | Ok(Outcome::Result(ServerResult::InputRequiredResult(asked))) => {
                (CallToolResponse::InputRequired(asked), None)
            }
            Ok(Outcome::Result(ServerResult::CallToolResult(mut result))) => {
                let ok = result.is_error != Some(true);
                complete(&mut result.result_type);
                (CallToolResponse::Complete(result), Some(ok))
            }
            Ok(Outcome::Result(_)) => (
                CallToolResponse::Complete(upstream_failure(
                    &connector.name,
                    &"it answered with something other than a tool result",
                    "upstream_error",
                )),
                Some(false),
            ),
            Err(Failure::Service(rmcp::service::ServiceError::McpError(e)))
                if e.code != ErrorCode::INTERNAL_ERROR =>
            {
                // The upstream refused the call (bad arguments, a capability the client
                // lacks, ...): its answer is for the client, as it is.
                report.finish(Some(false));
                return Err(e);
            }
            Err(Failure::Input(message)) => {
                report.finish(None);
                return Err(McpError::invalid_params(message, None));
            }
            Err(failure) => {
                tracing::warn!(tenant = %tenant.slug, connector = %connector.name, tool = %name, error = %failure, "tool call failed upstream");
                let reported = attempted(&failure);
                (
                    CallToolResponse::Complete(failure_result(&connector.name, &failure)),
                    reported,
                )
            }
        };
        report.finish(reported);
        Ok(response)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        Ok(ListPromptsResult::with_all_items(catalog.prompts.clone()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let (caller, tenant) = self.tenant(&ctx)?;
        let (_, target) = self
            .resolve(&tenant, |c| c.prompt_names.get(&request.name).cloned())
            .await;
        let unknown =
            || McpError::invalid_params(format!("unknown prompt: {}", request.name), None);
        let target = target.ok_or_else(unknown)?;
        let connector = Self::connector(&tenant, &target.connector).ok_or_else(unknown)?;
        let mut params = request.clone();
        params.name = target.upstream;
        params.meta = None;
        let report = self.report(&caller, "prompts/get", &request.name, &connector.name);
        let outcome = self
            .forward(
                &ctx,
                &caller,
                &tenant,
                connector,
                format!("prompts/get {}", request.name),
                &request,
                params,
                true,
            )
            .await;
        report.finish(reported(&outcome));
        match outcome.map_err(|f| failure_error(&connector.name, f))? {
            Outcome::InputRequired(asked)
            | Outcome::Result(ServerResult::InputRequiredResult(asked)) => {
                Ok(GetPromptResponse::InputRequired(asked))
            }
            Outcome::Result(ServerResult::GetPromptResult(mut r)) => {
                complete(&mut r.result_type);
                Ok(GetPromptResponse::Complete(r))
            }
            Outcome::Result(_) => Err(McpError::internal_error(
                format!(
                    "the {} connector answered with something other than a prompt",
                    connector.name
                ),
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (_, tenant) = self.tenant(&ctx)?;
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
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
        let catalog = self.catalog(&tenant, LIST_FRESH).await;
        Ok(ListResourceTemplatesResult::with_all_items(
            catalog.templates.clone(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (caller, tenant) = self.tenant(&ctx)?;
        let uri = request.uri.clone();
        let (_, owner) = self.resolve(&tenant, |c| c.owner_of(&uri)).await;
        let not_found = || {
            McpError::invalid_params(
                format!("unknown resource: {uri}"),
                Some(json!({ "uri": uri })),
            )
        };
        let owner = owner.ok_or_else(not_found)?;
        let connector = Self::connector(&tenant, &owner).ok_or_else(not_found)?;
        let mut params = request.clone();
        params.meta = None;
        let report = self.report(&caller, "resources/read", &uri, &connector.name);
        let outcome = self
            .forward(
                &ctx,
                &caller,
                &tenant,
                connector,
                format!("resources/read {uri}"),
                &request,
                params,
                true,
            )
            .await;
        report.finish(reported(&outcome));
        match outcome.map_err(|f| failure_error(&connector.name, f))? {
            Outcome::InputRequired(asked)
            | Outcome::Result(ServerResult::InputRequiredResult(asked)) => {
                Ok(ReadResourceResponse::InputRequired(asked))
            }
            Outcome::Result(ServerResult::ReadResourceResult(mut r)) => {
                complete(&mut r.result_type);
                Ok(ReadResourceResponse::Complete(r))
            }
            Outcome::Result(_) => Err(McpError::internal_error(
                format!(
                    "the {} connector answered with something other than resource contents",
                    connector.name
                ),
                None,
            )),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let (caller, tenant) = self.tenant(&ctx)?;
        let mut params = request.clone();
        params.meta = None;
        let route = match &request.r#ref {
            Reference::Prompt(p) => {
                let (_, target) = self
                    .resolve(&tenant, |c| c.prompt_names.get(&p.name).cloned())
                    .await;
                target.map(|t| {
                    if let Reference::Prompt(up) = &mut params.r#ref {
                        up.name = t.upstream;
                    }
                    t.connector
                })
            }
            Reference::Resource(r) => {
                let (_, owner) = self.resolve(&tenant, |c| c.template_of(&r.uri)).await;
                owner
            }
            _ => None,
        };
        // Nothing to complete from: no suggestions rather than an error.
        let empty = || CompleteResult::new(CompletionInfo::default());
        let Some(connector) = route.and_then(|name| Self::connector(&tenant, &name).cloned())
        else {
            return Ok(empty());
        };
        let upstream_request = ClientRequest::CompleteRequest(Request::new(params));
        let outcome = self
            .carry(
                &ctx,
                &caller,
                &tenant,
                &connector,
                "completion/complete".into(),
                upstream_request.clone(),
                |_, _| upstream_request.clone(),
                (None, None),
                true,
            )
            .await;
        match outcome.map_err(|f| failure_error(&connector.name, f))? {
            Outcome::Result(ServerResult::CompleteResult(r)) => Ok(r),
            _ => Ok(empty()),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if let Ok(mut level) = self.scope.log_level.lock() {
            *level = Some(request.level);
        }
        let sessions: Vec<_> = self.scope.sessions.lock().await.values().cloned().collect();
        for s in sessions.iter().filter(|s| s.logs()) {
            let _ = s.peer().set_level(request.clone()).await;
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
            return Err(McpError::invalid_request(
                "resources/subscribe needs a session",
                None,
            ));
        }
        let (caller, tenant) = self.tenant(ctx)?;
        let (_, owner) = self.resolve(&tenant, |c| c.owner_of(uri)).await;
        let not_found = || {
            McpError::invalid_params(
                format!("unknown resource: {uri}"),
                Some(json!({ "uri": uri })),
            )
        };
        let connector = owner
            .and_then(|o| Self::connector(&tenant, &o).cloned())
            .ok_or_else(not_found)?;
        let outcome = self
            .carry(
                ctx,
                &caller,
                &tenant,
                &connector,
                format!("resources/subscribe {uri}"),
                upstream_request.clone(),
                |_, _| upstream_request.clone(),
                (None, None),
                false,
            )
            .await;
        outcome.map_err(|f| failure_error(&connector.name, f))?;
        Ok(())
    }
}
