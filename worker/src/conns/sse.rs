//! An answer's event stream, each event bounded in size as rmcp's client bounds it: an
//! upstream that never ends an event cannot make the worker hold an answer of any size.

use super::Driven;
use crate::route::SseStream;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("{prefix} of {0} bytes", prefix = crate::error::EVENT_TOO_LARGE)]
    TooLarge(usize),
}

/// The events of `body`, none over `max` bytes.
pub fn events(body: Driven, max: usize) -> SseStream {
    let bounded = Bounded {
        body,
        limit: Limit::new(max),
        failed: false,
    };
    sse_stream::SseStream::from_bytes_stream(bounded).boxed()
}

struct Bounded {
    body: Driven,
    limit: Limit,
    failed: bool,
}

impl Stream for Bounded {
    type Item = Result<Bytes, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let next = futures::ready!(self.body.poll_next_unpin(cx));
        Poll::Ready(next.map(|chunk| {
            let chunk = chunk?;
            if !self.limit.take(&chunk) {
                self.failed = true;
                return Err(ReadError::TooLarge(self.limit.max));
            }
            Ok(chunk)
        }))
    }
}

/// Counts the bytes of the event being read: a blank line ends an event, and a line ends
/// at CR, LF or CRLF.
#[derive(Debug)]
struct Limit {
    max: usize,
    event: usize,
    line: usize,
    after_cr: bool,
}

impl Limit {
    fn new(max: usize) -> Self {
        Self {
            max,
            event: 0,
            line: 0,
            after_cr: false,
        }
    }

    /// Counts `chunk`; false when an event in it goes over the bound.
    fn take(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                _ => {
                    self.after_cr = false;
                    self.line += 1;
                    self.event += 1;
                    if self.event > self.max {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Limit;

    #[test]
    fn an_event_over_the_bound_is_refused_whatever_its_chunks() {
        let mut limit = Limit::new(16);
        assert!(limit.take(b"data: aaaaa"));
        assert!(!limit.take(b"aaaaaa"), "17 bytes in one event");
    }

    #[test]
    fn a_blank_line_starts_the_count_again_in_every_line_ending() {
        for ending in ["\n\n", "\r\r", "\r\n\r\n", "\r\n\n"] {
            let mut limit = Limit::new(8);
            let stream = format!("data: a{ending}data: b{ending}data: c{ending}");
            assert!(limit.take(stream.as_bytes()), "{ending:?}");
        }
    }

    #[test]
    fn one_line_ending_does_not_end_an_event() {
        let mut limit = Limit::new(16);
        assert!(limit.take(b"data: a\r\ndata: b"));
        assert!(!limit.take(b"\ndata: c"), "one event of three lines");
    }
}
