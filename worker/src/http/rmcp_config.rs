//! How rmcp's Streamable HTTP service and its session manager are set up for the worker:
//! the `Host`s and browser origins it accepts, its bounds, and how long answers are kept.

use crate::Config;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;

/// How long a session keeps a request's stream, answer included, after the answer was
/// sent, for a client that lost the connection to resume it (`Last-Event-ID`). Clients
/// reconnect after the stream's retry hint (3 s). rmcp's default, a minute, holds every
/// answer of a busy session (each up to the response bound) and scans them all at each
/// of the session's events: at 100 calls/s, 6,000 of them.
const ANSWERED_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The service's configuration, without its session store, and the `Host`s it allows.
pub(super) fn service(
    config: &Config,
    cancel: CancellationToken,
) -> (StreamableHttpServerConfig, Vec<String>) {
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(config.max_body_bytes)
        // A 2026-07-28 call whose answer comes first is answered with plain JSON, as a
        // session client's plain call is (see `inline`); one that sends the client
        // something first is still a stream.
        .with_json_response(true);
    let mut hosts = mcp_config.allowed_hosts.clone();
    if let Some(public) = &config.public_url {
        let host = public.host_str().unwrap_or_default().to_owned();
        hosts = vec![host.clone()];
        if let Some(port) = public.port() {
            hosts.push(format!("{host}:{port}"));
        }
        mcp_config = mcp_config
            .with_allowed_hosts(hosts.clone())
            .with_allowed_origins([public.origin().ascii_serialization()])
            .enforce_origin_validation();
    } else {
        // Loopback only (rmcp's default hosts), and no browser origin but loopback.
        mcp_config = mcp_config
            .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*"])
            .enforce_origin_validation();
    }
    (mcp_config, hosts)
}

/// The session manager: idle sessions end after `--session-idle`.
pub(super) fn sessions(config: &Config) -> LocalSessionManager {
    let mut local_sessions = LocalSessionManager::default();
    local_sessions.session_config.keep_alive = Some(config.session_idle);
    local_sessions.session_config.completed_cache_ttl = ANSWERED_KEPT_FOR;
    local_sessions
}
