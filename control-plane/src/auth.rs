//! Operator authentication for the admin API: a tower layer in front of every gRPC service
//! except grpc.health.v1 (probes carry no credentials). Tokens are high-entropy random
//! strings, so the store keeps their SHA-256; known hashes are cached briefly.

use crate::audit;
use crate::store::Store;
use http::{Request, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Minimum length of an operator token, so its hash cannot be brute-forced.
pub const MIN_TOKEN_LEN: usize = 32;
/// How long a token found valid is trusted before the store is asked again: a token
/// revoked through any replica stops working on every replica within it.
const CACHE_TTL: Duration = Duration::from_secs(1);
const CACHE_MAX: usize = 1024;

/// A new random operator token, `syop_` followed by 43 base62 characters (256 bits).
pub fn generate_operator_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..43)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("syop_{body}")
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks bearer tokens against the store, caching known hashes for a short time.
#[derive(Debug, Clone)]
pub struct OperatorAuth {
    store: Store,
    /// Token hash to (token id, when it was found valid).
    known: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
    Unavailable,
}

impl OperatorAuth {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            known: Arc::default(),
        }
    }

    /// The id of the operator token `authorization` carries, if it is valid.
    pub async fn check(&self, authorization: Option<&str>) -> Result<String, AuthFailure> {
        let token = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::Missing)?;
        let hash = hash_token(token);
        if let Ok(known) = self.known.lock()
            && let Some((id, _)) = known.get(&hash).filter(|(_, t)| t.elapsed() < CACHE_TTL)
        {
            return Ok(id.clone());
        }
        match self.store.operator_token_id(&hash).await {
            Ok(Some(id)) => {
                if let Ok(mut known) = self.known.lock() {
                    if known.len() >= CACHE_MAX {
                        known.clear();
                    }
                    known.insert(hash, (id.clone(), Instant::now()));
                }
                Ok(id)
            }
            Ok(None) => Err(AuthFailure::Invalid),
            Err(e) => {
                tracing::warn!(error = %e, "operator token check failed");
                Err(AuthFailure::Unavailable)
            }
        }
    }
}

impl<S> tower::Layer<S> for OperatorAuth {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.clone(),
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    auth: OperatorAuth,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody> tower::Service<Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Take the service that was polled ready and leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if req.uri().path().starts_with("/grpc.health.v1.Health/") {
                return inner.call(req).await;
            }
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let status = match auth.check(header).await {
                Ok(id) => {
                    let method = req.uri().path().rsplit('/').next().unwrap_or_default();
                    let caller = audit::Caller {
                        actor: format!("operator:{id}"),
                        method: method.to_owned(),
                    };
                    return audit::ACTOR.scope(caller, inner.call(req)).await;
                }
                Err(AuthFailure::Missing) => tonic::Status::unauthenticated(
                    "missing operator token: send `authorization: Bearer <token>`",
                ),
                Err(AuthFailure::Invalid) => {
                    tonic::Status::unauthenticated("operator token is not valid")
                }
                Err(AuthFailure::Unavailable) => {
                    tonic::Status::unavailable("cannot check the operator token now; retry")
                }
            };
            Ok(status.into_http())
        })
    }
}
