//! The grant service: a tenant's grants of the built-in authorization server, read from
//! the grants store the workers write, and revoked there and in the tenant's policy.

use super::*;
use crate::compile::timestamp;
use switchyard_bus::grant::{Grant, grant_key, grants_of};
use tonic::Request;

/// Grants listed at most.
const MAX_LISTED: usize = 1_000;
/// Grants of a tenant read at most for one listing.
const MAX_SCANNED: usize = 10_000;
/// How long after its expiry a token is still taken (the workers' clock skew allowance).
const SKEW_MILLIS: i64 = 60_000;
/// Longest holder filter taken: `user:` and the longest subject.
const MAX_HOLDER_LEN: usize = 300;

/// A grant id as the authorization server makes them: 43 base64url characters.
fn grant_id(field: &str, s: &str) -> Result<String> {
    let plausible = s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Err(Error::invalid(
            field,
            "not a grant id (43 characters of A-Z a-z 0-9 - _)",
        ));
    }
    Ok(s.to_owned())
}

fn grant_pb(tenant: &str, id: &str, g: &Grant) -> pb::Grant {
    let seconds =
        |s: u64| (s > 0).then(|| timestamp(i64::try_from(s).unwrap_or(i64::MAX / 1000) * 1000));
    pb::Grant {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        client_id: g.client_id.clone(),
        holder: g.holder(),
        scopes: g
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        create_time: seconds(g.created),
        expire_time: seconds(g.expires),
    }
}

impl Admin {
    fn grant_store(&self) -> Result<&std::sync::Arc<dyn switchyard_bus::CasKv>> {
        self.grants.as_ref().ok_or_else(|| {
            Error::Unavailable("the grants store (this control plane has no NATS)".into())
        })
    }
}

impl Admin {
    /// Forgets every grant of `tenant`, once it is deleted, so that a tenant made again
    /// under its name inherits none. What cannot be reached now expires with its bucket.
    pub(super) async fn forget_grants(&self, tenant: &switchyard_common::TenantSlug) {
        let Some(store) = &self.grants else {
            return;
        };
        let prefix = grants_of(tenant.as_str());
        loop {
            let entries = match store.list(&prefix, MAX_SCANNED).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "a deleted tenant's grants stay until they expire");
                    return;
                }
            };
            for (key, _) in &entries {
                if let Err(e) = store.delete(key).await {
                    tracing::warn!(%tenant, error = %e, "a deleted tenant's grant stays until it expires");
                    return;
                }
            }
            if entries.len() < MAX_SCANNED {
                return;
            }
        }
    }
}

fn store_unavailable(e: switchyard_bus::BusError) -> Error {
    tracing::warn!(error = %e, "grants store unavailable");
    Error::Unavailable("the grants store".into())
}

#[tonic::async_trait]
impl pb::grant_service_server::GrantService for Admin {
    async fn list_grants(
        &self,
        req: Request<pb::ListGrantsRequest>,
    ) -> Reply<pb::ListGrantsResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                if r.holder.len() > MAX_HOLDER_LEN {
                    return Err(Error::invalid(
                        "holder",
                        format!("at most {MAX_HOLDER_LEN} characters"),
                    ));
                }
                // A tenant that does not exist is not found, rather than empty.
                self.store.get_tenant(&tenant).await?;
                let prefix = grants_of(tenant.as_str());
                let entries = self
                    .grant_store()?
                    .list(&prefix, MAX_SCANNED)
                    .await
                    .map_err(store_unavailable)?;
                let mut grants: Vec<pb::Grant> = entries
                    .iter()
                    .filter_map(|(key, entry)| {
                        let grant: Grant = serde_json::from_slice(&entry.value).ok()?;
                        let id = key.strip_prefix(&prefix)?;
                        (r.holder.is_empty() || grant.holder() == r.holder)
                            .then(|| grant_pb(tenant.as_str(), id, &grant))
                    })
                    .collect();
                let truncated = grants.len() > MAX_LISTED || entries.len() >= MAX_SCANNED;
                grants.truncate(MAX_LISTED);
                Ok(pb::ListGrantsResponse { grants, truncated })
            }
            .await,
        )
    }

    async fn revoke_grant(&self, req: Request<pb::RevokeGrantRequest>) -> Reply<pb::Grant> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let id = grant_id("id", &r.id)?;
                let state = self
                    .store
                    .tenant_state(&tenant)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("tenant {tenant}")))?;
                let store = self.grant_store()?;
                let key = grant_key(tenant.as_str(), &id);
                let entry = store
                    .get(&key)
                    .await
                    .map_err(store_unavailable)?
                    .ok_or_else(|| Error::NotFound(format!("grant {id} of tenant {tenant}")))?;
                let grant: Grant = serde_json::from_slice(&entry.value)
                    .map_err(|_| Error::NotFound(format!("grant {id} of tenant {tenant}")))?;
                let described = grant_pb(tenant.as_str(), &id, &grant);
                // Its access tokens live at most the longest lifetime a tenant may set (it
                // may have been longer when they were issued than it is now).
                let until = now_millis()
                    + i64::from(*super::identity_settings::ACCESS_TOKEN_SECONDS.end()) * 1000
                    + SKEW_MILLIS;
                let after = super::policy_size::with_revoked_grant(&state, &id, until);
                super::policy_size::fits(&after, &self.keys, "id")?;
                let detail = serde_json::json!({
                    "client_id": described.client_id,
                    "holder": described.holder,
                    "scopes": described.scopes,
                });
                // Recorded first: a grant whose refresh token is gone but whose access
                // tokens are still taken would be a revocation that did not happen.
                self.store.revoke_grant(&tenant, &id, until, detail).await?;
                store.delete(&key).await.map_err(store_unavailable)?;
                tracing::info!(%tenant, "grant revoked");
                Ok(described)
            }
            .await,
        )
    }

    async fn rotate_signing_keys(
        &self,
        req: Request<pb::RotateSigningKeysRequest>,
    ) -> Reply<pb::RotateSigningKeysResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let not_before = self.store.retire_signing_keys(&tenant).await?;
                tracing::info!(%tenant, "signing keys retired");
                Ok(pb::RotateSigningKeysResponse {
                    not_before: Some(timestamp(not_before)),
                })
            }
            .await,
        )
    }
}
