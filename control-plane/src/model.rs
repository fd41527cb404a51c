//! The control plane's domain records: what the store holds, already validated.

use serde::{Deserialize, Serialize};
use switchyard_common::{ConnectorName, KeyId, TenantSlug};

mod identity;
pub use identity::*;

/// Unix time in milliseconds.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The UTC day of `at`, "YYYY-MM-DD".
pub fn day_of(at: Millis) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The calendar month (UTC) that contains `at`, as "YYYY-MM", and when the next starts.
pub fn month_of(at: Millis) -> (String, Millis) {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (year, month) = (dt.year(), dt.month());
    let next_year = if month == time::Month::December {
        year + 1
    } else {
        year
    };
    let next = time::Date::from_calendar_date(next_year, month.next(), 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(Millis::MAX);
    (format!("{year:04}-{:02}", u8::from(month)), next)
}

#[cfg(test)]
mod month_tests {
    use super::month_of;

    #[test]
    fn months_and_their_ends() {
        // 2026-11-26T12:00:00Z
        assert_eq!(
            month_of(1_795_694_400_000),
            ("2026-11".into(), 1_796_083_200_000)
        );
        // 2026-12-31T23:59:59.999Z rolls into January.
        assert_eq!(
            month_of(1_798_761_599_999),
            ("2026-12".into(), 1_798_761_600_000)
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_concurrent_requests: u32,
    pub max_sessions: u32,
    /// 0 means unlimited.
    pub monthly_tool_calls: u64,
    pub max_connectors: u32,
    /// Requests that are not real work in flight at once.
    pub max_concurrent_other_requests: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            requests_per_second: 20,
            burst: 40,
            max_concurrent_requests: 16,
            max_sessions: 64,
            monthly_tool_calls: 0,
            max_connectors: 10,
            max_concurrent_other_requests: 64,
        }
    }
}

/// A change to some quota fields; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaPatch {
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub max_concurrent_requests: Option<u32>,
    pub max_sessions: Option<u32>,
    pub monthly_tool_calls: Option<u64>,
    pub max_connectors: Option<u32>,
    pub max_concurrent_other_requests: Option<u32>,
}

impl QuotaPatch {
    pub fn apply(self, q: Quotas) -> Quotas {
        Quotas {
            requests_per_second: self.requests_per_second.unwrap_or(q.requests_per_second),
            burst: self.burst.unwrap_or(q.burst),
            max_concurrent_requests: self
                .max_concurrent_requests
                .unwrap_or(q.max_concurrent_requests),
            max_sessions: self.max_sessions.unwrap_or(q.max_sessions),
            monthly_tool_calls: self.monthly_tool_calls.unwrap_or(q.monthly_tool_calls),
            max_connectors: self.max_connectors.unwrap_or(q.max_connectors),
            max_concurrent_other_requests: self
                .max_concurrent_other_requests
                .unwrap_or(q.max_concurrent_other_requests),
        }
    }
}

impl From<Quotas> for QuotaPatch {
    fn from(q: Quotas) -> Self {
        Self {
            requests_per_second: Some(q.requests_per_second),
            burst: Some(q.burst),
            max_concurrent_requests: Some(q.max_concurrent_requests),
            max_sessions: Some(q.max_sessions),
            monthly_tool_calls: Some(q.monthly_tool_calls),
            max_connectors: Some(q.max_connectors),
            max_concurrent_other_requests: Some(q.max_concurrent_other_requests),
        }
    }
}

/// Where a tenant's traffic is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tier {
    /// By the shared worker fleet.
    #[default]
    Shared,
    /// By a dedicated worker pool in the tenant's own namespace.
    Isolated,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Isolated => "isolated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shared" => Some(Self::Shared),
            "isolated" => Some(Self::Isolated),
            _ => None,
        }
    }
}

/// A tenant's tier and compute profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub tier: Tier,
    /// A profile of the control plane's configuration; empty: its default.
    pub compute_profile: String,
}

/// What a tenant's call records keep of the call's arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentAudit {
    #[default]
    None,
    /// The SHA-256 of their canonical JSON.
    Digest,
    /// The arguments, sensitive values and recognisable secrets masked.
    Redacted,
}

impl ArgumentAudit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Digest => "digest",
            Self::Redacted => "redacted",
        }
    }
}

