//! The control plane's health and Prometheus metrics, on a listener of their own (never the
//! admin API's): `/healthz` (the process serves), `/readyz` (the store answers and every
//! migration is applied) and `/metrics` (outbox backlog, policy publishing, admin calls).
//! Labels never name a tenant: per-tenant detail is in the admin API (`TenantStatus`).

use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a probe or scrape waits for the store.
const STORE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    /// `Service/Method` of an admin API call (`other` for paths this server does not serve).
    pub method: String,
    /// The gRPC status code's name.
    pub code: &'static str,
}

/// A queue the control plane consumes, and why it dropped an event of it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabel {
    pub queue: &'static str,
    pub reason: &'static str,
}

/// Reads how many events a queue's consumers dropped so far.
type RejectedSoFar = Box<dyn Fn() -> switchyard_bus::Rejected + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    /// Queued events dropped by this control plane's consumers (see `watch_queue`).
    rejected: Family<RejectedLabel, Counter>,
    queues: std::sync::Mutex<Vec<(&'static str, RejectedSoFar)>>,
    /// Policies the publisher tried to put on the bus.
    pub publish_attempts: Counter,
    /// Publishing that failed, by reason: `bus`, `compile`, `store`.
    pub publish_failures: Family<ReasonLabel, Counter>,
    /// Admin API calls by method and status code.
    pub admin_calls: Family<CallLabel, Counter>,
    /// Tenants whose published policy is sealed with another policy key than the current.
    pub sealed_with_other_key: Gauge,
    backlog: Gauge,
    oldest_age: Gauge<f64, AtomicU64>,
    ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard_control_plane");
        let publish_attempts = Counter::default();
        let publish_failures = Family::<ReasonLabel, Counter>::default();
        let admin_calls = Family::<CallLabel, Counter>::default();
        let backlog = Gauge::default();
        let oldest_age = Gauge::<f64, AtomicU64>::default();
        let ready = Gauge::default();
        let sealed_with_other_key = Gauge::default();
        let rejected = Family::<RejectedLabel, Counter>::default();
        registry.register(
            "queued_events_rejected",
            "Events taken off a worker queue (usage, tools, refusals) and dropped unfolded, by reason (forged: it names another tenant than its subject; unreadable: no event of the queue's kind). Any is an event missing from usage counts and the audit trail",
            rejected.clone(),
        );
        registry.register(
            "policies_sealed_with_other_key",
            "Tenants found, at the last sweep (every minute), with their policy sealed under another policy key; 0 once a key change is complete",
            sealed_with_other_key.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Policy changes committed but not yet published to the policy bus",
            backlog.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished policy change (0 when none waits)",
            oldest_age.clone(),
        );
        registry.register(
            "policy_publish_attempts",
            "Tenant policies the publisher tried to put on the policy bus",
            publish_attempts.clone(),
        );
        registry.register(
            "policy_publish_failures",
            "Failed policy publishing by reason (bus: the policy bus refused or was unreachable; compile: the stored state does not compile; store: the database failed)",
            publish_failures.clone(),
        );
        registry.register(
            "admin_calls",
            "Admin API calls by method and gRPC status code",
            admin_calls.clone(),
        );
        registry.register(
            "ready",
            "1 while the store answers and every migration is applied",
            ready.clone(),
        );
        Self {
            registry,
            rejected,
            queues: std::sync::Mutex::default(),
            publish_attempts,
            publish_failures,
            admin_calls,
            sealed_with_other_key,
            backlog,
            oldest_age,
            ready,
        }
    }
}

impl Metrics {
    pub fn publish_failed(&self, reason: &'static str) {
        self.publish_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts, from now on, the events `bus`'s consumers drop, as queue `name`.
    pub fn watch_queue<E: switchyard_bus::Event>(
        &self,
        name: &'static str,
        bus: Arc<dyn switchyard_bus::Queue<E>>,
    ) {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name, Box::new(move || bus.rejected())));
    }

    /// Brings the rejected-events counters up to the queues' own tallies.
    fn sample_queues(&self) {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (queue, so_far) in queues.iter() {
            let so_far = so_far();
            for (reason, n) in [("forged", so_far.forged), ("unreadable", so_far.unreadable)] {
                let counter = self
                    .rejected
                    .get_or_create(&RejectedLabel { queue, reason });
                counter.inc_by(n.saturating_sub(counter.get()));
            }
        }
    }

    /// The metrics in Prometheus text format, with the store and queues sampled now.
    pub async fn render(&self, store: &Store) -> String {
        self.sample_queues();
        let ready = is_ready(store).await;
        self.ready.set(i64::from(ready));
        if let Ok(Ok(backlog)) = tokio::time::timeout(STORE_WAIT, store.outbox_backlog()).await {
            self.backlog.set(backlog.entries as i64);
            let age = backlog
                .oldest_at
                .map(|at| (crate::model::now_millis() - at).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            self.oldest_age.set(age);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Ready when the store answers and every migration this build knows is applied.
async fn is_ready(store: &Store) -> bool {
    matches!(
        tokio::time::timeout(STORE_WAIT, store.migrations_applied()).await,
        Ok(Ok(true))
    )
}

#[derive(Clone)]
struct Probe {
    store: Store,
    metrics: Arc<Metrics>,
}

/// Serves health and metrics on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(p): State<Probe>| async move {
                if is_ready(&p.store).await {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: the store does not answer or migrations are missing",
                    )
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(p): State<Probe>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    p.metrics.render(&p.store).await,
                )
            }),
        )
        .with_state(Probe { store, metrics });
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Counts admin API calls by method and status code. Unary gRPC calls that fail answer
/// with the status in the response headers; a call without one there succeeded (its `OK`
/// comes in the trailers).
#[derive(Debug, Clone)]
pub struct CallMetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The services whose methods are counted by name; anything else is `other`.
const SERVICES: &[&str] = &[
    "switchyard.admin.v1.TenantService",
    "switchyard.admin.v1.ConnectorService",
    "switchyard.admin.v1.ApiKeyService",
    "switchyard.admin.v1.FleetService",
    "switchyard.admin.v1.GrantService",
    "switchyard.admin.v1.AuditService",
    "switchyard.admin.v1.OperatorTokenService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

fn method_label(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(service), Some(method))
            if SERVICES.contains(&service)
                && !method.is_empty()
                && method.len() <= 64
                && method.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            let short = service.rsplit('.').next().unwrap_or(service);
            format!("{short}/{method}")
        }
        _ => "other".to_owned(),
    }
}

fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for CallMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let metrics = self.metrics.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            let code = match response.headers().get("grpc-status") {
                Some(v) => v
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                    .map_or(tonic::Code::Unknown, tonic::Code::from_i32),
                None if response.status().is_success() => tonic::Code::Ok,
                None => tonic::Code::Unknown,
            };
            // Methods a service does not have would make labels without end.
            let method = if code == tonic::Code::Unimplemented {
                "other".to_owned()
            } else {
                method
            };
            metrics
                .admin_calls
                .get_or_create(&CallLabel {
                    method,
                    code: code_label(code),
                })
                .inc();
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_of_unknown_services_are_not_labels() {
        assert_eq!(
            method_label("/switchyard.admin.v1.TenantService/GetTenant"),
            "TenantService/GetTenant"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(method_label("/evil.Service/Anything"), "other");
        assert_eq!(
            method_label("/switchyard.admin.v1.TenantService/Get{x=\"1\"}"),
            "other"
        );
        assert_eq!(method_label("/"), "other");
    }
}
