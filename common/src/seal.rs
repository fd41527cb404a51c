//! AES-256-GCM sealing of secrets. The associated data binds a sealed value to where it
//! belongs (tenant, connector, header), so a ciphertext copied elsewhere fails to open.
//! Each sealed value names the key that sealed it by a short fingerprint, so a keyring can
//! hold retired keys while values are re-sealed under a new primary key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + FINGERPRINT_LEN + NONCE_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("key must be 32 bytes encoded as base64: {0}")]
    BadKey(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was made with a key this keyring does not hold")]
    UnknownKey,
    #[error("sealed value does not open: wrong key or it belongs elsewhere")]
    Forged,
}

/// A 256-bit key. Zeroed on drop; its `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses standard or URL-safe base64 (padding optional) of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SealError> {
        let s = s.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
            .map_err(|e| SealError::BadKey(e.to_string()))?;
        let decoded = Zeroizing::new(decoded);
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey(format!("decoded to {} bytes", decoded.len())))?;
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0))
    }

    /// A key for one tenant only (HKDF-SHA256 of this key, salted by purpose, with the
    /// tenant's slug as info): whoever holds it opens that tenant's values and no other's,
    /// and cannot get back to this key.
    pub fn for_tenant(&self, tenant: &str) -> SecretKey {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"switchyard/tenant-policy-key/v1"), &self.0);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160: expanding cannot fail.
        let _ = hk.expand(tenant.as_bytes(), &mut out);
        let key = SecretKey(out);
        out.zeroize();
        key
    }

    /// A digest of `parts` keyed by this key, for `purpose`: equal wherever the key is, and
    /// telling nothing about low-entropy parts (secrets) to whoever lacks the key. Parts are
    /// length-prefixed, as in `associated_data`.
    pub fn keyed_digest(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"switchyard/keyed-digest/v1"), &self.0);
        let mut info = associated_data(purpose, &[]);
        for p in parts {
            info.extend_from_slice(&(p.len() as u64).to_be_bytes());
            info.extend_from_slice(p);
        }
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8160: expanding cannot fail.
        let _ = hk.expand(&info, &mut out);
        info.zeroize();
        out
    }

    fn fingerprint(&self) -> [u8; FINGERPRINT_LEN] {
        let digest = Sha256::new()
            .chain_update(b"switchyard key fingerprint\0")
            .chain_update(self.0)
            .finalize();
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        out
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(fingerprint {:02x?})", self.fingerprint())
    }
}

