//! Clients of the latency runs: plain HTTP/1.1 with keep-alive, each request's answer read
//! to its end, as `oha` or an agent SDK's HTTP stack would, so the load generator spends
//! little and every connection is reused.

use crate::drive::SessionVersion;
use crate::{Era, Work};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_tests::{legacy, modern};

/// One client of a target: its own connection pool, and its session in the legacy era.
pub(crate) enum Target {
    Legacy(legacy::Session),
    Modern {
        http: reqwest::Client,
        endpoint: String,
        key: String,
    },
}

fn args() -> Value {
    // The test upstream's echo takes `text`, the reference server's `message`.
    json!({"text": "load", "message": "load"})
}

impl Target {
    /// A client of `endpoint` with `key` (none for an upstream), on its own pool; a session
    /// client speaks `version`.
    pub(crate) async fn connect(
        endpoint: &str,
        key: Option<&str>,
        era: Era,
        version: SessionVersion,
    ) -> Self {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        let key = key.unwrap_or_default();
        match era {
            Era::Legacy => Self::Legacy(
                legacy::Session::try_open_at(&http, endpoint, key, json!({}), version.as_str())
                    .await
                    .expect("initialize is answered with a session"),
            ),
            Era::Modern => Self::Modern {
                http,
                endpoint: endpoint.to_owned(),
                key: key.to_owned(),
            },
        }
    }

    /// One request of `work`: whether it was answered with a result (a tool's error
    /// result included).
    pub(crate) async fn once(&self, work: Work) -> bool {
        let answer = match (self, work) {
            (Self::Legacy(s), work) => {
                // Requests in flight on one session need distinct ids.
                static IDS: AtomicU64 = AtomicU64::new(10);
                let id = IDS.fetch_add(1, Ordering::Relaxed);
                let body = match work {
                    Work::Call => json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                        "params": {"name": "echo", "arguments": args()}}),
                    Work::List => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
                };
                modern::answer(s.post(body).await).await
            }
            (
                Self::Modern {
                    http,
                    endpoint,
                    key,
                },
                Work::Call,
            ) => modern::call(http, endpoint, key, "echo", args()).await,
            (
                Self::Modern {
                    http,
                    endpoint,
                    key,
                },
                Work::List,
            ) => modern::list(http, endpoint, key).await,
        };
        answer.ok()
    }
}
