//! An MCP server (rmcp, both protocol eras) exposing the fixtures the
//! `@modelcontextprotocol/conformance` server suites expect: `test_simple_text` and the other
//! tools, `test://` resources and templates, the `test_*` prompts, completions, logging,
//! progress, sampling and elicitation in the session era, and input-required results in the
//! 2026-07-28 era. The suites run against it directly and through a worker that has it as a
//! connector with an empty prefix, so the names they look for are exact.
//!
//! What the fixture lists is in `listings`, the input-required rounds in `input`, its MCP
//! handler in `handler`; this module starts the server.

// Logging and sampling are deprecated for future protocol versions, but the versions served
// here still have them and the suites test them.
#![allow(deprecated)]

use rmcp::ErrorData as McpError;
use rmcp::model::RequestStateCodec;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod handler;
mod input;
mod listings;

fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| McpError::internal_error(e.to_string(), None))
}

#[derive(Debug, Clone)]
struct Conformance {
    states: Arc<RequestStateCodec>,
}

/// A running conformance fixture; stopped when dropped.
#[derive(Debug)]
pub struct ConformanceUpstream {
    pub url: String,
    stop: CancellationToken,
}

impl ConformanceUpstream {
    /// Starts the fixture at `http://127.0.0.1:PORT/mcp` (or on `listener`).
    pub async fn start(listener: tokio::net::TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let fixture = Conformance {
            states: Arc::new(RequestStateCodec::new(
                uuid::Uuid::new_v4().as_bytes().repeat(2),
            )),
        };
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.clone()),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let shutdown = stop.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .ok();
        });
        Ok(Self {
            url: format!("http://{addr}/mcp"),
            stop,
        })
    }
}

impl Drop for ConformanceUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