/// Builds associated data from a purpose and the parts a value is bound to. Parts are
/// length-prefixed, so ("ab", "c") and ("a", "bc") differ.
pub fn associated_data(purpose: &str, parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for part in std::iter::once(purpose).chain(parts.iter().copied()) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Associated data of a connector header value at rest, under the master key: bound to the
/// tenant's and connector's internal ids and the header name.
pub fn stored_header_aad(tenant_id: &str, connector_id: &str, header: &str) -> Vec<u8> {
    associated_data(
        "switchyard/stored-header/v1",
        &[tenant_id, connector_id, header],
    )
}

/// Associated data of a connector header value in a published policy, under the policy
/// key: bound to the tenant slug, connector name and header name.
pub fn policy_header_aad(tenant: &str, connector: &str, header: &str) -> Vec<u8> {
    associated_data("switchyard/policy-header/v1", &[tenant, connector, header])
}

/// A primary key that seals and any number of retired keys that still open.
#[derive(Debug, Clone)]
pub struct Keyring {
    primary: SecretKey,
    retired: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(primary: SecretKey) -> Self {
        Self {
            primary,
            retired: Vec::new(),
        }
    }

    pub fn with_retired(mut self, keys: impl IntoIterator<Item = SecretKey>) -> Self {
        self.retired.extend(keys);
        self
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let cipher = Aes256Gcm::new((&self.primary.0).into());
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&self.primary.fingerprint());
        out.extend_from_slice(&nonce);
        // Encryption with a 32-byte key and 12-byte nonce cannot fail for inputs this size.
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let fingerprint = &sealed[1..1 + FINGERPRINT_LEN];
        let key = std::iter::once(&self.primary)
            .chain(self.retired.iter())
            .find(|k| k.fingerprint() == fingerprint)
            .ok_or(SealError::UnknownKey)?;
        let nonce = &sealed[1 + FINGERPRINT_LEN..HEADER_LEN];
        let cipher = Aes256Gcm::new((&key.0).into());
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Forged)
    }

    /// The key that seals.
    pub fn primary(&self) -> &SecretKey {
        &self.primary
    }

    /// The keyring of one tenant: every key derived for it (see `SecretKey::for_tenant`).
    pub fn for_tenant(&self, tenant: &str) -> Keyring {
        Keyring {
            primary: self.primary.for_tenant(tenant),
            retired: self.retired.iter().map(|k| k.for_tenant(tenant)).collect(),
        }
    }

    /// This keyring and the keys derived from it for `tenant`: opens what either sealed.
    pub fn with_tenant(&self, tenant: &str) -> Keyring {
        let derived = self.for_tenant(tenant);
        let mut ring = self.clone();
        ring.retired.push(derived.primary);
        ring.retired.extend(derived.retired);
        ring
    }

    /// Names the primary key without revealing it: its fingerprint in hex.
    pub fn primary_id(&self) -> String {
        self.primary
            .fingerprint()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `sealed` was made with a retired key and should be re-sealed.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        sealed.get(1..1 + FINGERPRINT_LEN) != Some(&self.primary.fingerprint()[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_digests_depend_on_the_key_the_purpose_and_every_part() {
        let (k, other) = (SecretKey::generate(), SecretKey::generate());
        let d = k.keyed_digest("p", &[b"ab", b"c"]);
        assert_eq!(d, k.keyed_digest("p", &[b"ab", b"c"]));
        assert_ne!(d, other.keyed_digest("p", &[b"ab", b"c"]));
        assert_ne!(d, k.keyed_digest("q", &[b"ab", b"c"]));
        assert_ne!(d, k.keyed_digest("p", &[b"a", b"bc"]));
        assert_ne!(d, k.keyed_digest("p", &[b"ab", b"d"]));
    }

    #[test]
    fn a_tenant_key_opens_only_its_tenant() {
        let base = Keyring::new(SecretKey::generate());
        let aad = associated_data("test", &["acme", "c1"]);
        let sealed = base.for_tenant("acme").seal(&aad, b"v");
        assert!(base.for_tenant("acme").open(&aad, &sealed).is_ok());
        assert_eq!(
            base.for_tenant("other").open(&aad, &sealed).unwrap_err(),
            SealError::UnknownKey
        );
        assert!(
            base.open(&aad, &sealed).is_err(),
            "the base key alone does not open it"
        );
        assert!(base.with_tenant("acme").open(&aad, &sealed).is_ok());
        // Derivation is stable and differs per tenant.
        assert_eq!(
            base.for_tenant("acme").primary_id(),
            base.for_tenant("acme").primary_id()
        );
        assert_ne!(
            base.for_tenant("acme").primary_id(),
            base.for_tenant("other").primary_id()
        );
        let base_only = base.for_tenant("acme").seal(&aad, b"w");
        assert!(base.for_tenant("other").open(&aad, &base_only).is_err());
    }

    #[test]
    fn round_trip() {
        let ring = Keyring::new(SecretKey::generate());
        let aad = associated_data("test", &["t1", "c1"]);
        let sealed = ring.seal(&aad, b"hunter2");
        assert_eq!(&ring.open(&aad, &sealed).unwrap()[..], b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn other_associated_data_fails() {
        let ring = Keyring::new(SecretKey::generate());
        let sealed = ring.seal(&associated_data("test", &["t1", "c1"]), b"v");
        assert_eq!(
            ring.open(&associated_data("test", &["t1", "c2"]), &sealed),
            Err(SealError::Forged)
        );
        assert_eq!(
            ring.open(&associated_data("test", &["t1c", "1"]), &sealed),
            Err(SealError::Forged)
        );
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let ring = Keyring::new(SecretKey::generate());
        let aad = associated_data("test", &[]);
        let mut sealed = ring.seal(&aad, b"value");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(ring.open(&aad, &sealed), Err(SealError::Forged));
        let other = Keyring::new(SecretKey::generate());
        assert_eq!(
            other.open(&aad, &ring.seal(&aad, b"x")),
            Err(SealError::UnknownKey)
        );
        assert_eq!(ring.open(&aad, b"short"), Err(SealError::Malformed));
    }

    #[test]
    fn retired_keys_still_open() {
        let old = SecretKey::generate();
        let old_ring = Keyring::new(old.clone());
        let aad = associated_data("test", &[]);
        let sealed = old_ring.seal(&aad, b"v");
        let new_ring = Keyring::new(SecretKey::generate()).with_retired([old]);
        assert!(new_ring.needs_reseal(&sealed));
        assert_eq!(&new_ring.open(&aad, &sealed).unwrap()[..], b"v");
        assert!(!new_ring.needs_reseal(&new_ring.seal(&aad, b"v")));
    }

    #[test]
    fn key_parsing() {
        let key = SecretKey::generate();
        let parsed = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(parsed.fingerprint(), key.fingerprint());
        assert!(matches!(
            SecretKey::from_base64("c2hvcnQ="),
            Err(SealError::BadKey(_))
        ));
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
    }
}
