//! The last step of the request path: an admitted request handed to rmcp, what it holds
//! kept until its answer (perhaps a stream) has ended, and the sessions it opens or brings
//! back counted.

use super::{App, Peer, SESSION_HEADER, serve};
use crate::limits::Admitted;
use crate::parking::InUse;
use crate::principal::Principal;
use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use std::sync::Arc;

/// The client's address (see `serve::client_addr`), when the request came over TCP.
pub(super) fn client_address(
    req: &Request<Body>,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = req.extensions().get::<Peer>()?;
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(serve::client_addr(peer.0.ip(), forwarded, trusted))
}

/// What a request holds until its answer has ended: its places under the limits, and its
/// session's use (which keeps the session from being parked).
pub(super) struct Held {
    pub admitted: Option<Arc<Admitted>>,
    pub in_use: Option<InUse>,
    /// The request brings its session back into memory (it was parked, or held elsewhere).
    pub returning: bool,
}

/// A request through the gate, on its way to rmcp.
pub(super) struct Ready {
    pub req: Request<Body>,
    pub principal: Principal,
    /// Its session id, if it has one.
    pub session: Option<String>,
    pub held: Held,
    /// Its body, when it may be a call to serve inline (see `inline`, `stateless`).
    pub inline: Option<bytes::Bytes>,
}

/// Hands an admitted request to rmcp, holding what it `held` until the answer (perhaps a
/// stream) is finished, and records a session it opens.
pub(super) async fn forward(app: &App, ready: Ready) -> Response {
    let Ready {
        mut req,
        principal,
        session,
        held,
        inline,
    } = ready;
    let is_delete = req.method() == http::Method::DELETE;
    if is_delete && let Some(id) = &session {
        // Forgotten before rmcp closes the session, so its upstream sessions see that the
        // client ended it and end theirs too (see `resume`).
        app.sessions.forget(principal.tenant.as_str(), id).await;
        app.admission.session_closed(id);
    }
    if let Some(id) = &session {
        // The handler marks the session when it opens an upstream session for it.
        req.extensions_mut().insert(app.parking.anchor(id));
    }
    req.extensions_mut().insert(principal.clone());
    if let Some(admitted) = &held.admitted {
        // The handler holds the places too, until its upstream work has ended: a client
        // that goes away does not free them while the call goes on.
        req.extensions_mut().insert(admitted.clone());
    }
    // rmcp's session store calls, made while it handles the request, need its tenant.
    let tenant = principal.tenant.to_string();
    let served = match (&session, &inline) {
        (Some(id), Some(bytes)) => super::inline::serve(app, id, req, bytes).await,
        (None, Some(bytes)) => super::stateless::serve(app, req, bytes).await,
        (_, None) => Err(req),
    };
    let mut response = match served {
        Ok(response) => response,
        Err(req) => crate::sessions::REQUEST_TENANT
            .scope(tenant, app.mcp.handle(req))
            .await
            .map(Body::new),
    };
    if let Some(id) = &session {
        // The session is in memory now (or ended): its quiet streams end, and the client's
        // next GET reaches the session itself.
        app.quiet.close(id);
    }
    let returning = held.returning;
    if held.admitted.is_some() || held.in_use.is_some() {
        use http_body_util::BodyExt as _;
        response = response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _held = &held;
                frame
            }))
        });
    }
    if is_delete && response.status() == StatusCode::ACCEPTED {
        // Session termination is complete when rmcp answers; clients (the Python SDK
        // among them) expect 200 or 204 and warn on 202.
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let issued = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (issued, &session) {
        (Some(id), None) => {
            app.admission.session_opened(principal.tenant.as_str(), &id);
            app.parking.opened(&id);
            if let Err(e) = app.sessions.bind(&id, &principal).await {
                // The session still works on this worker; others cannot carry it on.
                tracing::warn!(error = %e, "could not share a new session");
            }
        }
        // A session brought back counts here again; one already in memory counts already
        // (and one ended meanwhile must not be counted again).
        (_, Some(id)) if returning && response.status().is_success() => {
            app.admission.session_opened(principal.tenant.as_str(), id);
        }
        _ => {}
    }
    response
}
