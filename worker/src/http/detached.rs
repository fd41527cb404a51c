//! A future polled by whoever awaits it that goes on, on a task of its own, when it is
//! dropped unfinished. A call whose client waits for its answer costs no task and no hop
//! between threads; one whose client goes away still runs to its end.

use futures::future::BoxFuture;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub(super) struct Detached<T: Send + 'static> {
    /// `None` once it has finished, or gone to a task.
    future: Option<BoxFuture<'static, T>>,
}

impl<T: Send + 'static> Detached<T> {
    pub fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }

    /// The rest of it on a task of its own, from now on; `None` when it has finished.
    pub fn spawn(mut self) -> Option<tokio::task::JoinHandle<T>> {
        self.future.take().map(tokio::spawn)
    }
}

impl<T: Send + 'static> Future for Detached<T> {
    type Output = T;

    /// Never polled again once it has given its output (it would stay pending).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn awaited_it_gives_its_output_and_dropped_unfinished_it_still_finishes() {
        assert_eq!(Detached::new(async { 7 }).await, 7);

        let finished = Arc::new(AtomicBool::new(false));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let call = Detached::new({
            let finished = finished.clone();
            async move {
                let _ = wait.await;
                finished.store(true, Ordering::SeqCst);
            }
        });
        // Its waiter gives up before it finishes.
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), call).await;
        assert!(gave_up.is_err());
        assert!(!finished.load(Ordering::SeqCst));
        go.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !finished.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert!(
            finished.load(Ordering::SeqCst),
            "the dropped call never finished"
        );
    }

    #[tokio::test]
    async fn spawned_it_runs_on_without_being_awaited() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = Detached::new(async move { tx.send(3).unwrap() }).spawn();
        assert_eq!(rx.await.unwrap(), 3);
        handle.expect("not finished yet").await.unwrap();
    }
}
