//! The gate that holds calls of `hold` until a test opens it.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

/// Holds calls of `hold` until the test opens it, counting those waiting.
#[derive(Debug)]
pub struct Gate {
    pub(super) waiting: AtomicUsize,
    pub(super) open: tokio::sync::watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Gate {
    pub(super) async fn pass(&self, ct: &CancellationToken) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        let passed = tokio::select! {
            r = open.wait_for(|o| *o) => r.is_ok(),
            () = ct.cancelled() => false,
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        passed
    }
}
