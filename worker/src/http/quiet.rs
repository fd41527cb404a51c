//! GET streams of sessions that are not in memory (parked, see `parking`). Such a session
//! holds no upstream session, so nothing can arrive for its stream: the worker answers the
//! GET itself with a stream that only keeps the connection alive, and holds no session for
//! it. The stream ends when the session comes back into memory (any other request on it
//! brings it back), so the client's next GET reaches the session and what it relays; when
//! its caller loses access, or the worker drains; and after `lifetime` in any case, so a
//! client whose session was ended through another worker learns it when it reconnects.

use crate::limits::Admitted;
use crate::principal::Principal;
use crate::sync::lock;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How often an idle stream carries a comment, so proxies do not close it (as rmcp's own
/// streams do).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What the stream starts with: how long a client waits before it reconnects once the
/// stream ends (SSE `retry`).
const PRIMING: &[u8] = b"retry: 3000\n\n";
const PING: &[u8] = b": ping\n\n";

struct Open {
    n: u64,
    principal: Principal,
    stop: oneshot::Sender<()>,
}

/// The quiet streams open on this worker, by session id.
pub struct Quiet {
    streams: Mutex<HashMap<String, Vec<Open>>>,
    next: AtomicU64,
    lifetime: Duration,
}

impl std::fmt::Debug for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quiet").finish_non_exhaustive()
    }
}

/// A quiet stream registered for a session; unregistered when dropped.
pub struct Registration {
    quiet: Arc<Quiet>,
    id: String,
    n: u64,
    stop: oneshot::Receiver<()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut streams = lock(&self.quiet.streams);
        if let Some(open) = streams.get_mut(&self.id) {
            open.retain(|o| o.n != self.n);
            if open.is_empty() {
                streams.remove(&self.id);
            }
        }
    }
}

impl Quiet {
    /// Quiet streams that end after `lifetime` at the latest.
    pub fn new(lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            streams: Mutex::default(),
            next: AtomicU64::new(0),
            lifetime,
        })
    }

    /// Registers a quiet stream of session `id` opened by `principal`.
    pub fn register(self: &Arc<Self>, id: &str, principal: &Principal) -> Registration {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.streams)
            .entry(id.to_owned())
            .or_default()
            .push(Open {
                n,
                principal: principal.clone(),
                stop: tx,
            });
        Registration {
            quiet: self.clone(),
            id: id.to_owned(),
            n,
            stop: rx,
        }
    }

    /// Ends the quiet streams of session `id`.
    pub fn close(&self, id: &str) {
        let open = {
            let mut streams = lock(&self.streams);
            if streams.is_empty() {
                return;
            }
            streams.remove(id)
        };
        for o in open.into_iter().flatten() {
            let _ = o.stop.send(());
        }
    }

    /// Ends the quiet streams of `tenant`'s sessions whose caller `lost` access; how many.
    pub fn close_lost(&self, tenant: &str, lost: impl Fn(&Principal) -> bool) -> usize {
        let mut ended = Vec::new();
        {
            let mut streams = lock(&self.streams);
            for open in streams.values_mut() {
                let (gone, kept): (Vec<Open>, Vec<Open>) = open
                    .drain(..)
                    .partition(|o| o.principal.tenant.as_str() == tenant && lost(&o.principal));
                *open = kept;
                ended.extend(gone);
            }
            streams.retain(|_, open| !open.is_empty());
        }
        let n = ended.len();
        for o in ended {
            let _ = o.stop.send(());
        }
        n
    }

    /// Streams open now.
    pub fn len(&self) -> usize {
        lock(&self.streams).values().map(Vec::len).sum()
    }
}

/// The answer to a GET with `registration`, holding the tenant's place `admitted` while
/// open, ended by the registration's stop or by `cancel`.
pub fn response(
    registration: Registration,
    admitted: Admitted,
    cancel: CancellationToken,
) -> Response {
    struct State {
        registration: Registration,
        _admitted: Admitted,
        cancel: CancellationToken,
        primed: bool,
        until: tokio::time::Instant,
    }
    let state = State {
        until: tokio::time::Instant::now() + registration.quiet.lifetime,
        registration,
        _admitted: admitted,
        cancel,
        primed: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if !s.primed {
            s.primed = true;
            return Some((
                Ok::<_, std::convert::Infallible>(Bytes::from_static(PRIMING)),
                s,
            ));
        }
        tokio::select! {
            _ = &mut s.registration.stop => None,
            () = s.cancel.cancelled() => None,
            () = tokio::time::sleep_until(s.until) => None,
            () = tokio::time::sleep(KEEP_ALIVE) => Some((Ok(Bytes::from_static(PING)), s)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// Whether a GET can be answered with a quiet stream: it asks for an event stream. One that
/// resumes a stream (`Last-Event-ID`) is answered so too: a parked session kept none of its
/// events (it was parked only once its requests' answers were no longer kept, see
/// `parking`), so there is nothing to replay.
pub fn wanted(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{KeyId, TenantSlug};

    fn caller(tenant: &str, key: &str) -> Principal {
        Principal::api_key(
            TenantSlug::parse(tenant).unwrap(),
            KeyId::parse(key).unwrap(),
        )
    }

    #[test]
    fn only_a_request_for_an_event_stream_is_answered_quietly() {
        let mut headers = http::HeaderMap::new();
        assert!(!wanted(&headers));
        headers.insert("accept", "application/json".parse().unwrap());
        assert!(!wanted(&headers));
        headers.insert("accept", "text/event-stream".parse().unwrap());
        assert!(wanted(&headers));
        headers.insert("last-event-id", "0".parse().unwrap());
        assert!(wanted(&headers), "a parked session has no events to replay");
    }

    #[test]
    fn streams_end_with_their_session_or_their_callers_access() {
        let quiet = Quiet::new(Duration::from_secs(60));
        let (a, b) = (
            caller("acme", "aaaaaaaaaaaa"),
            caller("acme", "bbbbbbbbbbbb"),
        );
        let other_tenant = caller("other", "aaaaaaaaaaaa");
        let mut s1 = quiet.register("s1", &a);
        let mut s1_again = quiet.register("s1", &a);
        let mut s2 = quiet.register("s2", &b);
        let mut s3 = quiet.register("s3", &other_tenant);
        assert_eq!(quiet.len(), 4);

        quiet.close("s1");
        assert!(s1.stop.try_recv().is_ok() && s1_again.stop.try_recv().is_ok());
        assert!(s2.stop.try_recv().is_err());

        // Key a of acme lost access: only acme's streams opened with it end.
        let _s4 = quiet.register("s4", &a);
        let lost = |p: &Principal| p.key_id().is_some_and(|k| k.as_str() == "aaaaaaaaaaaa");
        assert_eq!(quiet.close_lost("acme", lost), 1);
        assert!(s2.stop.try_recv().is_err());
        assert!(s3.stop.try_recv().is_err());
        drop((s1, s1_again));
        assert_eq!(quiet.len(), 2);
    }
}
