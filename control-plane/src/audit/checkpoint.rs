//! Signed checkpoints: every [`DEFAULT_EVERY`] (by default) the control plane signs the head
//! of each chain that moved since its last checkpoint with its Ed25519 audit key
//! (`--audit-signing-key`). Whoever rewrites a chain from some record on, head row included,
//! makes every chain check pass but no longer matches the checkpoints signed before the
//! rewrite: [`check`] names the first such. Records appended after the last checkpoint can
//! still be cut off unseen; how soon that gap closes is the checkpoint interval. Replicas
//! may all sign: a checkpoint is one row per chain and sequence number, the first kept.

use super::chain::{ChainBreak, Record};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// How often heads are signed unless the control plane is told otherwise.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(300);

/// A chain's head as signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: i64,
    pub hash: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    #[serde(skip)]
    pub key_id: String,
    /// Base64.
    #[serde(skip)]
    pub signature: String,
}

impl Checkpoint {
    /// What is signed: the checkpoint's canonical JSON (RFC 8785), key and signature left out.
    pub fn payload(&self) -> Vec<u8> {
        serde_jcs::to_vec(self).unwrap_or_default()
    }
}

/// The id of `key`: the first 16 hex digits of the SHA-256 of its bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The public keys checkpoints are checked against: the signing key's, and those of keys
/// it replaced (so checkpoints signed before a rotation still check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    pub current: Option<VerifyingKey>,
    pub previous: Vec<VerifyingKey>,
}

impl Keyring {
    /// Every key, the current one first.
    pub fn all(&self) -> Vec<VerifyingKey> {
        self.current.iter().chain(&self.previous).copied().collect()
    }
}

/// The audit signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &key_id(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key whose 32-byte seed `text` holds in base64.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| "is not base64".to_owned())?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be 32 bytes (an Ed25519 seed) in base64".to_owned())?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A checkpoint of `chain` at record `seq` with `hash`, signed now.
    pub fn sign(&self, chain: &str, seq: i64, hash: &str, at: i64) -> Checkpoint {
        let mut cp = Checkpoint {
            chain: chain.to_owned(),
            seq,
            hash: hash.to_owned(),
            at,
            key_id: key_id(&self.public()),
            signature: String::new(),
        };
        cp.signature = B64.encode(self.key.sign(&cp.payload()).to_bytes());
        cp
    }
}

/// Whether `cp` was signed by `key`.
pub fn signed_by(cp: &Checkpoint, key: &VerifyingKey) -> bool {
    let Ok(bytes) = B64.decode(&cp.signature) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(&cp.payload(), &signature).is_ok()
}

/// The Ed25519 public key `text` holds in base64.
pub fn public_key_from_base64(text: &str) -> Result<VerifyingKey, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| "is not base64".to_owned())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "must be 32 bytes (an Ed25519 public key) in base64".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "is not an Ed25519 public key".to_owned())
}

/// Checks `checkpoints` against `records` (a verified run of one chain): each must be
/// signed by the key of `keys` it names and, where its record is in the run, name that
/// record's hash. How many matched, or the first that did not.
pub fn check(
    records: &[Record],
    checkpoints: &[Checkpoint],
    keys: &[VerifyingKey],
) -> Result<usize, ChainBreak> {
    let mut matched = 0;
    for cp in checkpoints {
        let broken = |reason: String| ChainBreak {
            seq: cp.seq,
            reason,
        };
        let Some(key) = keys.iter().find(|k| key_id(k) == cp.key_id) else {
            let known: Vec<String> = keys.iter().map(key_id).collect();
            return Err(broken(format!(
                "the checkpoint at this record names the key {}, which is not one of the audit keys ({})",
                cp.key_id,
                known.join(", ")
            )));
        };
        if !signed_by(cp, key) {
            return Err(broken(format!(
                "the checkpoint at this record is not signed by the audit key {}",
                key_id(key)
            )));
        }
        let Some(record) = records.iter().find(|r| r.seq == cp.seq) else {
            continue;
        };
        if record.hash != cp.hash {
            return Err(broken(format!(
                "hashes to {} but was signed as {} at {}: the chain was rewritten from here or before",
                &record.hash[..record.hash.len().min(12)],
                &cp.hash[..cp.hash.len().min(12)],
                cp.at
            )));
        }
        matched += 1;
    }
    Ok(matched)
}

