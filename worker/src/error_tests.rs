use super::*;
use std::collections::{HashMap, HashSet};

/// Which variant `e` is. The match is exhaustive: a new variant does not compile until it
/// is numbered here, and `every_variant` then fails until the table has an example of it.
fn variant(e: &Error) -> usize {
    match e {
        Error::Draining => 0,
        Error::Starting => 1,
        Error::MissingCredential => 2,
        Error::InvalidCredential => 3,
        Error::Suspended(_) => 4,
        Error::AuthBusy => 5,
        Error::Dedicated => 6,
        Error::SessionNotFound => 7,
        Error::SessionStore => 8,
        Error::PayloadTooLarge(_) => 9,
        Error::Malformed => 10,
        Error::Limited(_) => 11,
        Error::QuotaExhausted(_) => 12,
        Error::BadInput(_) => 13,
        Error::UnknownName { .. } => 14,
        Error::PermissionDenied(_) => 15,
        Error::NeedsSession(_) => 16,
        Error::TenantGone => 17,
        Error::Capacity(_) => 18,
        Error::Upstream(_) => 19,
        Error::Service(_) => 20,
        Error::CircuitOpen(_) => 21,
        Error::UpstreamDown(_) => 22,
        Error::UpstreamMisbehaved(_) => 23,
        Error::Internal(_) => 24,
        Error::BodyTimeout(_) => 25,
        Error::TooManyAttempts(_) => 26,
        Error::CredentialRevoked => 27,
        Error::UpstreamTooLarge(_) => 28,
        Error::ToolPendingApproval(_) => 29,
        Error::AuditUnavailable => 30,
        Error::ApiKeysDisabled => 31,
        Error::InsufficientScope(_) => 32,
        Error::IdentityProviderUnavailable => 33,
        Error::ScopeNeeded(_) => 34,
        Error::HeaderMismatch(_) => 35,
    }
}
const VARIANTS: usize = 36;

