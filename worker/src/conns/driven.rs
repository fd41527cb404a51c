//! The body of an upstream's answer, read by the task that asked: each read drives the
//! connection too, and a body read to its end gives the connection back to its pool. A
//! body dropped before its end takes the connection with it, closed: what is left of the
//! answer would otherwise be read as the start of the next.

use super::{Conn, Idle};
use bytes::Bytes;
use futures::Stream;
use hyper::body::{Body as _, Incoming};
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

pub struct Driven {
    body: Incoming,
    /// `None` once the body is read to its end, or failed.
    conn: Option<Conn>,
    idle: Weak<Idle>,
}

impl std::fmt::Debug for Driven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven").finish_non_exhaustive()
    }
}

impl Driven {
    pub(super) fn new(body: Incoming, conn: Conn, idle: Weak<Idle>) -> Self {
        Self {
            body,
            conn: Some(conn),
            idle,
        }
    }

    /// The whole body, if it is at most `max` bytes; `Ok(None)` when it is longer (its
    /// connection is then closed, the rest unread).
    pub async fn collect(self, max: usize) -> Result<Option<Vec<u8>>, hyper::Error> {
        let (read, whole) = self.first(max).await?;
        Ok(whole.then_some(read))
    }

    /// The body's first `max` bytes at most, and whether they are all of it (when they are
    /// not, the connection is closed, the rest unread).
    pub async fn first(mut self, max: usize) -> Result<(Vec<u8>, bool), hyper::Error> {
        use futures::StreamExt as _;
        let mut read = Vec::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            let room = max - read.len();
            if chunk.len() > room {
                read.extend_from_slice(&chunk[..room]);
                return Ok((read, false));
            }
            read.extend_from_slice(&chunk);
        }
        Ok((read, true))
    }
}

impl Stream for Driven {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not part of the answer.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if let Some(mut conn) = this.conn.take() {
                        // Lets the connection see the answer done, and take the next.
                        if conn.drive(cx) {
                            super::give_back(&this.idle, conn);
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}
