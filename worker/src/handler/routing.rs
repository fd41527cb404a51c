//! The one path a real call (`tools/call`, `prompts/get`, `resources/read`) takes to its
//! connector: a usage report that is sent however the call ends, the connector's breaker
//! and retries (`resilience::Guard`), the upstream session (`upstream_sessions`), and era
//! bridging with held calls (`exchange`). Answers to this worker's own input requests stay
//! here; an upstream's own input rounds pass through untouched.

use super::report::{failure, reported};
use super::{Gateway, complete, in_session};
use crate::error::{Error, Result};
use crate::exchange::{Call, Holder, Outcome, STATE_PREFIX};
use crate::metrics::ReasonLabel;
use crate::policy::{Connector, Tenant};
use crate::principal::Principal;
use crate::resilience::Attempts;
use crate::sync::lock;
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use tracing::Instrument as _;

/// The requests that are real work (`tools/call`, `prompts/get`, `resources/read`): they
/// may carry a client's answers to input requests (MCP 2026-07-28), and each has its own
/// kind of answer.
pub(super) trait RealWork: Clone {
    type Response;
    /// What the upstream should have answered with, for the error when it did not.
    const EXPECTED: &'static str;
    fn state(&self) -> Option<&str>;
    fn answers(&self) -> Option<&InputResponses>;
    fn set_input(&mut self, answers: Option<InputResponses>, state: Option<String>);
    fn into_request(self) -> ClientRequest;
    /// The arguments the client gave, for the audit record.
    fn arguments(&self) -> Option<serde_json::Value>;
    /// The client's answer to `outcome`; `None` when the upstream answered with a result
    /// of another kind.
    fn answer(outcome: Outcome) -> Option<Self::Response>;
}

macro_rules! real_work {
    ($params:ty, $variant:ident, $response:ident, $result:ident, $expected:literal, $args:expr) => {
        impl RealWork for $params {
            type Response = $response;
            const EXPECTED: &'static str = $expected;
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
            fn arguments(&self) -> Option<serde_json::Value> {
                let arguments: fn(&Self) -> Option<serde_json::Value> = $args;
                arguments(self)
            }
            fn answer(outcome: Outcome) -> Option<$response> {
                match outcome {
                    Outcome::InputRequired(asked)
                    | Outcome::Result(ServerResult::InputRequiredResult(asked)) => {
                        Some($response::InputRequired(asked))
                    }
                    Outcome::Result(ServerResult::$result(mut r)) => {
                        complete(&mut r.result_type);
                        Some($response::Complete(r))
                    }
                    Outcome::Result(_) => None,
                }
            }
        }
    };
}

real_work!(
    CallToolRequestParams,
    CallToolRequest,
    CallToolResponse,
    CallToolResult,
    "a tool result",
    |p| p.arguments.clone().map(serde_json::Value::Object)
);
real_work!(
    GetPromptRequestParams,
    GetPromptRequest,
    GetPromptResponse,
    GetPromptResult,
    "a prompt",
    |p| serde_json::to_value(p.arguments.as_ref()?).ok()
);
real_work!(
    ReadResourceRequestParams,
    ReadResourceRequest,
    ReadResourceResponse,
    ReadResourceResult,
    "resource contents",
    |_| None
);

/// One request to a connector: who asks, for what, and what was asked.
pub(super) struct Route<'a> {
    pub ctx: &'a RequestContext<RoleServer>,
    pub principal: &'a Principal,
    pub tenant: &'a Tenant,
    pub connector: &'a Connector,
    /// The method and name (or URI) as the client gave them.
    pub target: String,
    pub retryable: bool,
    /// A tool's arguments that go in headers too (see `call_headers`).
    pub params: Option<std::sync::Arc<crate::call_headers::ParamHeaders>>,
}

impl Route<'_> {
    /// Refuses the request when the caller's scopes leave its connector out, putting the
    /// refusal on the audit trail.
    pub(super) fn within_scope(&self, gateway: &Gateway) -> Result<()> {
        let connector = &self.connector.name;
        if self.principal.may_use(connector) {
            return Ok(());
        }
        Err(gateway.out_of_scope(self.principal, self.tenant, connector, &self.target))
    }
}

impl Gateway {
    /// The refusal of `principal`'s request for `target` of `connector`, which its scopes
    /// leave out, put on the audit trail.
    pub(super) fn out_of_scope(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        connector: &str,
        target: &str,
    ) -> Error {
        let denied = Error::PermissionDenied(format!(
            "This access token's scopes do not include connector:{connector}; sign in again \
             asking for it to use {connector}."
        ));
        self.refused(principal, tenant, target, denied)
    }

