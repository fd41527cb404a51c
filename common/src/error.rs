//! The one small error code every failure maps to. Each code has exactly one gRPC status,
//! HTTP status, JSON-RPC code and metric label; the matches are exhaustive so a new code
//! cannot be added without deciding all four.

/// What kind of failure happened, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller sent something invalid; the message names the field.
    InvalidArgument,
    /// The request is not well-formed at all (not JSON).
    Malformed,
    /// The request is larger than accepted.
    PayloadTooLarge,
    /// The client did not send its request in time.
    RequestTimeout,
    NotFound,
    AlreadyExists,
    /// The request is valid but the current state does not allow it (e.g. a quota).
    FailedPrecondition,
    /// A concurrent change won (stale etag); re-read and try again.
    Aborted,
    Unauthenticated,
    PermissionDenied,
    /// A rate limit (tenant or key) is exceeded; retry after the stated time.
    RateLimited,
    /// A periodic quota (monthly tool calls) is used up.
    QuotaExhausted,
    /// A concurrency or session cap is reached.
    ConcurrencyLimited,
    /// A dependency or the service itself cannot serve now.
    Unavailable,
    DeadlineExceeded,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        Self::InvalidArgument,
        Self::Malformed,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::ConcurrencyLimited,
        Self::Unavailable,
        Self::DeadlineExceeded,
        Self::Internal,
    ];

    pub fn grpc(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::InvalidArgument | Self::Malformed => Code::InvalidArgument,
            Self::PayloadTooLarge => Code::ResourceExhausted,
            Self::RequestTimeout => Code::DeadlineExceeded,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::Aborted => Code::Aborted,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::RateLimited | Self::QuotaExhausted | Self::ConcurrencyLimited => {
                Code::ResourceExhausted
            }
            Self::Unavailable => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Internal => Code::Internal,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument | Self::Malformed => 400,
            Self::PayloadTooLarge => 413,
            Self::RequestTimeout => 408,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Aborted => 409,
            Self::FailedPrecondition => 412,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::RateLimited | Self::QuotaExhausted | Self::ConcurrencyLimited => 429,
            Self::Unavailable => 503,
            Self::DeadlineExceeded => 504,
            Self::Internal => 500,
        }
    }

    /// The JSON-RPC error code used when this failure ends an MCP request.
    pub fn jsonrpc(self) -> i32 {
        match self {
            Self::InvalidArgument | Self::NotFound => -32602,
            Self::Malformed => -32700,
            Self::PayloadTooLarge | Self::RequestTimeout => -32600,
            Self::AlreadyExists | Self::FailedPrecondition | Self::Aborted => -32600,
            Self::Unauthenticated => -32001,
            Self::PermissionDenied => -32003,
            Self::RateLimited => -32060,
            Self::QuotaExhausted => -32061,
            Self::ConcurrencyLimited => -32062,
            Self::Unavailable | Self::DeadlineExceeded | Self::Internal => -32603,
        }
    }

    /// A stable snake_case label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::Malformed => "malformed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::Aborted => "aborted",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::ConcurrencyLimited => "concurrency_limited",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_unique() {
        let labels: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn limits_use_the_documented_jsonrpc_codes() {
        assert_eq!(ErrorCode::RateLimited.jsonrpc(), -32060);
        assert_eq!(ErrorCode::QuotaExhausted.jsonrpc(), -32061);
        assert_eq!(ErrorCode::ConcurrencyLimited.jsonrpc(), -32062);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
    }
}
