//! Idle client sessions leave memory. A live session costs its serving stack (rmcp's
//! session worker and service loop, their channels, the client session's state: about
//! 110 KiB); an idle one needs only its shared records (`sessions`), from which rmcp
//! restores it on the worker its next request reaches, as it does after a hand-over.
//!
//! Each request on a session is in use from when it passes the gate until its answer
//! (a stream included) ends; a session with no request in flight for `after` is parked:
//! closed in memory, its records kept. A GET stream keeps its session in memory only while
//! the session holds an upstream session that may send it something unasked, which the
//! stream carries (`Anchor`: one that announces list changes, one the client subscribed to
//! resources on, or one whose log messages it asked for); otherwise rmcp ends the stream
//! with the session and the client's next GET gets a quiet
//! stream (`http::quiet`) that holds no session. A request arriving while its session is
//! being parked waits until it is gone, then restores it, so parking never cuts a request
//! off.

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug)]
struct Use {
    /// Requests of the session in flight now.
    requests: usize,
    /// GET streams of the session open now.
    streams: usize,
    /// When the last request or stream ended (or the session was first seen).
    last: Instant,
    /// Chosen to be parked: requests wait until it is.
    parking: bool,
    /// The session holds an upstream session that may send it something unasked.
    anchored: bool,
}

impl Use {
    fn new() -> Self {
        Self {
            requests: 0,
            streams: 0,
            last: Instant::now(),
            parking: false,
            anchored: false,
        }
    }

    fn in_use(&self) -> bool {
        self.requests + self.streams > 0
    }

    /// Whether the session can be let go of now, given how long it must have been idle.
    fn idle(&self, after: Duration) -> bool {
        self.requests == 0
            && (self.streams == 0 || !self.anchored)
            && !self.parking
            && self.last.elapsed() >= after
    }
}

/// What a session is used by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Stream,
}

#[derive(Debug)]
pub struct Parking {
    after: Duration,
    uses: Mutex<HashMap<String, Use>>,
    parked: Notify,
}

/// A request or stream of a session in use; dropped when its answer has ended.
#[derive(Debug)]
pub struct InUse {
    parking: Arc<Parking>,
    id: String,
    kind: Kind,
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(u) = lock(&self.parking.uses).get_mut(&self.id) {
            match self.kind {
                Kind::Request => u.requests = u.requests.saturating_sub(1),
                Kind::Stream => u.streams = u.streams.saturating_sub(1),
            }
            u.last = Instant::now();
        }
    }
}

/// Lets the handler of a request mark its session as holding an upstream session that may
/// send it something unasked.
#[derive(Debug, Clone)]
pub struct Anchor {
    parking: Arc<Parking>,
    id: String,
}

impl Anchor {
    /// The session now holds an upstream session that may send it something unasked.
    pub fn hold(&self) {
        if let Some(u) = lock(&self.parking.uses).get_mut(&self.id) {
            u.anchored = true;
        }
    }
}

impl Parking {
    /// Parks sessions nobody used for `after`.
    pub fn new(after: Duration) -> Arc<Self> {
        Arc::new(Self {
            after,
            uses: Mutex::default(),
            parked: Notify::new(),
        })
    }

    /// Marks session `id` in use by a `kind` until the returned guard is dropped; waits
    /// first while it is being parked.
    pub async fn enter(self: &Arc<Self>, id: &str, kind: Kind) -> InUse {
        loop {
            let wait = {
                let mut uses = lock(&self.uses);
                // Looked up before inserting: most requests find their session's entry,
                // and need not copy its id for the lookup.
                let u = match uses.get_mut(id) {
                    Some(u) => u,
                    None => uses.entry(id.to_owned()).or_insert_with(Use::new),
                };
                if !u.parking {
                    match kind {
                        Kind::Request => u.requests += 1,
                        Kind::Stream => u.streams += 1,
                    }
                    return InUse {
                        parking: self.clone(),
                        id: id.to_owned(),
                        kind,
                    };
                }
                // Created under the lock, so the wake-up after parking is not missed.
                self.parked.notified()
            };
            wait.await;
        }
    }