/// What a tenant's audit trail keeps, and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    pub arguments: ArgumentAudit,
    /// Argument names whose values are masked, beside the built-in ones.
    pub sensitive_keys: Vec<String>,
    /// Days records are kept; 0: the control plane's default.
    pub retention_days: u32,
    /// Calls are refused while their records cannot be queued.
    pub fail_closed: bool,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub slug: TenantSlug,
    pub display_name: String,
    pub status: TenantStatus,
    pub suspend_reason: String,
    pub quotas: Quotas,
    pub placement: Placement,
    /// The tenant's dedicated workers are ready and serve it (isolated tier only).
    pub pool_ready: bool,
    pub audit: AuditSettings,
    pub identity: IdentitySettings,
    pub revision: u64,
    pub policy_revision: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Tenant {
    /// Whether its dedicated workers, not the shared fleet, serve it now.
    pub fn dedicated(&self) -> bool {
        self.placement.tier == Tier::Isolated && self.pool_ready
    }
}

/// What the namespace reconciler last did for a tenant (see `Isolation` in tenants.proto).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationStatus {
    pub namespace: String,
    pub reconciled_revision: u64,
    pub reconciled_at: Option<Millis>,
    pub error: String,
    pub error_at: Option<Millis>,
}

/// Retry settings of a connector; see `RetryPolicy` in connectors.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub initial_backoff_ms: u32,
    pub max_backoff_ms: u32,
    pub retry_idempotent_tools: bool,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 2000,
            retry_idempotent_tools: false,
        }
    }
}

/// Circuit breaker settings of a connector; see `BreakerPolicy` in connectors.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub failure_rate_percent: u32,
    pub minimum_calls: u32,
    pub open_ms: u32,
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate_percent: 50,
            minimum_calls: 20,
            open_ms: 30_000,
            half_open_probes: 1,
        }
    }
}

pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// Kind-specific, non-secret configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorKind {
    Mcp { url: String },
}

impl ConnectorKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mcp { .. } => "mcp",
        }
    }
}

/// Everything about a connector except its identity and secrets, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSettings {
    pub kind: ConnectorKind,
    /// `None`: the connector name is the prefix. `Some("")`: no prefix.
    pub prefix: Option<String>,
    pub timeout_ms: u32,
    pub allow_tools: Vec<String>,
    pub deny_tools: Vec<String>,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    /// Changed tool definitions are approved as they are seen rather than held for an
    /// operator.
    #[serde(default)]
    pub auto_approve_tools: bool,
}

/// A header whose value is sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    pub name: String,
    pub sealed_value: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Connector {
    pub id: String,
    pub tenant: TenantSlug,
    pub name: ConnectorName,
    pub enabled: bool,
    pub settings: ConnectorSettings,
    pub headers: Vec<SealedHeader>,
    pub revision: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant: TenantSlug,
    pub role: Role,
    pub description: String,
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    /// argon2id PHC string of the secret.
    pub verifier: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// A token operators authenticate to the admin API with (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// Everything the policy compiler needs about one tenant, read in one snapshot.
#[derive(Debug, Clone)]
pub struct TenantState {
    pub tenant: Tenant,
    pub connectors: Vec<Connector>,
    pub keys: Vec<ApiKey>,
    /// Tool calls counted in the month the state was read in.
    pub tool_calls_this_month: u64,
    /// Approved tool digests by connector id: (tool, digest).
    pub tool_pins: std::collections::HashMap<String, Vec<(String, String)>>,
}

/// A tenant's tool calls in one month, against its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub period: String,
    pub tool_calls: u64,
    pub monthly_tool_calls: u64,
    /// When the next month starts (and the count restarts).
    pub resets_at: Millis,
}

impl Usage {
    /// Whether tool calls are refused until `resets_at` (a zero quota is unlimited).
    pub fn exhausted(&self) -> bool {
        self.monthly_tool_calls > 0 && self.tool_calls >= self.monthly_tool_calls
    }
}

/// One undrained "tenant changed" entry of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub tenant: TenantSlug,
    pub revision: u64,
}

/// How a tenant's policy reaches the workers (see `TenantStatus` in tenants.proto).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishStatus {
    /// The newest revision published to the policy bus; 0 before the first.
    pub published_revision: u64,
    pub published_at: Option<Millis>,
    /// Why publishing fails, while it does; empty once it succeeded again.
    pub error: String,
    pub error_at: Option<Millis>,
}

/// What the outbox holds: entries not yet published, and when the oldest was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub entries: u64,
    pub oldest_at: Option<Millis>,
}
