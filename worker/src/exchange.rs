//! One request carried to an upstream and back, bridging the two protocol eras:
//! - a session client (2025-03-26 .. 2025-11-25) is asked the upstream's sampling,
//!   elicitation and roots requests on the stream of the request that caused them, whether
//!   the upstream sent them as requests (session era) or as an input-required result
//!   (2026-07-28, which the worker then completes and retries on the client's behalf);
//! - a 2026-07-28 client gets an input-required result either way: the upstream's own,
//!   passed through, or one the worker makes from a session-era upstream's requests while
//!   it holds that upstream request open. The client's retry carries the answers back; the
//!   `requestState` it echoes is sealed and bound to the tenant, key and request, and names
//!   a call held in this worker's memory for a few minutes.

#![allow(deprecated)]

use crate::error::{Error, Result};
use crate::ordered::ForRequest;
use crate::principal::Principal;
use crate::relay::{Ask, Diverted, Event, InFlight, Step, ask_client};
use crate::sync::lock;
use crate::upstream::{Lease, Session, UpstreamError};
use rmcp::model::*;
use rmcp::service::{Peer, RoleServer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of the `requestState` values this worker issues.
pub const STATE_PREFIX: &str = "switchyard:1:";
/// How long a call held for a client's input waits for the retry.
const HOLD_FOR: Duration = Duration::from_secs(300);
/// Calls held at once by one worker, and for one tenant; more are refused rather than held.
const HOLD_MAX: usize = 1024;
const HOLD_PER_TENANT: usize = 64;
/// Rounds of input a session client is asked for one request.
const MAX_ROUNDS: usize = 10;

/// The upstream session a request uses: its client session's own, or a pooled one.
#[derive(Debug)]
pub enum Upstream {
    Scoped(Arc<Session>),
    Leased(Lease),
}

impl Upstream {
    pub fn session(&self) -> Option<&Arc<Session>> {
        match self {
            Self::Scoped(s) => Some(s),
            Self::Leased(l) => l.session(),
        }
    }
}

/// What the client gets back.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, moved once; boxing would only add an allocation"
)]
pub enum Outcome {
    Result(ServerResult),
    /// A 2026-07-28 client must answer these and retry.
    InputRequired(InputRequiredResult),
}

/// The downstream side of one request.
#[derive(Debug, Clone)]
pub struct Call {
    pub client: Peer<RoleServer>,
    /// The client's request, whose stream the upstream's notifications for it go to.
    pub request_id: RequestId,
    /// Whether the client takes log messages (2026-07-28 clients ask per request).
    pub wants_logs: bool,
    /// A session client (2025-03-26 .. 2025-11-25), asked for input on its stream.
    pub session_client: bool,
    pub holder: Holder,
    /// The client's progress token, if it wants progress.
    pub client_token: Option<ProgressToken>,
    /// Request `_meta` the upstream should see (a 2026-07-28 client's capabilities and log
    /// level, which differ per request).
    pub meta: Option<RequestMetaObject>,
    /// How long the upstream may take between answers.
    pub timeout: Duration,
    /// The called tool's arguments that go in headers too, to a 2026-07-28 upstream (see
    /// `call_headers`).
    pub params: Option<Arc<crate::call_headers::ParamHeaders>>,
}

/// Who a held call belongs to; a retry must match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub principal: Principal,
    /// The method and name (or URI) of the request.
    pub target: String,
}

struct Held {
    holder: Holder,
    inflight: InFlight,
    /// Keeps the upstream session (a pooled one stays borrowed) while the call is held.
    upstream: Option<Upstream>,
    /// Asks not answered yet, by the key the client sees.
    open: Vec<(String, Ask)>,
    timeout: Duration,
    until: Instant,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateToken {
    id: String,
}

/// Calls held while 2026-07-28 clients answer an upstream's requests.
pub struct Holds {
    held: Mutex<HashMap<String, Held>>,
    codec: RequestStateCodec,
    diverted: Diverted,
}

impl std::fmt::Debug for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holds").finish_non_exhaustive()
    }
}