    /// `denied`, a refusal of `principal`'s request for `target`, put on the audit trail.
    pub(super) fn refused(
        &self,
        principal: &Principal,
        tenant: &Tenant,
        target: &str,
        denied: Error,
    ) -> Error {
        self.core.reports.refusals.note(crate::refusals::Refused {
            tenant: tenant.slug.as_str(),
            kind: switchyard_bus::RefusalKind::Refusal,
            key: principal.key_id().map(crate::principal::KeyId::as_str),
            subject: principal.subject(),
            reason: denied.reason(),
            target: Some(target),
            source: None,
        });
        denied
    }
}

impl Gateway {
    /// Carries a client's request (`client`, renamed for the upstream as `upstream`) along
    /// `route`, reporting the call's usage as `method`.
    pub(super) async fn call<P: RealWork>(
        &self,
        route: Route<'_>,
        method: switchyard_bus::UsageMethod,
        client: &P,
        upstream: P,
    ) -> Result<Outcome> {
        // Refused before it counts as a call.
        route.within_scope(self)?;
        let started = std::time::Instant::now();
        // The route's target is "<method> <name>"; the report carries the name alone.
        let name = route
            .target
            .split_once(' ')
            .map_or(route.target.as_str(), |(_, name)| name);
        let span = switchyard_common::child_span!(
            &crate::traced::request_span(route.ctx),
            "mcp.call",
            otel.name = %route.target,
            mcp.method.name = method.as_str(),
            connector = %route.connector.name,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let mut report = self.report(
            route.ctx,
            route.principal,
            method,
            (name, &route.connector.name),
            &span,
        );
        // A tenant that refuses unaudited calls: none is sent without a place for its record.
        if route.tenant.audit_fail_closed && !report.has_place() {
            report.finish(None, None);
            let refused = Error::AuditUnavailable;
            return Err(self.refused(route.principal, route.tenant, name, refused));
        }
        if route.tenant.arguments != crate::redact::Arguments::None {
            report.arguments(route.tenant.arguments.record(client.arguments().as_ref()));
        }
        // A call whose caller loses access meanwhile is stopped (dropping it cancels the
        // upstream request) and answered with why.
        let mut watched = self.core.calls.watch(route.principal);
        let (outcome, stopped) = tokio::select! {
            outcome = self.forward(&route, client, upstream).instrument(span.clone()) => (outcome, false),
            Ok(why) = &mut watched.stop => (Err(why), true),
        };
        drop(watched);
        let reported = if client.state().is_some() {
            None
        } else if stopped {
            Some(false)
        } else {
            reported(&outcome)
        };
        let error = failure(&outcome);
        if let Some(reason) = error {
            span.record("error.type", reason);
            span.record("otel.status_code", "ERROR");
        }
        report.finish(reported, error);
        self.core.metrics.latency.call(
            route.tenant.slug.as_str(),
            &route.connector.name,
            started.elapsed(),
        );
        outcome
    }

    /// Serves real work: carries `client` (renamed for the upstream as `upstream`) along
    /// `route` and gives the client its answer.
    pub(super) async fn serve<P: RealWork>(
        &self,
        route: Route<'_>,
        method: switchyard_bus::UsageMethod,
        client: &P,
        upstream: P,
    ) -> Result<P::Response> {
        let connector = route.connector.name.clone();
        let outcome = self.call(route, method, client, upstream).await?;
        P::answer(outcome).ok_or_else(|| wrong_answer(&connector, P::EXPECTED))
    }

    pub(super) async fn forward<P: RealWork>(
        &self,
        route: &Route<'_>,
        client: &P,
        upstream: P,
    ) -> Result<Outcome> {
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
        self.carry(route, first.into_request(), rebuild, input)
            .await
    }

    /// What the upstream should see of the request's `_meta`: a 2026-07-28 client's
    /// capabilities and log level hold for this request only; a session client takes log
    /// messages at the level it set (every level until it sets one), which a 2026-07-28
    /// upstream learns per request.
    fn upstream_meta(&self, ctx: &RequestContext<RoleServer>) -> RequestMetaObject {
        let mut meta = RequestMetaObject::new();
        if in_session(ctx) {
            let level = lock(&self.client.log_level).unwrap_or(LoggingLevel::Debug);
            let level = serde_json::to_value(level).unwrap_or_else(|_| serde_json::json!("debug"));
            meta.insert(super::LOG_LEVEL_META.to_owned(), level);
        } else {
            for key in [
                "io.modelcontextprotocol/clientCapabilities",
                super::LOG_LEVEL_META,
            ] {
                if let Some(v) = ctx.meta.get(key) {
                    meta.insert(key.to_owned(), v.clone());
                }
            }
        }
        meta
    }

    /// The client's side of a call along `route`: who to ask for input, and how.
    fn downstream(&self, route: &Route<'_>) -> Call {
        let ctx = route.ctx;
        let session_client = in_session(ctx);
        // A session client's log level is set on its upstream sessions; a 2026-07-28
        // client asks for logs per request.
        let wants_logs = session_client || ctx.meta.get(super::LOG_LEVEL_META).is_some();
        Call {
            client: ctx.peer.clone(),
            request_id: ctx.id.clone(),
            wants_logs,
            session_client,
            holder: Holder {
                principal: route.principal.clone(),
                target: route.target.clone(),
            },
            client_token: ctx.meta.get_progress_token(),
            meta: Some(self.upstream_meta(ctx)),
            timeout: route.connector.timeout,
            params: route.params.clone(),
        }
    }

    /// One attempt of a call: `request` sent on an upstream session of `route`'s connector,
    /// and its answer.
    async fn attempt(
        &self,
        route: &Route<'_>,
        call: &Call,
        request: ClientRequest,
        rebuild: &impl Fn(InputResponses, Option<String>) -> ClientRequest,
    ) -> Result<Outcome> {
        let (ctx, c) = (route.ctx, route.connector);
        let bound = self.core.upstreams.bounds.max_response_bytes;
        let upstream = self.upstream(ctx, route.tenant, c).await?;
        let session = upstream.session().cloned();
        let result = self
            .core
            .holds
            .exchange(call, upstream, request, rebuild)
            .await
            .map_err(|e| match &session {
                Some(s) if s.sent_too_much() => Error::UpstreamTooLarge(bound),
                _ => e.sized(bound),
            });
        match (&result, session) {
            (Err(e), Some(s)) if e.is_transient() => s.mark_broken(),
            // The upstream may have re-opened the session during the call.
            (Ok(_), Some(s)) if in_session(ctx) => self.settled(ctx, c, &s).await,
            _ => {}
        }
        result
    }

    /// Carries `request` along `route` and back (see `exchange`), or continues a call held
    /// for the client's input when `state` is one this worker issued.
    pub(super) async fn carry(
        &self,
        route: &Route<'_>,
        request: ClientRequest,
        rebuild: impl Fn(InputResponses, Option<String>) -> ClientRequest,
        input: (Option<&str>, Option<&InputResponses>),
    ) -> Result<Outcome> {
        route.within_scope(self)?;
        let Route {
            ctx,
            tenant,
            connector: c,
            ..
        } = *route;
        let call = self.downstream(route);
        // The request's places stay taken while its upstream work goes on, even when its
        // client has gone (the HTTP answer holds them too).
        let _places = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| {
                p.extensions
                    .get::<std::sync::Arc<crate::limits::Admitted>>()
            })
            .cloned();
        if let (Some(state), answers) = input
            && state.starts_with(STATE_PREFIX)
        {
            return self.core.holds.resume_with(&call, state, answers).await;
        }
        let attempts = Attempts {
            max: if route.retryable {
                c.retry.max_attempts
            } else {
                1
            },
            initial_backoff: c.retry.initial_backoff,
            max_backoff: c.retry.max_backoff,
        };
        let (guard, gauge) = self.guard(tenant.slug.as_str(), c);
        // The call's span (see `traced`): each attempt is a child of it.
        let traced = tracing::Span::current();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let result = guard
            .run(
                attempts,
                || {
                    let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let (request, span) =
                        crate::traced::attempt(&traced, &c.name, n, request.clone());
                    self.attempt(route, &call, request, &rebuild)
                        .instrument(span)
                },
                |state| {
                    gauge.set(state.gauge());
                    crate::traced::breaker(&traced, state);
                },
                |retry, e, attempt| {
                    crate::traced::retry(&traced, retry, e, attempt);
                    self.core
                        .metrics
                        .retries
                        .get_or_create(&ReasonLabel {
                            reason: retry.label(),
                        })
                        .inc();
                    tracing::debug!(tenant = %tenant.slug, connector = %c.name, attempt, error = %e, "retrying");
                },
            )
            .await;
        if let Err(Error::CircuitOpen(_)) = &result {
            crate::traced::breaker(
                &traced,
                crate::resilience::BreakerState::Open(tokio::time::Instant::now()),
            );
        }
        result
    }
}

/// An upstream that answered a call with a result of another kind.
pub(super) fn wrong_answer(connector: &str, expected: &str) -> Error {
    tracing::warn!(
        connector,
        expected,
        "upstream answered with another kind of result"
    );
    Error::UpstreamMisbehaved(format!("it answered with something other than {expected}"))
}
