//! The JSON-RPC messages of an MCP answer over HTTP: one JSON body, or the `data` of each
//! server-sent event (priming events carry none).

use serde_json::Value;

/// The message of one event's text, if it carries one.
fn event_message(event: &str) -> Option<Value> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    (!data.is_empty() && !data.concat().is_empty())
        .then(|| serde_json::from_str(&data.join("\n")).expect("event data is JSON"))
}

/// Every message of a whole answer `body`.
pub fn messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.split("\n\n").filter_map(event_message).collect()
}

/// An answer's stream read one message at a time, as they arrive.
#[derive(Debug)]
pub struct Events {
    response: reqwest::Response,
    pending: String,
}

impl Events {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            pending: String::new(),
        }
    }

    /// The next message; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                if let Some(message) = event_message(&event) {
                    return Some(message);
                }
            }
            let chunk = self.response.chunk().await.ok()??;
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
