//! NATS in operator mode, as production runs it when dedicated workers hold credentials
//! of their own: an operator, a system account, and the fleet's account (JetStream on)
//! with a signing key. The control plane and shared workers connect as a user with every
//! permission; a dedicated worker, with what the control plane's `NatsSigner` issues it.

use nkeys::{KeyPair, KeyPairType};
use serde_json::json;
use switchyard_control_plane::nats_creds::{NatsSigner, creds_file, encode_jwt};

/// The keys and credentials of one operator-mode NATS server.
pub struct Accounts {
    /// The fleet account's public key.
    pub account: String,
    /// The seed of the fleet account's signing key.
    pub signing_seed: String,
    /// Credentials with every permission in the fleet account.
    pub fleet_creds: String,
    /// The server's configuration: operator, system account, preloaded accounts.
    pub server_config: String,
}

fn jwt(claims: serde_json::Value, signer: &KeyPair) -> String {
    encode_jwt(claims, signer).unwrap()
}

const NO_LIMITS: [(&str, i64); 7] = [
    ("subs", -1),
    ("data", -1),
    ("payload", -1),
    ("imports", -1),
    ("exports", -1),
    ("conn", -1),
    ("leaf", -1),
];

impl Accounts {
    pub fn generate() -> Self {
        let operator = KeyPair::new(KeyPairType::Operator);
        let system = KeyPair::new(KeyPairType::Account);
        let fleet = KeyPair::new(KeyPairType::Account);
        let signing = KeyPair::new(KeyPairType::Account);
        let user = KeyPair::new(KeyPairType::User);
        let mut limits: serde_json::Map<String, serde_json::Value> = NO_LIMITS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        limits.insert("wildcards".into(), json!(true));
        let system_jwt = jwt(
            json!({"iat": 1, "iss": operator.public_key(), "sub": system.public_key(), "name": "system",
                "nats": {"type": "account", "version": 2, "limits": limits}}),
            &operator,
        );
        for (k, v) in [
            ("mem_storage", -1),
            ("disk_storage", -1),
            ("streams", -1),
            ("consumer", -1),
        ] {
            limits.insert(k.into(), json!(v));
        }
        let fleet_jwt = jwt(
            json!({"iat": 1, "iss": operator.public_key(), "sub": fleet.public_key(), "name": "switchyard",
                "nats": {"type": "account", "version": 2, "limits": limits,
                    "signing_keys": [signing.public_key()]}}),
            &operator,
        );
        let operator_jwt = jwt(
            json!({"iat": 1, "iss": operator.public_key(), "sub": operator.public_key(), "name": "test",
                "nats": {"type": "operator", "version": 2, "system_account": system.public_key()}}),
            &operator,
        );
        let fleet_user = jwt(
            json!({"iat": 1, "iss": signing.public_key(), "sub": user.public_key(), "name": "fleet",
                "nats": {"type": "user", "version": 2, "issuer_account": fleet.public_key(),
                    "subs": -1, "data": -1, "payload": -1}}),
            &signing,
        );
        let server_config = format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {acc}: \"{fleet_jwt}\"\n}}\n",
            sys = system.public_key(),
            acc = fleet.public_key(),
        );
        Self {
            account: fleet.public_key(),
            signing_seed: signing.seed().unwrap(),
            fleet_creds: creds_file(&fleet_user, &user.seed().unwrap()),
            server_config,
        }
    }

    /// What the control plane would issue dedicated workers, on the test stack's buckets.
    pub fn signer(&self) -> NatsSigner {
        NatsSigner::new(
            &self.signing_seed,
            &self.account,
            crate::nats::test_buckets(),
        )
        .unwrap()
    }
}
