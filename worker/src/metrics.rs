//! Prometheus metrics of a worker, served on the metrics listener with health and
//! readiness.

use crate::policy::Policies;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_bus::PolicyBus;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabel {
    pub tenant: String,
    pub connector: String,
}

pub struct Metrics {
    registry: Registry,
    policies: Arc<Policies>,
    bus: Arc<dyn PolicyBus>,
    tenants: Gauge,
    bus_connected: Gauge,
    policy_age: Gauge<f64, AtomicU64>,
    ready: Gauge,
    pub requests: Family<StatusLabel, Counter>,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub usage_dropped: Counter,
    /// Requests refused by a limit, by reason.
    pub limited: Family<ReasonLabel, Counter>,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Live workers this worker shares tenant limits with (itself included).
    pub fleet_size: Gauge,
    /// Circuit breakers: 0 closed, 1 half-open, 2 open.
    pub breakers: Family<BreakerLabel, Gauge>,
    /// Upstream attempts that were retries, and retries the budget refused.
    pub retries: Family<ReasonLabel, Counter>,
    /// Upstream notifications that reached no client, by reason (see `relay::Diverted`).
    pub relay_diverted: Family<ReasonLabel, Counter>,
    /// Set when the worker drains (SIGTERM): it is then no longer ready.
    pub draining: std::sync::atomic::AtomicBool,
    disconnected_since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(policies: Arc<Policies>, bus: Arc<dyn PolicyBus>) -> Self {
        let mut registry = Registry::with_prefix("switchyard_worker");
        let tenants = Gauge::default();
        let bus_connected = Gauge::default();
        let policy_age = Gauge::<f64, AtomicU64>::default();
        let ready = Gauge::default();
        let requests = Family::<StatusLabel, Counter>::default();
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        let usage_dropped = Counter::default();
        let limited = Family::<ReasonLabel, Counter>::default();
        let in_flight = Gauge::default();
        let fleet_size = Gauge::default();
        let breakers = Family::<BreakerLabel, Gauge>::default();
        let retries = Family::<ReasonLabel, Counter>::default();
        let relay_diverted = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "limited",
            "MCP requests refused by a limit (rate_limited_tenant, rate_limited_key, concurrency, sessions, quota, saturated, draining) or handed to a tenant's dedicated workers (dedicated)",
            limited.clone(),
        );
        registry.register("in_flight", "MCP requests being served", in_flight.clone());
        registry.register(
            "fleet_size",
            "Live workers sharing tenant limits, this one included",
            fleet_size.clone(),
        );
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker per tenant and connector: 0 closed, 1 half-open, 2 open",
            breakers.clone(),
        );
        registry.register(
            "upstream_retries",
            "Upstream retries by outcome (attempted, budget_exhausted)",
            retries.clone(),
        );
        registry.register(
            "relay_diverted",
            "Upstream notifications not delivered in order on their request's stream, by reason: no_owner, call_ended, client_gone (dropped); late (sent on the session's GET stream)",
            relay_diverted.clone(),
        );
        registry.register(
            "usage_events_dropped",
            "Usage events dropped because the reporting queue was full",
            usage_dropped.clone(),
        );
        registry.register(
            "tenants",
            "Tenants whose policy this worker holds",
            tenants.clone(),
        );
        registry.register(
            "policy_bus_connected",
            "1 while the policy bus is reachable",
            bus_connected.clone(),
        );
        registry.register(
            "policy_age_seconds",
            "Seconds since the policy bus was last reachable (0 while it is): how stale the served policies may be",
            policy_age.clone(),
        );
        registry.register(
            "ready",
            "1 once the initial policy load is complete",
            ready.clone(),
        );
        registry.register(
            "mcp_requests",
            "MCP endpoint requests by HTTP status",
            requests.clone(),
        );
        registry.register(
            "auth_failures",
            "Rejected MCP requests by reason",
            auth_failures.clone(),
        );
        Self {
            registry,
            policies,
            bus,
            tenants,
            bus_connected,
            policy_age,
            ready,
            requests,
            auth_failures,
            usage_dropped,
            limited,
            in_flight,
            fleet_size,
            breakers,
            retries,
            relay_diverted,
            draining: std::sync::atomic::AtomicBool::new(false),
            disconnected_since: Mutex::new(None),
        }
    }

    /// Samples the bus connection; call about once a second.
    pub fn sample(&self) {
        let connected = self.bus.is_connected();
        let age = match self.disconnected_since.lock() {
            Ok(mut since) if connected => {
                *since = None;
                Duration::ZERO
            }
            Ok(mut since) => since.get_or_insert_with(Instant::now).elapsed(),
            Err(_) => Duration::ZERO,
        };
        self.bus_connected.set(i64::from(connected));
        self.policy_age.set(age.as_secs_f64());
        self.tenants.set(self.policies.tenant_count() as i64);
        self.ready.set(i64::from(self.is_ready()));
    }

    pub fn render(&self) -> String {
        self.sample();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Ready once the initial policies are loaded, until the worker starts draining.
    pub fn is_ready(&self) -> bool {
        self.policies.is_ready() && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}