/// One or more examples of every variant, and what each must say: its code, its reason,
/// and whether the call it ends counts as attempted upstream.
#[allow(
    clippy::too_many_lines,
    reason = "one row per case; a table reads best whole"
)]
pub(crate) fn examples() -> Vec<(Error, ErrorCode, &'static str, Option<bool>)> {
    let soon = tokio::time::Instant::now() + Duration::from_secs(5);
    let next_month = SystemTime::now() + Duration::from_secs(86_400);
    let rate = |scope| Refusal::Rate {
        scope,
        retry_after: Duration::from_millis(250),
    };
    let upstream_says = |code: i32| {
        ServiceError::McpError(McpError::new(
            rmcp::model::ErrorCode(code),
            "upstream says no",
            None,
        ))
    };
    use ErrorCode as C;
    vec![
        (Error::Draining, C::Unavailable, "draining", None),
        (Error::Starting, C::Unavailable, "starting", None),
        (
            Error::AuditUnavailable,
            C::Unavailable,
            "audit_unavailable",
            None,
        ),
        (
            Error::MissingCredential,
            C::Unauthenticated,
            "missing_credential",
            None,
        ),
        (
            Error::InvalidCredential,
            C::Unauthenticated,
            "invalid_credential",
            None,
        ),
        (
            Error::Suspended("unpaid".into()),
            C::PermissionDenied,
            "tenant_suspended",
            None,
        ),
        (Error::AuthBusy, C::ConcurrencyLimited, "auth_busy", None),
        (
            Error::TooManyAttempts(Duration::from_secs(6)),
            C::RateLimited,
            "too_many_attempts",
            None,
        ),
        (Error::Dedicated, C::Unavailable, "dedicated_workers", None),
        (
            Error::SessionNotFound,
            C::NotFound,
            "session_not_found",
            None,
        ),
        (
            Error::SessionStore,
            C::Unavailable,
            "session_store_unavailable",
            None,
        ),
        (
            Error::PayloadTooLarge(10),
            C::PayloadTooLarge,
            "payload_too_large",
            None,
        ),
        (Error::Malformed, C::Malformed, "malformed", None),
        (
            Error::BodyTimeout(Duration::from_secs(30)),
            C::RequestTimeout,
            "body_timeout",
            None,
        ),
        (
            Error::Limited(rate(RateScope::Tenant)),
            C::RateLimited,
            "rate_limited",
            None,
        ),
        (
            Error::Limited(rate(RateScope::Key)),
            C::RateLimited,
            "rate_limited",
            None,
        ),
        (
            Error::Limited(Refusal::Concurrency),
            C::ConcurrencyLimited,
            "concurrency_limited",
            None,
        ),
        (
            Error::Limited(Refusal::Sessions),
            C::ConcurrencyLimited,
            "session_limit",
            None,
        ),
        (
            Error::Limited(Refusal::Saturated),
            C::Unavailable,
            "saturated",
            None,
        ),
        (
            Error::Limited(Refusal::WorkerSessions),
            C::Unavailable,
            "worker_sessions_full",
            None,
        ),
        (
            Error::Limited(Refusal::Others),
            C::ConcurrencyLimited,
            "other_requests_limited",
            None,
        ),
        (
            Error::QuotaExhausted(next_month),
            C::QuotaExhausted,
            "quota_exhausted",
            None,
        ),
        (
            Error::BadInput("stale requestState".into()),
            C::InvalidArgument,
            "invalid_input",
            None,
        ),
        (
            Error::HeaderMismatch("Mcp-Param-Region is missing".into()),
            C::InvalidArgument,
            "header_mismatch",
            None,
        ),
        (
            Error::UnknownName {
                kind: "tool",
                name: "x__y".into(),
            },
            C::InvalidArgument,
            "unknown_name",
            None,
        ),
        (
            Error::ToolPendingApproval("gh__search".into()),
            C::FailedPrecondition,
            "tool_pending_approval",
            None,
        ),
        (
            Error::PermissionDenied("viewer".into()),
            C::PermissionDenied,
            "permission_denied",
            None,
        ),
        (
            Error::NeedsSession("resources/subscribe"),
            C::FailedPrecondition,
            "session_required",
            None,
        ),
        (
            Error::CredentialRevoked,
            C::Unauthenticated,
            "credential_revoked",
            None,
        ),
        (
            Error::ApiKeysDisabled,
            C::Unauthenticated,
            "api_keys_disabled",
            None,
        ),
        (
            Error::InsufficientScope("groups".into()),
            C::PermissionDenied,
            "insufficient_scope",
            None,
        ),
        (
            Error::ScopeNeeded("up__write".into()),
            C::PermissionDenied,
            "insufficient_scope",
            None,
        ),
        (
            Error::IdentityProviderUnavailable,
            C::Unavailable,
            "identity_provider_unavailable",
            None,
        ),
        (
            Error::TenantGone,
            C::FailedPrecondition,
            "tenant_gone",
            None,
        ),
        (
            Error::Capacity("held calls".into()),
            C::ConcurrencyLimited,
            "held_calls_full",
            None,
        ),
        (
            Error::Upstream(UpstreamError::Timeout(500)),
            C::DeadlineExceeded,
            "upstream_timeout",
            Some(false),
        ),
        (
            Error::Upstream(UpstreamError::Connect("refused".into())),
            C::Unavailable,
            "upstream_unavailable",
            Some(false),
        ),
        (
            Error::Upstream(UpstreamError::Forbidden("10.0.0.1".into())),
            C::Unavailable,
            "upstream_unavailable",
            Some(false),
        ),
        (
            Error::Service(ServiceError::Timeout {
                timeout: Duration::from_millis(500),
            }),
            C::DeadlineExceeded,
            "upstream_timeout",
            Some(false),
        ),
        (
            Error::Service(upstream_says(-32602)),
            C::Unavailable,
            "upstream_error",
            Some(false),
        ),
        (
            Error::Service(ServiceError::TransportClosed),
            C::Unavailable,
            "upstream_error",
            Some(false),
        ),
        (
            Error::CircuitOpen(soon),
            C::Unavailable,
            "circuit_open",
            None,
        ),
        (
            Error::UpstreamDown("it could not be reached".into()),
            C::Unavailable,
            "upstream_unavailable",
            None,
        ),
        (
            Error::UpstreamMisbehaved("asked for input too often".into()),
            C::Unavailable,
            "upstream_protocol",
            Some(false),
        ),
        (
            Error::UpstreamTooLarge(65_536),
            C::Unavailable,
            "upstream_too_large",
            Some(false),
        ),
        (
            Error::Internal("bug".into()),
            C::Internal,
            "internal",
            Some(false),
        ),
    ]
}

#[test]
fn every_variant_has_an_example() {
    let seen: HashSet<usize> = examples().iter().map(|(e, ..)| variant(e)).collect();
    let missing: Vec<usize> = (0..VARIANTS).filter(|v| !seen.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "variants without an example: {missing:?}"
    );
}

