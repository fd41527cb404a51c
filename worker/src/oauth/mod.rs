//! The built-in authorization server each tenant has at `https://HOST/t/{tenant}` (RFC
//! 8414 metadata by path insertion), served by every worker from state in the shared
//! stores (`switchyard_bus::GrantStores`), so a sign-in begun on one worker finishes on any
//! other and survives the loss of either. Authorization code with PKCE S256 only; clients
//! are identified by client ID metadata documents (`clients`) or register (`register`);
//! the user signs in on a consent page with one of the tenant's API keys (`authorize`), and
//! the tokens carry that key's role, capped by the scopes granted, and die with the key
//! (`token`). Access tokens are ES256 JWTs signed with the tenant's own key (`keys`),
//! checked by workers locally.

mod authorize;
mod clients;
mod federate;
pub mod keys;
mod limits;
mod metadata;
mod page;
mod register;
pub mod scopes;
mod token;
mod with_key;

pub use keys::{KID_PREFIX, SigningKeys};

use crate::error::{Error, Result};
use crate::principal::{KeyId, Principal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_bus::{CasKv, GrantStores};

/// The authorization server's parts, shared by its routes and the token check.
#[derive(Debug)]
pub struct Server {
    pub keys: SigningKeys,
    codes: Arc<dyn CasKv>,
    grants: Arc<dyn CasKv>,
    /// Registrations not used yet (see `register`).
    registered: Arc<dyn CasKv>,
    clients: clients::Clients,
    limits: limits::Limits,
}

impl Server {
    pub fn new(
        stores: &GrantStores,
        policy_keys: switchyard_common::seal::Keyring,
        derived: bool,
        guard: switchyard_common::netguard::UpstreamGuard,
    ) -> std::io::Result<Self> {
        Ok(Self {
            keys: SigningKeys::new(stores.keys.clone(), policy_keys, derived),
            codes: stores.codes.clone(),
            grants: stores.grants.clone(),
            registered: stores.clients.clone(),
            clients: clients::Clients::new(guard)?,
            limits: limits::Limits::default(),
        })
    }

    /// Checks `token`, one of this server's access tokens, for `tenant`'s endpoint at
    /// `resource`: the caller is the key it was granted with, its role capped by the scopes.
    pub async fn verify(
        &self,
        tenant: &crate::policy::Tenant,
        resource: &str,
        kid: &str,
        token: &str,
    ) -> Result<Principal> {
        let key = self
            .keys
            .verifying(tenant.slug.as_str(), tenant.signing_keys_not_before, kid)
            .await
            .map_err(|e| {
                tracing::warn!(tenant = %tenant.slug, error = %e, "signing keys unavailable");
                Error::IdentityProviderUnavailable
            })?
            .ok_or(Error::InvalidCredential)?;
        let mut validation = keys::validation();
        validation.leeway = 60;
        validation.set_issuer(&[issuer_of(resource)]);
        validation.set_audience(&[resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|e| {
                tracing::debug!(tenant = %tenant.slug, error = %e, "access token refused");
                Error::InvalidCredential
            })?
            .claims;
        let role = scopes::role(&claims.scope).ok_or(Error::InvalidCredential)?;
        if !claims.gid.is_empty() && tenant.revoked_grants.contains(&claims.gid) {
            return Err(Error::InvalidCredential);
        }
        let connectors = scopes::connectors(&claims.scope);
        if claims.key.is_empty() {
            return federate::principal(tenant, claims, role).map(|p| p.limited_to(connectors));
        }
        let key_id = KeyId::parse(&claims.key).map_err(|_| Error::InvalidCredential)?;
        // The token dies with the key it was granted with.
        match tenant.keys.get(&key_id) {
            Some(k) if k.expires.is_none_or(|e| e > SystemTime::now()) => {}
            _ => return Err(Error::InvalidCredential),
        }
        Ok(Principal::granted(tenant.slug.clone(), key_id, role).limited_to(connectors))
    }

    /// Forgets rate limits that are full again (entries of the stores expire in the stores
    /// themselves).
    pub fn sweep(&self) {
        self.limits.sweep();
    }

    /// The client `id` names at `tenant`'s server: a client ID metadata document's URL, or
    /// a registration's ID.
    async fn client(
        &self,
        tenant: &str,
        id: &str,
    ) -> std::result::Result<Arc<clients::Client>, clients::ClientError> {
        if id.contains("://") {
            return self.clients.get(id).await;
        }
        let unknown = || clients::ClientError::Unknown;
        if !plausible_id(id) {
            return Err(unknown());
        }
        let key = register::client_key(tenant, id);
        let unavailable = |e: switchyard_bus::BusError| {
            tracing::warn!(tenant, error = %e, "registrations unavailable");
            clients::ClientError::Unavailable
        };
        // A used registration is with the grants; a new one with the registrations.
        let entry = match self.grants.get(&key).await.map_err(unavailable)? {
            Some(entry) => entry,
            None => self
                .registered
                .get(&key)
                .await
                .map_err(unavailable)?
                .ok_or_else(unknown)?,
        };
        let r: register::Registered =
            serde_json::from_slice(&entry.value).map_err(|_| unknown())?;
        if r.expires <= now_secs() {
            return Err(unknown());
        }
        Ok(Arc::new(clients::Client {
            id: id.to_owned(),
            name: r.name,
            redirect_uris: r.redirect_uris,
        }))
    }

    /// Keeps registration `id` of `tenant`, if it is one, for as long as a used one lives:
    /// with the grants, written again at each sign-in.
    async fn used(&self, tenant: &str, id: &str) {
        if !plausible_id(id) {
            return;
        }
        let key = register::client_key(tenant, id);
        let kept = match self.grants.get(&key).await {
            Ok(Some(entry)) => Some((entry, true)),
            Ok(None) => self
                .registered
                .get(&key)
                .await
                .ok()
                .flatten()
                .map(|e| (e, false)),
            Err(_) => None,
        };
        let Some((entry, with_grants)) = kept else {
            return;
        };
        let Ok(mut r) = serde_json::from_slice::<register::Registered>(&entry.value) else {
            return;
        };
        r.expires = now_secs() + register::USED_FOR;
        let Ok(bytes) = serde_json::to_vec(&r) else {
            return;
        };
        let _ = if with_grants {
            self.grants.update(&key, bytes.into(), entry.revision).await
        } else {
            self.grants.create(&key, bytes.into()).await
        };
    }

    pub fn routes() -> axum::Router<Arc<crate::http::App>> {
        use axum::routing::{get, post};
        axum::Router::new()
            .merge(metadata::routes())
            .route(
                "/t/{tenant}/oauth/authorize",
                get(authorize::page).post(authorize::consent),
            )
            .route("/t/{tenant}/oauth/token", post(token::token))
            .route("/t/{tenant}/oauth/register", post(register::register))
            .route("/t/{tenant}/oauth/revoke", post(token::revoke))
            .route("/t/{tenant}/oauth/callback", get(federate::callback))
    }
}

/// The issuer of the server whose tenant endpoint is `resource`.
fn issuer_of(resource: &str) -> &str {
    resource.strip_suffix("/mcp").unwrap_or(resource)
}

/// The claims of an access token of this server.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// `key:{id}`: the caller, as the audit trail names it.
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub client_id: String,
    pub scope: String,
    /// The API key the grant was signed in with; empty for a user of the provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The provider a user signed in at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The values of the provider's role claim the user had that the mapping named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idp_roles: Vec<String>,
    /// The grant it was issued for, so that revoking the grant ends it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gid: String,
    pub jti: String,
}

/// A user signed in at the tenant's provider, as codes and grants keep them.
pub(crate) use switchyard_bus::grant::GrantUser as User;

/// Who a decision of the server is about, on the audit trail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Actor<'a> {
    Nobody,
    Key(&'a str),
    User(&'a str),
}

impl<'a> Actor<'a> {
    /// The holder of `grant` (as `Grant::holder` names it).
    fn of(grant: &'a switchyard_bus::grant::Grant) -> Self {
        match &grant.user {
            Some(u) if grant.key.is_empty() => Self::User(&u.subject),
            _ => Self::Key(&grant.key),
        }
    }

    pub fn key(self) -> Option<&'a str> {
        match self {
            Self::Key(k) => Some(k),
            _ => None,
        }
    }

    pub fn subject(self) -> Option<&'a str> {
        match self {
            Self::User(s) => Some(s),
            _ => None,
        }
    }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random identifier of 32 bytes, base64url: unguessable.
fn random_id() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `id`, from a request, can be one `random_id` made: only those name entries.
fn plausible_id(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A digest of a secret, hex: what the stores keep instead of the secret.
fn digest(secret: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
