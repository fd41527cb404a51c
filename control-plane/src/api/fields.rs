//! Request fields parsed into domain values; errors name the field.

use crate::error::{Error, Result};
use crate::model::*;
use switchyard_common::{ConnectorName, KeyId, TenantSlug};
use switchyard_proto::admin::v1 as pb;

pub(super) fn slug(field: &str, s: &str) -> Result<TenantSlug> {
    TenantSlug::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

pub(super) fn connector_name(field: &str, s: &str) -> Result<ConnectorName> {
    ConnectorName::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

pub(super) fn key_id(field: &str, s: &str) -> Result<KeyId> {
    KeyId::parse(s).map_err(|e| Error::invalid(field, format!("{s:?} {e}")))
}

pub(super) fn etag(s: &str) -> Result<Option<u64>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Error::invalid("etag", format!("{s:?} is not an etag this server issued")))
}

pub(super) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: T,
    min: T,
    max: T,
) -> Result<T> {
    if v < min || v > max {
        return Err(Error::invalid(
            field,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
    Ok(v)
}

pub(super) fn text(field: &str, s: &str, max: usize) -> Result<String> {
    if s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// Validates the quota fields that are set.
pub(super) fn quota_patch(p: Option<&pb::Quotas>) -> Result<QuotaPatch> {
    let Some(p) = p else {
        return Ok(QuotaPatch::default());
    };
    let field = |name: &str| format!("quotas.{name}");
    Ok(QuotaPatch {
        requests_per_second: p
            .requests_per_second
            .map(|v| in_range(&field("requests_per_second"), v, 1, 100_000))
            .transpose()?,
        burst: p
            .burst
            .map(|v| in_range(&field("burst"), v, 1, 1_000_000))
            .transpose()?,
        max_concurrent_requests: p
            .max_concurrent_requests
            .map(|v| in_range(&field("max_concurrent_requests"), v, 1, 100_000))
            .transpose()?,
        max_sessions: p
            .max_sessions
            .map(|v| in_range(&field("max_sessions"), v, 1, 1_000_000))
            .transpose()?,
        monthly_tool_calls: p
            .monthly_tool_calls
            .map(|v| in_range(&field("monthly_tool_calls"), v, 0, i64::MAX as u64))
            .transpose()?,
        max_connectors: p
            .max_connectors
            .map(|v| in_range(&field("max_connectors"), v, 0, 1000))
            .transpose()?,
        max_concurrent_other_requests: p
            .max_concurrent_other_requests
            .map(|v| in_range(&field("max_concurrent_other_requests"), v, 1, 100_000))
            .transpose()?,
    })
}

/// Prefixes the field of an InvalidArgument error with its parent message's name.
pub(super) fn nest(parent: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field: format!("{parent}.{field}"),
            reason,
        },
        other => other,
    }
}

pub(super) fn millis_of(field: &str, t: &prost_types::Timestamp) -> Result<Millis> {
    if !(0..1_000_000_000).contains(&t.nanos) || t.seconds < 0 || t.seconds > 253_402_300_799 {
        return Err(Error::invalid(field, "is not a valid timestamp"));
    }
    Ok(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}