#[tokio::test]
async fn status_code_reason_and_attempt_agree_with_the_error_code() {
    for (e, code, reason, attempted) in examples() {
        let name = format!("{e:?}");
        assert_eq!(e.code(), code, "{name}");
        assert_eq!(e.reason(), reason, "{name}");
        assert_eq!(e.attempted(), attempted, "{name}");

        // The HTTP answer: the status is the code's, and so is the JSON-RPC error.
        let response = e.response(json!(7));
        assert_eq!(response.status().as_u16(), code.http_status(), "{name}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["id"], json!(7), "{name}");
        assert_eq!(body["error"]["code"], json!(e.jsonrpc()), "{name}");
        assert_eq!(body["error"]["data"]["reason"], json!(reason), "{name}");
        // (An open breaker's message counts down the milliseconds to its next try.)
        if !matches!(e, Error::CircuitOpen(_)) {
            assert_eq!(body["error"]["message"], json!(e.to_string()), "{name}");
        }

        // A tool call's result: `_meta.reason`, and the connector named.
        let result = e.tool_result("github");
        assert_eq!(result.is_error, Some(true), "{name}");
        let meta = result.meta.clone().unwrap().0;
        assert_eq!(meta["reason"], json!(reason), "{name}");
        assert_eq!(meta["connector"], json!("github"), "{name}");

        // Any other MCP request's JSON-RPC error; an upstream's own error passes through.
        let passthrough = matches!(e, Error::Service(ServiceError::McpError(_)));
        let jsonrpc = match e {
            // MCP's own code for it.
            Error::HeaderMismatch(_) => -32020,
            _ => code.jsonrpc(),
        };
        assert_eq!(e.jsonrpc(), jsonrpc, "{name}");
        let mcp = e.into_mcp("github");
        if passthrough {
            assert_eq!(mcp.code.0, -32602, "{name}");
        } else {
            assert_eq!(mcp.code.0, jsonrpc, "{name}");
            assert_eq!(mcp.data.unwrap()["reason"], json!(reason), "{name}");
        }
    }
}

#[test]
fn one_reason_never_means_two_codes() {
    let mut codes: HashMap<&str, ErrorCode> = HashMap::new();
    for (e, ..) in examples() {
        let code = *codes.entry(e.reason()).or_insert(e.code());
        assert!(
            code == e.code() || e.reason() == "upstream_unavailable",
            "{} is both {code:?} and {:?}",
            e.reason(),
            e.code()
        );
    }
}

#[tokio::test]
async fn waits_are_given_as_retry_after_and_in_the_data() {
    let rate = Error::Limited(Refusal::Rate {
        scope: RateScope::Key,
        retry_after: Duration::from_millis(1500),
    });
    let response = rate.response(Value::Null);
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
    let data = rate.data();
    assert_eq!(data["retryAfterMs"], json!(1500));
    assert_eq!(data["scope"], json!("key"));

    let resets = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let quota = Error::QuotaExhausted(resets).data();
    assert_eq!(quota["resetsAt"], json!("2033-05-18T03:33:20Z"));
    assert_eq!(quota["quota"], json!("monthly_tool_calls"));
    assert!(quota.get("retryAfterMs").is_none());

    // No wait, no header.
    let bad = Error::BadInput("x".into()).response(Value::Null);
    assert!(bad.headers().get(http::header::RETRY_AFTER).is_none());
}

#[test]
fn upstream_failures_name_the_connector_but_not_its_address() {
    let e = Error::Upstream(UpstreamError::Connect(
        "tcp connect to 10.1.2.3:8080".into(),
    ));
    let text = format!("{:?}", e.tool_result("github").content);
    assert!(text.contains("The github connector failed"), "{text}");
    assert!(!text.contains("10.1.2.3"), "{text}");
    let mcp = e.into_mcp("github");
    assert!(mcp.message.contains("the github connector failed"));
    assert!(!mcp.message.contains("10.1.2.3"));
}

#[test]
fn messages_show_values_as_given() {
    let e = Error::UnknownName {
        kind: "tool",
        name: "github__nope".into(),
    };
    assert_eq!(e.to_string(), "unknown tool: github__nope");
    assert_eq!(
        Error::Suspended(String::new()).to_string(),
        "this tenant is suspended; contact your operator"
    );
}

#[test]
fn the_readme_lists_every_reason() {
    let readme = include_str!("../../README.md");
    for (e, ..) in examples() {
        let cell = format!("| `{}` |", e.reason());
        assert!(
            readme.contains(&cell),
            "README.md lacks a row for {}",
            e.reason()
        );
    }
}

#[test]
fn an_answer_over_the_bound_is_told_apart_from_other_transport_failures() {
    use rmcp::transport::DynamicTransportError;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let transport = |e: StreamableHttpError<reqwest::Error>| {
        Error::Service(ServiceError::TransportSend(DynamicTransportError::new::<
            StreamableHttpClientTransport<reqwest::Client>,
            rmcp::RoleClient,
        >(e)))
    };
    let big = transport(StreamableHttpError::ResponseBodyTooLarge { max_size: 1024 });
    assert!(matches!(big.sized(1024), Error::UpstreamTooLarge(1024)));
    let other = transport(StreamableHttpError::UnexpectedEndOfStream);
    assert!(matches!(other.sized(1024), Error::Service(_)));
    assert!(matches!(
        Error::Service(ServiceError::TransportClosed).sized(1024),
        Error::Service(_)
    ));
}