impl Holds {
    /// Notifications a client's stream refuses are counted in `diverted`.
    pub fn new(diverted: Diverted) -> Self {
        let key: Vec<u8> = (0..2)
            .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
            .collect();
        Self {
            held: Mutex::default(),
            codec: RequestStateCodec::new(key),
            diverted,
        }
    }
}

/// A fresh key for one input request in an input-required result.
fn input_key() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("input-{}", &id[..12])
}

fn holder_bytes(h: &Holder) -> Vec<u8> {
    serde_json::to_vec(h).unwrap_or_default()
}

impl Holds {
    /// Drops held calls whose time is up (their upstream requests are cancelled).
    pub fn purge(&self) {
        {
            let mut held = lock(&self.held);
            held.retain(|_, h| h.until > Instant::now());
        }
    }

    fn hold(&self, holder: Holder, held: Held) -> Result<InputRequiredResult> {
        self.purge();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let requests: InputRequests = held
            .open
            .iter()
            .map(|(k, a)| (k.clone(), a.request.clone()))
            .collect();
        let ad = holder_bytes(&holder);
        let options = SealOptions::new().associated_data(&ad).ttl(HOLD_FOR);
        let state = self
            .codec
            .seal_json_with(&StateToken { id: id.clone() }, &options)
            .map_err(|e| Error::Internal(format!("could not seal the request state: {e}")))?;
        let mut table = lock(&self.held);
        let tenant_held = table
            .values()
            .filter(|h| h.holder.principal.tenant == holder.principal.tenant)
            .count();
        if table.len() >= HOLD_MAX || tenant_held >= HOLD_PER_TENANT {
            return Err(Error::Capacity(
                "too many calls are waiting for input; answer or abandon some, then retry".into(),
            ));
        }
        table.insert(id, held);
        Ok(InputRequiredResult::new(
            Some(requests),
            Some(format!("{STATE_PREFIX}{state}")),
        ))
    }

    /// Takes back the call a retry's `requestState` names.
    fn resume(&self, holder: &Holder, state: &str) -> Result<Held> {
        let sealed = state.strip_prefix(STATE_PREFIX).unwrap_or(state);
        let token: StateToken = self
            .codec
            .open_json_with(sealed, &holder_bytes(holder))
            .map_err(|_| {
                Error::BadInput(
                    "requestState is not valid here (changed, expired, for another request, or \
                     held by another worker); send the request again without inputResponses"
                        .into(),
                )
            })?;
        let held = lock(&self.held)
            .remove(&token.id)
            .filter(|h| h.holder == *holder && h.until > Instant::now());
        held.ok_or_else(|| {
            Error::BadInput(
                "the call waiting for this input is gone (it expired, or another worker holds \
                 it); send the request again without inputResponses"
                    .into(),
            )
        })
    }

    /// Sends `request` upstream and carries it to its answer, asking the client for input
    /// as its era allows. `rebuild` makes the same request again with the client's answers
    /// to an upstream's input-required result (session clients only).
    pub async fn exchange(
        &self,
        call: &Call,
        upstream: Upstream,
        request: ClientRequest,
        rebuild: impl Fn(InputResponses, Option<String>) -> ClientRequest,
    ) -> Result<Outcome> {
        let mut upstream = Some(upstream);
        let mut request = request;
        for _ in 0..MAX_ROUNDS {
            let session = upstream
                .as_ref()
                .and_then(Upstream::session)
                .cloned()
                .ok_or_else(|| Error::Internal("the upstream session is gone".into()))?;
            if let Some(params) = &call.params {
                request.extensions_mut().insert(params.clone());
            }
            let inflight = InFlight::start(&session, request, call.meta.clone()).await?;
            let outcome = self
                .drive(call, &mut upstream, inflight, Vec::new())
                .await?;
            match outcome {
                // A 2026-07-28 upstream asked for input: a session client answers here and
                // the worker sends the request again with the answers.
                Outcome::Result(ServerResult::InputRequiredResult(asked))
                    if call.session_client =>
                {
                    let mut answers = InputResponses::new();
                    for (key, ask) in asked.input_requests.iter().flatten() {
                        let answer = ask_client(&call.client, Some(&call.request_id), ask)
                            .await
                            .map_err(|e| {
                                Error::BadInput(format!(
                                    "the client did not answer the upstream's request: {}",
                                    e.message
                                ))
                            })?;
                        answers.insert(key.clone(), answer);
                    }
                    request = rebuild(answers, asked.request_state);
                }
                other => return Ok(other),
            }
        }
        Err(Error::UpstreamMisbehaved(
            "the upstream asked for input too many times".into(),
        ))
    }

