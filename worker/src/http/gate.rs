//! The steps every request to `/t/{tenant}/mcp` passes before rmcp sees it, each a small
//! function with one job and one kind of refusal: whether this worker serves at all now
//! (draining, starting), who the caller is (authentication), whether this worker serves
//! the tenant (dedicated workers), whether a session belongs to the caller, and what the
//! body is (within the cap, JSON). Admission under the limits is `admit`. `super::mcp`
//! composes them in that order.

use crate::auth::Authenticator;
use crate::error::{Error, Result};
use crate::policy::Tenant;
use crate::principal::Principal;
use crate::sessions::{SessionRecords, plausible_id};
use bytes::Bytes;
use http::HeaderMap;
use std::net::IpAddr;
use std::time::Duration;

/// The head of a JSON-RPC message: enough to classify it and answer it.
#[derive(Debug, serde::Deserialize)]
pub struct Head {
    pub id: Option<serde_json::Value>,
    pub method: Option<String>,
    /// The name a request's parameters give (a tool's, a prompt's).
    #[serde(default)]
    pub params: Option<HeadParams>,
}

/// What the head keeps of a message's parameters. Any JSON is accepted (parameters of the
/// wrong shape are for rmcp to refuse, after admission); only a string `name` is kept.
#[derive(Debug, Default)]
pub struct HeadParams {
    pub name: Option<String>,
}

impl<'de> serde::Deserialize<'de> for HeadParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

struct ParamsVisitor;

impl<'de> serde::de::Visitor<'de> for ParamsVisitor {
    type Value = HeadParams;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<HeadParams, A::Error> {
        use serde::de::IgnoredAny;
        let mut params = HeadParams::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "name" {
                let value: serde_json::Value = map.next_value()?;
                params.name = value.as_str().map(str::to_owned);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(params)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<HeadParams, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(HeadParams::default())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
    fn visit_unit<E>(self) -> std::result::Result<HeadParams, E> {
        Ok(HeadParams::default())
    }
}

impl Head {
    /// The tool a `tools/call` calls.
    pub fn tool(&self) -> Option<&str> {
        if self.method.as_deref() != Some("tools/call") {
            return None;
        }
        self.params.as_ref()?.name.as_deref()
    }
}

/// Whether this worker takes requests at all: not while it drains, and not before it has
/// its initial policies (without them it knows no tenant, and saying 401 would tell
/// clients their key is wrong; readiness keeps load balancers away meanwhile).
pub fn serving(draining: bool, ready: bool) -> Result<()> {
    if draining {
        return Err(Error::Draining);
    }
    if !ready {
        return Err(Error::Starting);
    }
    Ok(())
}

/// The caller, from the bearer credential checked against the tenant's current policy.
pub async fn authenticate(
    auth: &Authenticator,
    policy: Option<&Tenant>,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    resource: impl FnOnce() -> Option<String> + Send,
) -> Result<Principal> {
    use tracing::Instrument as _;
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth.authenticate(policy, authorization, client, resource)
        .instrument(switchyard_common::span!("authenticate"))
        .await
}

/// The key id `headers`' credential claims, when it has the form of a key.
pub fn claimed_key(headers: &HeaderMap) -> Option<switchyard_common::KeyId> {
    let authorization = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = crate::auth::bearer(Some(authorization))?;
    Some(switchyard_common::apikey::parse(token)?.0)
}

/// The session id a request names, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(super::SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether this worker serves the tenant: a shared worker hands a tenant served by its
/// dedicated workers over (the client retries and reaches them); a dedicated worker serves
/// its one tenant whatever the policy says.
pub fn served_here(dedicated_worker: bool, policy: &Tenant) -> Result<()> {
    if !dedicated_worker && policy.dedicated {
        return Err(Error::Dedicated);
    }
    Ok(())
}

/// What a request's session id turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// The caller's own session, live.
    Bound,
    /// A session that was terminated or expired: this worker should let go of it too.
    Ended,
}

/// Whether session `id` belongs to `principal`. Another tenant's or key's session is
/// answered as if it did not exist.
pub async fn bind_session(
    sessions: &SessionRecords,
    principal: &Principal,
    id: &str,
) -> Result<SessionCheck> {
    if !plausible_id(id) {
        return Err(Error::SessionNotFound);
    }
    match sessions.owner(principal.tenant.as_str(), id).await {
        Ok(Some(owner)) if owner == *principal => Ok(SessionCheck::Bound),
        Ok(Some(_)) => Err(Error::SessionNotFound),
        // Another tenant's session here is not this caller's to end.
        Ok(None) if sessions.known_elsewhere(principal.tenant.as_str(), id) => {
            Err(Error::SessionNotFound)
        }
        Ok(None) => Ok(SessionCheck::Ended),
        Err(e) => {
            tracing::warn!(error = %e, "session store unavailable");
            Err(Error::SessionStore)
        }
    }
}

/// Reads a POSTed body within `max` bytes and `timeout`, and its JSON-RPC head. A declared
/// `Content-Length` over the cap is refused before anything is read. Malformed JSON is a
/// parse error (the spec's answer, rather than a media-type complaint); JSON that is not
/// one message has no head, and rmcp answers it.
pub async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    max: usize,
    timeout: Duration,
) -> Result<(Bytes, Option<Head>)> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Error::PayloadTooLarge(max));
    }
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| Error::BodyTimeout(timeout))?
        .map_err(|_| Error::PayloadTooLarge(max))?;
    let head = match serde_json::from_slice::<Head>(&bytes) {
        Ok(head) => Some(head),
        Err(e) if e.classify() == serde_json::error::Category::Data => None,
        Err(_) => return Err(Error::Malformed),
    };
    Ok((bytes, head))
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