    /// The handle a request's handler marks session `id` with when an upstream session of
    /// it may send it something unasked.
    pub fn anchor(self: &Arc<Self>, id: &str) -> Anchor {
        Anchor {
            parking: self.clone(),
            id: id.to_owned(),
        }
    }

    /// Records a session just opened, so its idle time counts from now.
    pub fn opened(&self, id: &str) {
        lock(&self.uses).insert(id.to_owned(), Use::new());
    }

    /// Of the sessions `live` in memory, those to park now (each marked as being parked:
    /// `parked` must follow). Sessions no longer live are forgotten; live ones not seen
    /// before count as used now.
    pub fn idle(&self, live: &[String]) -> Vec<String> {
        let mut uses = lock(&self.uses);
        let live_set: std::collections::HashSet<&str> = live.iter().map(String::as_str).collect();
        uses.retain(|id, u| u.in_use() || live_set.contains(id.as_str()));
        let mut idle = Vec::new();
        for id in live {
            let u = uses.entry(id.clone()).or_insert_with(Use::new);
            if u.idle(self.after) {
                u.parking = true;
                idle.push(id.clone());
            }
        }
        idle
    }

    /// Session `id` has been closed in memory: requests waiting for it go on (and restore
    /// it).
    pub fn parked(&self, id: &str) {
        lock(&self.uses).remove(id);
        self.parked.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn only_sessions_idle_long_enough_with_nothing_in_use_are_parked() {
        let parking = Parking::new(Duration::ZERO);
        let busy = parking.enter("busy", Kind::Request).await;
        assert_eq!(parking.idle(&ids(&["busy", "quiet"])), ids(&["quiet"]));
        // Chosen once: a second sweep before it is closed does not choose it again.
        assert!(parking.idle(&ids(&["busy", "quiet"])).is_empty());
        drop(busy);
        assert_eq!(parking.idle(&ids(&["busy"])), ids(&["busy"]));

        let patient = Parking::new(Duration::from_secs(3600));
        patient.opened("new");
        assert!(patient.idle(&ids(&["new", "unseen"])).is_empty());
    }

    #[tokio::test]
    async fn a_request_on_a_session_being_parked_waits_until_it_is_gone() {
        let parking = Parking::new(Duration::ZERO);
        assert_eq!(parking.idle(&ids(&["s"])), ids(&["s"]));
        let waiting = tokio::spawn({
            let parking = parking.clone();
            async move { parking.enter("s", Kind::Request).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "entered a session being parked");
        parking.parked("s");
        let in_use = waiting.await.unwrap();
        // It is in use again (restored): not parked while the request goes on.
        assert!(parking.idle(&ids(&["s"])).is_empty());
        drop(in_use);
    }

    #[test]
    fn sessions_gone_from_memory_are_forgotten() {
        let parking = Parking::new(Duration::from_secs(3600));
        parking.opened("a");
        parking.opened("b");
        parking.idle(&ids(&["a"]));
        assert_eq!(lock(&parking.uses).len(), 1);
    }

    #[tokio::test]
    async fn a_get_stream_keeps_its_session_only_while_it_holds_upstream_sessions() {
        let parking = Parking::new(Duration::ZERO);
        let quiet = parking.enter("quiet", Kind::Stream).await;
        let anchored = parking.enter("anchored", Kind::Stream).await;
        let call = parking.enter("anchored", Kind::Request).await;
        parking.anchor("anchored").hold();
        drop(call);
        assert_eq!(parking.idle(&ids(&["quiet", "anchored"])), ids(&["quiet"]));
        drop((quiet, anchored));
        assert_eq!(parking.idle(&ids(&["anchored"])), ids(&["anchored"]));
    }
}
