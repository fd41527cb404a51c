//! A grant of the built-in authorization server as the grants store keeps it, under
//! `{tenant}.grant.{id}`: written by workers at sign-in and at each refresh, read by the
//! control plane to list a tenant's grants.

use serde::{Deserialize, Serialize};

/// What a sign-in gave a client, kept while its refresh tokens live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// The API key signed in with; empty for a user of the tenant's provider.
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<GrantUser>,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// Digest of the refresh token that is current.
    pub refresh: String,
    /// Digests of those it replaced.
    pub used: Vec<String>,
    /// When its refresh tokens stop working, in seconds since the epoch.
    pub expires: u64,
    /// When the user signed in, in seconds since the epoch (0: not kept).
    #[serde(default)]
    pub created: u64,
}

/// A user signed in at the tenant's provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantUser {
    pub issuer: String,
    pub subject: String,
    /// The values of the role claim the mapping named at sign-in.
    pub values: Vec<String>,
}

impl Grant {
    /// Who holds it, as the audit trail names callers: `key:{id}` or `user:{sub}`.
    pub fn holder(&self) -> String {
        match &self.user {
            Some(u) if self.key.is_empty() => format!("user:{}", u.subject),
            _ => format!("key:{}", self.key),
        }
    }
}

/// Where grant `id` of `tenant` is kept.
pub fn grant_key(tenant: &str, id: &str) -> String {
    format!("{tenant}.grant.{id}")
}

/// The prefix of every grant of `tenant`.
pub fn grants_of(tenant: &str) -> String {
    format!("{tenant}.grant.")
}
