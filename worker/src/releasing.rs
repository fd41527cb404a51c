//! An answered stream read to its end, so that its connection serves the next call. hyper
//! reuses a connection only once the response on it has been read to its end, which an
//! upstream sends right after the answer, or a moment later (rmcp's server ends a 2026-07-28
//! request's stream once the request's service has stopped). A stream dropped at its answer
//! closes its connection, and a later call opens another: under load, about one call in ten
//! to an rmcp upstream did, each a handshake and a reset on both sides.

use crate::route::SseStream;
use futures::{FutureExt as _, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long an answered stream is read for, at most, to find its end.
const RELEASE_WITHIN: Duration = Duration::from_secs(1);
/// Answered streams read to their end at once, at most, per `Releasing`.
const MAX_RELEASING: usize = 16;

/// One upstream session's answered streams being read to their end.
#[derive(Debug, Clone, Default)]
pub struct Releasing(Arc<AtomicUsize>);

impl Releasing {
    /// Reads the rest of answered `stream`: at once when its end has come already,
    /// otherwise on a task of its own (at most `RELEASE_WITHIN`, and at most
    /// `MAX_RELEASING` streams at once; beyond that it is dropped), so that the answer
    /// never waits for it.
    pub fn release(&self, mut stream: SseStream) {
        if let Some(None) = stream.next().now_or_never() {
            return;
        }
        let count = self.0.clone();
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_RELEASING {
            count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        tokio::spawn(async move {
            let read = async { while stream.next().await.is_some() {} };
            let _ = tokio::time::timeout(RELEASE_WITHIN, read).await;
            count.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Streams being read now.
    #[cfg(test)]
    fn reading(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_stream::Sse;
    use std::sync::atomic::AtomicBool;

    /// A stream that ends when `end` fires (never, if it never does), and marks
    /// `dropped` when it is.
    fn stream(end: tokio::sync::oneshot::Receiver<()>, dropped: Arc<AtomicBool>) -> SseStream {
        struct Mark(Arc<AtomicBool>);
        impl Drop for Mark {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let mark = Mark(dropped);
        futures::stream::once(async move {
            let _mark = mark;
            let _ = end.await;
        })
        .filter_map(|()| async {
            None::<Result<Sse, rmcp::transport::streamable_http_client::SseError>>
        })
        .boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_read_to_its_end_and_one_that_does_not_end_is_let_go() {
        let releasing = Releasing::default();
        // Ended already: read at once.
        releasing.release(futures::stream::empty().boxed());
        assert_eq!(releasing.reading(), 0);

        // Ending later: read on a task until it does.
        let (end, ends) = tokio::sync::oneshot::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        releasing.release(stream(ends, dropped.clone()));
        tokio::task::yield_now().await;
        assert_eq!(releasing.reading(), 1);
        end.send(()).unwrap();
        while releasing.reading() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(dropped.load(Ordering::SeqCst));

        // Never ending: let go after `RELEASE_WITHIN`.
        let (_never, ends) = tokio::sync::oneshot::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        releasing.release(stream(ends, dropped.clone()));
        tokio::time::sleep(RELEASE_WITHIN / 2).await;
        assert_eq!(releasing.reading(), 1);
        assert!(!dropped.load(Ordering::SeqCst));
        tokio::time::sleep(RELEASE_WITHIN).await;
        assert_eq!(releasing.reading(), 0);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_so_many_streams_are_read_at_once() {
        let releasing = Releasing::default();
        let mut ends = Vec::new();
        let mut marks = Vec::new();
        for _ in 0..=MAX_RELEASING {
            let (end, rx) = tokio::sync::oneshot::channel();
            let dropped = Arc::new(AtomicBool::new(false));
            releasing.release(stream(rx, dropped.clone()));
            ends.push(end);
            marks.push(dropped);
        }
        tokio::task::yield_now().await;
        assert_eq!(releasing.reading(), MAX_RELEASING);
        // The one over the bound was dropped at once; the others are still read.
        let dropped: Vec<bool> = marks.iter().map(|m| m.load(Ordering::SeqCst)).collect();
        assert_eq!(dropped.iter().filter(|d| **d).count(), 1, "{dropped:?}");
        assert!(dropped[MAX_RELEASING]);
    }
}