/// Signs every chain head that moved since its last checkpoint, every `every`, until the
/// task is dropped.
pub async fn run(store: crate::store::Store, signer: Signer, every: Duration) {
    loop {
        match store.sign_audit_heads(&signer).await {
            Ok(0) => {}
            Ok(signed) => tracing::debug!(signed, "audit checkpoints signed"),
            Err(e) => tracing::warn!(error = %e, "signing audit checkpoints failed"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_base64(&B64.encode([7u8; 32])).unwrap_or_else(|e| panic!("{e}"))
    }

    fn record(seq: i64, hash: &str) -> Record {
        Record {
            chain: "acme".into(),
            seq,
            id: format!("r{seq}"),
            at: 0,
            kind: "admin".into(),
            actor: "a".into(),
            action: "b".into(),
            object: "c".into(),
            outcome: "ok".into(),
            detail: "{}".into(),
            trace_id: String::new(),
            prev_hash: String::new(),
            hash: hash.into(),
        }
    }

    #[test]
    fn a_checkpoint_matches_its_record_and_no_other_key_or_hash() {
        let s = signer();
        let cp = s.sign("acme", 2, "bbbb", 10);
        let records = [record(1, "aaaa"), record(2, "bbbb")];
        assert_eq!(
            check(&records, std::slice::from_ref(&cp), &[s.public()]),
            Ok(1)
        );

        let rewritten = [record(1, "aaaa"), record(2, "cccc")];
        let e = check(&rewritten, std::slice::from_ref(&cp), &[s.public()]).unwrap_err();
        assert_eq!(e.seq, 2);

        let other = Signer::from_base64(&B64.encode([8u8; 32])).unwrap_or_else(|e| panic!("{e}"));
        let e = check(&records, std::slice::from_ref(&cp), &[other.public()]).unwrap_err();
        assert!(e.reason.contains("not one of the audit keys"), "{e}");

        // A checkpoint that names a known key but was signed by another.
        let mut relabelled = other.sign("acme", 2, "bbbb", 10);
        relabelled.key_id = cp.key_id.clone();
        let e = check(&records, &[relabelled], &[s.public(), other.public()]).unwrap_err();
        assert!(e.reason.contains("not signed by"), "{e}");

        let mut forged = cp.clone();
        forged.hash = "cccc".into();
        assert!(
            !signed_by(&forged, &s.public()),
            "the hash is what is signed"
        );
    }

    #[test]
    fn checkpoints_signed_before_a_key_rotation_check_with_the_previous_key() {
        let old = signer();
        let new = Signer::from_base64(&B64.encode([9u8; 32])).unwrap_or_else(|e| panic!("{e}"));
        let records = [record(1, "aaaa"), record(2, "bbbb")];
        let checkpoints = [
            old.sign("acme", 1, "aaaa", 10),
            new.sign("acme", 2, "bbbb", 20),
        ];
        assert_eq!(
            check(&records, &checkpoints, &[new.public(), old.public()]),
            Ok(2)
        );
        let e = check(&records, &checkpoints, &[new.public()]).unwrap_err();
        assert_eq!(e.seq, 1, "the previous key's checkpoint is not skipped");
    }

    #[test]
    fn a_bad_key_is_refused_with_why() {
        assert!(Signer::from_base64("not base64!").is_err());
        let short = Signer::from_base64(&B64.encode([1u8; 16])).unwrap_err();
        assert!(short.contains("32 bytes"), "{short}");
        let public = public_key_from_base64(&B64.encode([1u8; 31])).unwrap_err();
        assert!(public.contains("32 bytes"), "{public}");
        let roundtrip = public_key_from_base64(&B64.encode(signer().public().as_bytes()));
        assert_eq!(roundtrip, Ok(signer().public()));
    }
}
