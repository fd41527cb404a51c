//! The API key service.

use super::*;
use crate::compile::timestamp;
use crate::error::Error;
use crate::model::*;
use crate::store::NewApiKey;
use switchyard_common::apikey;
use switchyard_proto::admin::v1 as pb;
use tonic::Request;

/// As long as an argon2id verifier with the parameters keys get, for sizing a policy.
const PROBE_VERIFIER: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

pub(super) fn key_pb(k: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        prefix: apikey::display_prefix(&k.id),
        id: k.id.to_string(),
        tenant: k.tenant.to_string(),
        role: match k.role {
            Role::Viewer => pb::ApiKeyRole::Viewer,
            Role::Editor => pb::ApiKeyRole::Editor,
            Role::Admin => pb::ApiKeyRole::Admin,
        } as i32,
        description: k.description,
        requests_per_second: k.requests_per_second,
        burst: k.burst,
        create_time: Some(timestamp(k.created_at)),
        expire_time: k.expires_at.map(timestamp),
        last_used_time: k.last_used_at.map(timestamp),
        revoke_time: k.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for Admin {
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Reply<pb::CreateApiKeyResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let role = match pb::ApiKeyRole::try_from(r.role) {
                    Ok(pb::ApiKeyRole::Unspecified) | Ok(pb::ApiKeyRole::Editor) => Role::Editor,
                    Ok(pb::ApiKeyRole::Viewer) => Role::Viewer,
                    Ok(pb::ApiKeyRole::Admin) => Role::Admin,
                    Err(_) => {
                        return Err(Error::invalid("role", format!("unknown role {}", r.role)));
                    }
                };
                let description = text("description", &r.description, 200)?;
                let rps = r
                    .requests_per_second
                    .map(|v| in_range("requests_per_second", v, 1, 100_000))
                    .transpose()?;
                let burst = r
                    .burst
                    .map(|v| in_range("burst", v, 1, 1_000_000))
                    .transpose()?;
                if burst.is_some() && rps.is_none() {
                    return Err(Error::invalid(
                        "burst",
                        "needs requests_per_second: a key's burst applies to its own rate",
                    ));
                }
                let expires_at = r
                    .expire_time
                    .as_ref()
                    .map(|t| millis_of("expire_time", t))
                    .transpose()?;
                if expires_at.is_some_and(|e| e <= now_millis()) {
                    return Err(Error::invalid("expire_time", "must lie in the future"));
                }
                // Fail fast on an unknown tenant, or a policy with no room for another
                // key, before spending argon2 work.
                let state = self.store.tenant_state(&tenant).await?.ok_or_else(|| {
                    Error::NotFound(format!("tenant {tenant}"))
                })?;
                let probe = ApiKey {
                    id: apikey::generate_key_id(),
                    tenant: tenant.clone(),
                    role,
                    description: description.clone(),
                    requests_per_second: rps,
                    burst,
                    verifier: PROBE_VERIFIER.into(),
                    created_at: 0,
                    expires_at,
                    last_used_at: None,
                    revoked_at: None,
                };
                super::policy_size::fits(
                    &super::policy_size::with_key(&state, probe),
                    &self.keys,
                    "tenant",
                )?;
                let generated = tokio::task::spawn_blocking(apikey::generate)
                    .await
                    .map_err(|e| Error::Internal(format!("key generation task: {e}")))?
                    .map_err(|e| Error::Internal(format!("key generation: {e}")))?;
                let key = self
                    .store
                    .create_api_key(
                        &tenant,
                        NewApiKey {
                            id: generated.id.clone(),
                            role,
                            description,
                            requests_per_second: rps,
                            burst,
                            verifier: generated.verifier,
                            expires_at,
                        },
                    )
                    .await?;
                tracing::info!(tenant = %tenant, key = %key.id, role = key.role.as_str(), "API key created");
                Ok(pb::CreateApiKeyResponse {
                    key: Some(key_pb(key)),
                    secret: generated.credential.to_string(),
                })
            }
            .await,
        )
    }

    async fn get_api_key(&self, req: Request<pb::GetApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let id = key_id("id", &r.id)?;
                Ok(key_pb(self.store.get_api_key(&tenant, &id).await?))
            }
            .await,
        )
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Reply<pb::ListApiKeysResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let keys = self.store.list_api_keys(&tenant, r.include_revoked).await?;
                Ok(pb::ListApiKeysResponse {
                    keys: keys.into_iter().map(key_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let id = key_id("id", &r.id)?;
                let key = self.store.revoke_api_key(&tenant, &id).await?;
                tracing::info!(tenant = %tenant, key = %id, "API key revoked");
                Ok(key_pb(key))
            }
            .await,
        )
    }
}