    /// Continues a held call with a 2026-07-28 client's answers.
    pub async fn resume_with(
        &self,
        call: &Call,
        state: &str,
        answers: Option<&InputResponses>,
    ) -> Result<Outcome> {
        let held = self.resume(&call.holder, state)?;
        let Held {
            inflight,
            upstream,
            open,
            timeout,
            ..
        } = held;
        let mut upstream = upstream;
        let mut still_open = Vec::new();
        for (key, ask) in open {
            match answers.and_then(|a| a.get(&key)) {
                Some(v) if v.is_object() => {
                    let _ = ask.reply.send(Ok(v.clone()));
                }
                _ => still_open.push((key, ask)),
            }
        }
        let call = Call {
            session_client: false,
            timeout,
            ..call.clone()
        };
        self.drive(&call, &mut upstream, inflight, still_open).await
    }

    async fn drive(
        &self,
        call: &Call,
        upstream: &mut Option<Upstream>,
        mut inflight: InFlight,
        mut open: Vec<(String, Ask)>,
    ) -> Result<Outcome> {
        let timeout = call.timeout;
        // Set once the client's stream refused a notification: the rest are not tried.
        let mut deaf = false;
        loop {
            if !open.is_empty() {
                // Hand over what else the upstream has asked so far with it; what it asks
                // later goes out with the next round.
                while let Some(event) = inflight.queued() {
                    match event {
                        Event::Ask(ask) => open.push((input_key(), ask)),
                        other => self.notify(call, other, &mut deaf).await,
                    }
                }
                let until = Instant::now() + HOLD_FOR;
                let held = Held {
                    holder: call.holder.clone(),
                    inflight,
                    upstream: upstream.take(),
                    open,
                    timeout,
                    until,
                };
                return Ok(Outcome::InputRequired(
                    self.hold(call.holder.clone(), held)?,
                ));
            }
            match tokio::time::timeout(timeout, inflight.next()).await {
                Err(_) => {
                    return Err(UpstreamError::Timeout(timeout.as_millis() as u64).into());
                }
                Ok(Step::Done(result)) => return Ok(Outcome::Result(result?)),
                Ok(Step::Event(Event::Ask(ask))) if call.session_client => {
                    let answer =
                        ask_client(&call.client, Some(&call.request_id), &ask.request).await;
                    let _ = ask.reply.send(answer);
                }
                Ok(Step::Event(Event::Ask(ask))) => open.push((input_key(), ask)),
                Ok(Step::Event(other)) => self.notify(call, other, &mut deaf).await,
            }
        }
    }

    /// Passes one of the upstream's notifications for the call on to its client, on the
    /// stream of the client's request; it is sent before the next one is taken, so the
    /// client sees them in the upstream's order and before the result.
    async fn notify(&self, call: &Call, event: Event, deaf: &mut bool) {
        let notification = match event {
            Event::Progress(mut params) => {
                // Progress goes only to a client that asked for it, under its own token.
                let Some(token) = call.client_token.clone() else {
                    return;
                };
                params.progress_token = token;
                ServerNotification::ProgressNotification(Notification::new(params))
            }
            Event::Log(params) if call.wants_logs => {
                let mut n = Notification::new(params);
                n.extensions.insert(ForRequest(call.request_id.clone()));
                ServerNotification::LoggingMessageNotification(n)
            }
            Event::Log(_) => return,
            Event::Ask(_) => return,
        };
        if *deaf {
            self.diverted.count("client_gone");
            return;
        }
        // A client that stops reading must not hold the call (and its places) forever.
        let sent = tokio::time::timeout(call.timeout, call.client.send_notification(notification));
        if !matches!(sent.await, Ok(Ok(()))) {
            *deaf = true;
            self.diverted.count("client_gone");
        }
    }
}
