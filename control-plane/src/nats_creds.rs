//! NATS credentials for an isolated tenant's dedicated workers, limited to that tenant's
//! keys: its policy, its sessions, its pool's heartbeats, and its own usage and tool
//! sighting subjects. NATS runs in operator mode (decentralised JWT authentication); the
//! control plane holds a signing key of the account the fleet uses and issues each
//! dedicated pool a user JWT carrying these permissions, which the NATS server checks
//! without being told about tenants.
//!
//! Credentials are deterministic: the user key is derived from the signing key and the
//! slug, and the token's issue time is fixed, so reconciling a tenant again yields the same
//! Secret (server-side apply sees no change) until its permissions change. To cut a pool
//! off, revoke its user key in the account (its public key is [`NatsSigner::user_key`]).

use crate::error::{Error, Result};
use base64::Engine as _;
use nkeys::{KeyPair, KeyPairType};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use switchyard_bus::Buckets;

/// The issue time every token carries (2026-01-01T00:00:00Z), so the same permissions
/// give the same token.
const ISSUED_AT: i64 = 1_767_225_600;

/// Issues dedicated workers' credentials with an account signing key.
pub struct NatsSigner {
    /// The public key of the account the signing key belongs to.
    account: String,
    signing: KeyPair,
    buckets: Buckets,
}

impl std::fmt::Debug for NatsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSigner")
            .field("account", &self.account)
            .field("signing_key", &self.signing.public_key())
            .finish_non_exhaustive()
    }
}

/// What a dedicated pool may publish and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl NatsSigner {
    /// A signer with account signing key `seed` (`SA...`) of account `account` (`A...`),
    /// issuing permissions on `buckets`.
    pub fn new(seed: &str, account: &str, buckets: Buckets) -> Result<Self> {
        let signing = KeyPair::from_seed(seed.trim())
            .ok()
            .filter(|k| k.key_pair_type() == KeyPairType::Account)
            .ok_or_else(|| {
                Error::invalid(
                    "nats_account_signing_key",
                    "is not an account nkey seed (it starts with SA)",
                )
            })?;
        let account = account.trim();
        if !KeyPair::from_public_key(account)
            .is_ok_and(|k| k.key_pair_type() == KeyPairType::Account)
        {
            return Err(Error::invalid(
                "nats_account",
                "is not an account public nkey (it starts with A)",
            ));
        }
        Ok(Self {
            account: account.to_owned(),
            signing,
            buckets,
        })
    }

    /// The user key of `tenant`'s dedicated pool.
    pub fn user_key(&self, tenant: &str) -> Result<KeyPair> {
        let seed = self
            .signing
            .seed()
            .map_err(|e| Error::Internal(format!("signing key: {e}")))?;
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"switchyard/nats-user/v1"), seed.as_bytes());
        let mut raw = [0u8; 32];
        hk.expand(tenant.as_bytes(), &mut raw)
            .map_err(|e| Error::Internal(format!("deriving a user key: {e}")))?;
        KeyPair::new_from_raw(KeyPairType::User, raw)
            .map_err(|e| Error::Internal(format!("deriving a user key: {e}")))
    }

    /// What `tenant`'s dedicated workers may publish and subscribe to.
    pub fn permissions(&self, tenant: &str) -> Permissions {
        let Buckets {
            policy,
            sessions,
            fleet,
            ..
        } = &self.buckets;
        let api = "$JS.API";
        let mut publish = vec![
            // Opening the buckets (no values in a stream's info).
            format!("{api}.STREAM.INFO.KV_{policy}"),
            format!("{api}.STREAM.INFO.KV_{sessions}"),
            format!("{api}.STREAM.INFO.KV_{fleet}"),
            // Its policy: read (and its writes followed, below).
            format!("{api}.DIRECT.GET.KV_{policy}.$KV.{policy}.{tenant}"),
            // Its sessions: read and written.
            format!("{api}.DIRECT.GET.KV_{sessions}.$KV.{sessions}.{tenant}.>"),
            format!("$KV.{sessions}.{tenant}.>"),
            // Its pool's heartbeats: written (and followed, below).
            format!("$KV.{fleet}.dedicated.{tenant}.>"),
            // Its reports.
            format!("switchyard.usage.{tenant}"),
            format!("switchyard.tools.{tenant}"),
            format!("switchyard.refusals.{tenant}"),
        ];
        // Its authorization server's state: read and written.
        for bucket in [
            switchyard_bus::grants::CODES_BUCKET,
            switchyard_bus::grants::GRANTS_BUCKET,
            switchyard_bus::grants::KEYS_BUCKET,
            switchyard_bus::grants::CLIENTS_BUCKET,
        ] {
            publish.push(format!("{api}.STREAM.INFO.KV_{bucket}"));
            publish.push(format!(
                "{api}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{tenant}.>"
            ));
            publish.push(format!("$KV.{bucket}.{tenant}.>"));
        }
        Permissions {
            publish,
            subscribe: vec![
                // Answers to its own requests.
                format!("{}.>", switchyard_bus::inbox_prefix(tenant)),
                // Writes of its policy and of its pool's heartbeats, as they happen.
                format!("$KV.{policy}.{tenant}"),
                format!("$KV.{fleet}.dedicated.{tenant}.>"),
            ],
        }
    }

    /// The credentials file (`.creds`) of `tenant`'s dedicated workers.
    pub fn dedicated_worker_creds(&self, tenant: &str) -> Result<String> {
        let user = self.user_key(tenant)?;
        let permissions = self.permissions(tenant);
        let claims = json!({
            "iat": ISSUED_AT,
            "iss": self.signing.public_key(),
            "name": format!("switchyard-worker-{tenant}"),
            "sub": user.public_key(),
            "nats": {
                "pub": {"allow": permissions.publish},
                "sub": {"allow": permissions.subscribe},
                "subs": -1,
                "data": -1,
                "payload": -1,
                "issuer_account": self.account,
                "type": "user",
                "version": 2,
            },
        });
        let jwt = encode_jwt(claims, &self.signing)?;
        let seed = user
            .seed()
            .map_err(|e| Error::Internal(format!("user key: {e}")))?;
        Ok(creds_file(&jwt, &seed))
    }
}

/// A NATS JWT of `claims` (an object; its `jti` is set to a digest of the rest) signed
/// by `signer`.
pub fn encode_jwt(mut claims: Value, signer: &KeyPair) -> Result<String> {
    let encode = |c: &Value| serde_json::to_vec(c).map_err(|e| Error::Internal(e.to_string()));
    claims["jti"] = json!("");
    let digest = Sha256::digest(encode(&claims)?);
    claims["jti"] = json!(
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let signed = format!("{header}.{}", b64(&encode(&claims)?));
    let signature = signer
        .sign(signed.as_bytes())
        .map_err(|e| Error::Internal(format!("signing: {e}")))?;
    Ok(format!("{signed}.{}", b64(&signature)))
}

/// A credentials file: a user's JWT and its key's seed.
pub fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[cfg(test)]
#[path = "nats_creds_tests.rs"]
mod tests;
