//! API keys `sy_<id>_<secret>`: the id is public and names the key, the secret carries
//! 190 random bits and is stored only as an argon2id verifier.

use crate::ids::{KEY_ID_LEN, KeyId};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::Rng;
use zeroize::Zeroizing;

const PREFIX: &str = "sy_";
const SECRET_LEN: usize = 32;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A freshly generated key. The full credential exists only here and in the response that
/// hands it to the operator.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: KeyId,
    /// The whole credential, `sy_<id>_<secret>`.
    pub credential: Zeroizing<String>,
    /// argon2id PHC string of the secret part.
    pub verifier: String,
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A new random key id.
pub fn generate_key_id() -> KeyId {
    // The alphabet and length match KeyId's rules, so parsing cannot fail.
    KeyId::parse(&random_string(BASE36, KEY_ID_LEN)).unwrap_or_else(|_| unreachable!())
}

/// Generates a key and its verifier. Slow on purpose (argon2id): run off the async runtime.
pub fn generate() -> Result<NewApiKey, argon2::password_hash::Error> {
    let id = generate_key_id();
    let secret = Zeroizing::new(random_string(BASE62, SECRET_LEN));
    let verifier = hash_secret(&secret)?;
    let credential = Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str()));
    Ok(NewApiKey {
        id,
        credential,
        verifier,
    })
}

/// The displayable public part of a key: `sy_<id>_`.
pub fn display_prefix(id: &KeyId) -> String {
    format!("{PREFIX}{id}_")
}

/// Splits a presented credential into its key id and secret, or `None` if it is not shaped
/// like a Switchyard key.
pub fn parse(credential: &str) -> Option<(KeyId, &str)> {
    let rest = credential.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((KeyId::parse(id).ok()?, secret))
}

/// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
pub fn hash_secret(secret: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(secret.as_bytes())?
        .to_string())
}

/// Checks a secret against a verifier. A malformed verifier never matches.
pub fn verify_secret(secret: &str, verifier: &str) -> bool {
    Argon2::default()
        .verify_password(secret.as_bytes(), verifier)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = generate().unwrap();
        let (id, secret) = parse(&key.credential).unwrap();
        assert_eq!(id, key.id);
        assert!(verify_secret(secret, &key.verifier));
        assert!(!verify_secret(&"A".repeat(SECRET_LEN), &key.verifier));
        assert!(key.verifier.starts_with("$argon2id$"));
        assert!(!key.verifier.contains(secret));
    }

    #[test]
    fn malformed_credentials_do_not_parse() {
        let id = "abcdefghijkl";
        let secret = "a".repeat(SECRET_LEN);
        assert!(parse(&format!("sy_{id}_{secret}")).is_some());
        for bad in [
            String::new(),
            format!("sk_{id}_{secret}"),
            format!("sy_{id}{secret}"),
            format!("sy_{id}_{secret}x"),
            format!("sy_{id}_{}", "a".repeat(SECRET_LEN - 1)),
            format!("sy_ABCDEFGHIJKL_{secret}"),
            format!("sy_{id}_{}!", "a".repeat(SECRET_LEN - 1)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn malformed_verifier_never_matches() {
        assert!(!verify_secret("x", "not a phc string"));
    }
}
