//! A tenant's identity settings: which credentials its endpoint accepts, and its OpenID
//! Connect provider.

use super::Role;
use serde::{Deserialize, Serialize};

/// Access-token lifetime when the tenant sets none.
pub const DEFAULT_ACCESS_TOKEN_SECONDS: u32 = 3600;
/// Refresh-token lifetime when the tenant sets none (30 days).
pub const DEFAULT_REFRESH_TOKEN_SECONDS: u32 = 30 * 24 * 3600;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// API keys are refused as bearer credentials at the endpoint.
    pub api_keys_disabled: bool,
    pub provider: Option<IdentityProvider>,
    /// 0: `DEFAULT_ACCESS_TOKEN_SECONDS`.
    pub access_token_seconds: u32,
    /// 0: `DEFAULT_REFRESH_TOKEN_SECONDS`.
    pub refresh_token_seconds: u32,
    /// Grants of the built-in authorization server revoked while their access tokens may
    /// live (not part of the settings an admin sets: `RevokeGrant` adds to it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked_grants: Vec<RevokedGrant>,
    /// The built-in authorization server's signing keys made before this (milliseconds
    /// since the epoch; 0: none) are retired (`RotateSigningKeys` sets it).
    #[serde(skip_serializing_if = "is_zero")]
    pub signing_keys_not_before: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A revoked grant, kept until the last access token issued for it has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedGrant {
    pub id: String,
    /// Milliseconds since the epoch.
    pub until: i64,
}

/// Revoked grants a tenant keeps at most at once.
pub const MAX_REVOKED_GRANTS: usize = 1_000;

/// An OpenID Connect provider, found by discovery under its issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityProvider {
    pub issuer: String,
    /// Empty: the tenant's resource URL.
    pub audience: String,
    pub role_claim: String,
    pub roles: Vec<RoleMapping>,
    /// The built-in authorization server's client at the provider; empty: users sign in
    /// to it with an API key.
    pub client_id: String,
    /// Scopes asked for at sign-in besides `openid`.
    pub sign_in_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    pub value: String,
    pub role: Role,
}
