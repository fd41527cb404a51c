//! The operator token service: tokens are created (shown once), listed and revoked
//! through the admin API itself, so the bootstrap token can be replaced and retired.

use super::*;
use crate::auth::{generate_operator_token, hash_token};
use crate::compile::timestamp;
use crate::model::OperatorToken;
use switchyard_proto::admin::v1 as pb;
use tonic::Request;

fn token_pb(t: OperatorToken) -> pb::OperatorToken {
    pb::OperatorToken {
        id: t.id,
        name: t.name,
        create_time: Some(timestamp(t.created_at)),
        expire_time: t.expires_at.map(timestamp),
        revoke_time: t.revoked_at.map(timestamp),
    }
}

/// A new token id: 12 characters of [a-z0-9].
fn token_id() -> String {
    switchyard_common::apikey::generate_key_id().to_string()
}

#[tonic::async_trait]
impl pb::operator_token_service_server::OperatorTokenService for Admin {
    async fn create_operator_token(
        &self,
        req: Request<pb::CreateOperatorTokenRequest>,
    ) -> Reply<pb::CreateOperatorTokenResponse> {
        let r = req.into_inner();
        reply(
            async {
                let name = text("name", &r.name, 100)?;
                if name.trim().is_empty() {
                    return Err(Error::invalid("name", "is required"));
                }
                let expires_at = r
                    .expire_time
                    .as_ref()
                    .map(|t| millis_of("expire_time", t))
                    .transpose()?;
                if expires_at.is_some_and(|e| e <= now_millis()) {
                    return Err(Error::invalid("expire_time", "must lie in the future"));
                }
                let secret = generate_operator_token();
                let id = token_id();
                self.store
                    .add_operator_token(&hash_token(&secret), &id, &name, expires_at)
                    .await?;
                tracing::info!(token = %id, name = %name, "operator token created");
                Ok(pb::CreateOperatorTokenResponse {
                    token: Some(token_pb(self.store.get_operator_token(&id).await?)),
                    secret,
                })
            }
            .await,
        )
    }

    async fn list_operator_tokens(
        &self,
        req: Request<pb::ListOperatorTokensRequest>,
    ) -> Reply<pb::ListOperatorTokensResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tokens = self.store.list_operator_tokens(r.include_revoked).await?;
                Ok(pb::ListOperatorTokensResponse {
                    tokens: tokens.into_iter().map(token_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn revoke_operator_token(
        &self,
        req: Request<pb::RevokeOperatorTokenRequest>,
    ) -> Reply<pb::OperatorToken> {
        let r = req.into_inner();
        reply(
            async {
                if r.id.is_empty() || r.id.len() > 64 {
                    return Err(Error::invalid("id", "is required (see ListOperatorTokens)"));
                }
                let token = self.store.revoke_operator_token(&r.id).await?;
                tracing::info!(token = %token.id, "operator token revoked");
                Ok(token_pb(token))
            }
            .await,
        )
    }
}
