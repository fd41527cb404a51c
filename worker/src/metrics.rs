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
    pub sightings_dropped: Counter,
    pub refusals_dropped: Counter,
    /// Requests refused by a limit, by reason.
    pub limited: Family<ReasonLabel, Counter>,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Client sessions in memory, and those parked (see `parking`).
    pub sessions_live: Gauge,
    pub sessions_parked: Counter,
    /// GET streams of sessions not in memory (see `http::quiet`).
    pub quiet_streams: Gauge,
    /// The process's resident memory.
    resident_memory: Gauge,
    /// Live workers this worker shares tenant limits with (itself included).
    pub fleet_size: Gauge,
    /// Circuit breakers: 0 closed, 1 half-open, 2 open (set with `set_breakers`).
    breakers: Family<BreakerLabel, Gauge>,
    /// The breakers `breakers` has a series for.
    breakers_shown: Mutex<std::collections::HashSet<BreakerLabel>>,
    /// Upstream attempts that were retries, and retries the budget refused.
    pub retries: Family<ReasonLabel, Counter>,
    /// Upstream notifications that reached no client, by reason (see `relay::Diverted`).
    pub relay_diverted: Family<ReasonLabel, Counter>,
    /// Connections refused or closed early, by reason (see `http::serve`).
    pub connections_closed: Family<ReasonLabel, Counter>,
    /// argon2 checks of API keys run, by result.
    pub key_checks: Family<ReasonLabel, Counter>,
    /// Request and call latency (see `latency`).
    pub latency: crate::latency::Latency,
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
        let mut metrics = Self {
            registry: Registry::with_prefix("switchyard_worker"),
            policies,
            bus,
            limited: Family::<ReasonLabel, Counter>::default(),
            in_flight: Gauge::default(),
            sessions_live: Gauge::default(),
            sessions_parked: Counter::default(),
            quiet_streams: Gauge::default(),
            resident_memory: Gauge::default(),
            fleet_size: Gauge::default(),
            breakers: Family::<BreakerLabel, Gauge>::default(),
            breakers_shown: Mutex::default(),
            retries: Family::<ReasonLabel, Counter>::default(),
            relay_diverted: Family::<ReasonLabel, Counter>::default(),
            usage_dropped: Counter::default(),
            sightings_dropped: Counter::default(),
            refusals_dropped: Counter::default(),
            tenants: Gauge::default(),
            bus_connected: Gauge::default(),
            policy_age: Gauge::<f64, AtomicU64>::default(),
            ready: Gauge::default(),
            requests: Family::<StatusLabel, Counter>::default(),
            auth_failures: Family::<ReasonLabel, Counter>::default(),
            connections_closed: Family::<ReasonLabel, Counter>::default(),
            key_checks: Family::<ReasonLabel, Counter>::default(),
            latency: crate::latency::Latency::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            disconnected_since: Mutex::new(None),
        };
        metrics.register();
        metrics.register_sessions();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "key_checks",
            "argon2 checks of API keys that missed the cache, by result: verified, rejected",
            self.key_checks.clone(),
        );
        r.register(
            "connections_closed",
            "Connections refused or closed early: connection_limit, header_timeout, headers_too_large, malformed, error",
            self.connections_closed.clone(),
        );
        r.register("limited", "MCP requests refused by a limit (rate_limited, concurrency_limited, other_requests_limited, session_limit, quota_exhausted, saturated, worker_sessions_full), by draining (draining), or handed to a tenant's dedicated workers (dedicated_workers)", self.limited.clone());
        r.register(
            "in_flight",
            "MCP requests being served",
            self.in_flight.clone(),
        );
        r.register(
            "fleet_size",
            "Live workers sharing tenant limits, this one included",
            self.fleet_size.clone(),
        );
        r.register(
            "circuit_breaker_state",
            "Circuit breaker per tenant and connector: 0 closed, 1 half-open, 2 open",
            self.breakers.clone(),
        );
        r.register(
            "upstream_retries",
            "Upstream retries by outcome (attempted, budget_exhausted)",
            self.retries.clone(),
        );
        r.register("relay_diverted", "Upstream notifications not delivered in order on their request's stream, by reason: no_owner, call_ended, client_gone, no_stream (dropped); late (sent on the session's GET stream)", self.relay_diverted.clone());
        r.register(
            "usage_events_dropped",
            "Usage events dropped because the reporting queue was full",
            self.usage_dropped.clone(),
        );
        r.register(
            "tool_sightings_dropped",
            "Unpinned tool definitions not reported because the reporting queue was full",
            self.sightings_dropped.clone(),
        );
        r.register(
            "refusal_reports_dropped",
            "Refusal tallies not reported because the reporting queue was full",
            self.refusals_dropped.clone(),
        );
        r.register(
            "tenants",
            "Tenants whose policy this worker holds",
            self.tenants.clone(),
        );
        r.register(
            "policy_bus_connected",
            "1 while the policy bus is reachable",
            self.bus_connected.clone(),
        );
        r.register("policy_age_seconds", "Seconds since the policy bus was last reachable (0 while it is): how stale the served policies may be", self.policy_age.clone());
        r.register(
            "ready",
            "1 once the initial policy load is complete",
            self.ready.clone(),
        );
        r.register(
            "mcp_requests",
            "MCP endpoint requests by HTTP status",
            self.requests.clone(),
        );
        r.register("auth_failures", "MCP requests refused at authentication (missing_credential, invalid_credential, api_keys_disabled, insufficient_scope, identity_provider_unavailable, auth_busy, too_many_attempts, tenant_suspended)", self.auth_failures.clone());
    }

    fn register_sessions(&mut self) {
        let r = &mut self.registry;
        r.register(
            "sessions_live",
            "Client sessions held in memory (idle ones are parked and restored on use)",
            self.sessions_live.clone(),
        );
        r.register(
            "sessions_parked",
            "Idle client sessions let go of from memory, their records kept",
            self.sessions_parked.clone(),
        );
        r.register(
            "quiet_streams",
            "GET streams of parked sessions, answered without bringing the session back",
            self.quiet_streams.clone(),
        );
        r.register(
            "request_duration_seconds",
            "MCP requests by tenant (at most 500, then \"other\"; \"unauthenticated\"): time to the response's headers",
            self.latency.requests.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Real calls by tenant and connector (at most 500 pairs, then \"other\"): arrival to answer, retries included",
            self.latency.calls.clone(),
        );
        r.register(
            "resident_memory_bytes",
            "Resident memory of the worker process",
            self.resident_memory.clone(),
        );
    }

    /// Samples the bus connection; call about once a second.
    pub fn sample(&self) {
        let connected = self.bus.is_connected();
        let age = {
            let mut since = crate::sync::lock(&self.disconnected_since);
            if connected {
                *since = None;
                Duration::ZERO
            } else {
                since.get_or_insert_with(Instant::now).elapsed()
            }
        };
        self.bus_connected.set(i64::from(connected));
        self.policy_age.set(age.as_secs_f64());
        self.tenants.set(self.policies.tenant_count() as i64);
        self.ready.set(i64::from(self.is_ready()));
        if let Some(bytes) = resident_bytes() {
            self.resident_memory.set(bytes);
        }
    }

    /// Sets the breaker gauges to `states`, the breakers this worker has now; the series
    /// of those it no longer has (a deleted connector's or tenant's) go, so the family
    /// does not grow with every connector the worker ever served.
    pub fn set_breakers(&self, states: impl IntoIterator<Item = (BreakerLabel, i64)>) {
        let mut shown = crate::sync::lock(&self.breakers_shown);
        let mut now = std::collections::HashSet::new();
        for (label, value) in states {
            self.breakers.get_or_create(&label).set(value);
            now.insert(label);
        }
        for gone in shown.difference(&now) {
            self.breakers.remove(gone);
        }
        *shown = now;
    }

    /// The gauge of one breaker, for its calls to set as its state changes.
    pub fn breaker(&self, label: BreakerLabel) -> Gauge {
        let gauge = self.breakers.get_or_create(&label).clone();
        crate::sync::lock(&self.breakers_shown).insert(label);
        gauge
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

/// Resident memory of this process (`VmRSS` in `/proc/self/status`), where there is one.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_common::seal::{Keyring, SecretKey};

    #[test]
    fn a_breaker_no_longer_held_loses_its_series() {
        let policies = Arc::new(Policies::new(Keyring::new(SecretKey::generate())));
        let metrics = Metrics::new(policies, Arc::new(switchyard_bus::MemoryBus::default()));
        let label = |tenant: &str, connector: &str| BreakerLabel {
            tenant: tenant.into(),
            connector: connector.into(),
        };
        let series = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("switchyard_worker_circuit_breaker_state{"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        metrics.set_breakers([(label("acme", "a"), 2), (label("acme", "b"), 0)]);
        let both = series(&metrics.render());
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(
            both.iter()
                .any(|l| l.contains("connector=\"a\"") && l.ends_with(" 2"))
        );
        // Connector a deleted, b's breaker half-open.
        metrics.set_breakers([(label("acme", "b"), 1)]);
        let left = series(&metrics.render());
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            left[0].contains("connector=\"b\"") && left[0].ends_with(" 1"),
            "{left:?}"
        );
        // One a call made since is kept only while the worker has its breaker.
        metrics.breaker(label("acme", "c")).set(2);
        assert_eq!(series(&metrics.render()).len(), 2);
        metrics.set_breakers([]);
        assert!(series(&metrics.render()).is_empty());
    }
}
