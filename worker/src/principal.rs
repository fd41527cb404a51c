//! Who is calling: the tenant and the credential a request was authenticated with. It is
//! put in the request once authentication succeeds, binds the sessions the caller opens,
//! and names the owner of calls held for the caller's input. A session id is never a
//! credential: a request on a session must come from the principal that opened it.

use serde::{Deserialize, Serialize};
pub use switchyard_common::ids::{KeyId, TenantSlug};

/// What a request was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// An API key of the tenant, by its public id.
    ApiKey(KeyId),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct Principal {
    pub tenant: TenantSlug,
    pub credential: Credential,
}

impl Principal {
    pub fn api_key(tenant: TenantSlug, key: KeyId) -> Self {
        Self {
            tenant,
            credential: Credential::ApiKey(key),
        }
    }

    /// The API key id, for usage records and rate limits.
    pub fn key_id(&self) -> &KeyId {
        match &self.credential {
            Credential::ApiKey(id) => id,
        }
    }
}

/// How a principal is kept in the shared session store (the form workers have always
/// written, so sessions survive a rolling upgrade).
#[derive(Serialize, Deserialize)]
struct Stored {
    tenant: String,
    key_id: String,
}

impl TryFrom<Stored> for Principal {
    type Error = switchyard_common::ids::IdError;

    fn try_from(s: Stored) -> Result<Self, Self::Error> {
        Ok(Self::api_key(
            TenantSlug::parse(&s.tenant)?,
            KeyId::parse(&s.key_id)?,
        ))
    }
}

impl From<Principal> for Stored {
    fn from(p: Principal) -> Self {
        let key_id = p.key_id().to_string();
        Self {
            tenant: p.tenant.to_string(),
            key_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, key: &str) -> Principal {
        Principal::api_key(
            TenantSlug::parse(tenant).unwrap(),
            KeyId::parse(key).unwrap(),
        )
    }

    #[test]
    fn kept_in_the_store_as_tenant_and_key_id() {
        let p = principal("acme", "abcdef123456");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tenant": "acme", "key_id": "abcdef123456"})
        );
        assert_eq!(serde_json::from_value::<Principal>(json).unwrap(), p);
    }

    #[test]
    fn a_stored_record_with_a_bad_id_does_not_load() {
        for bad in [
            serde_json::json!({"tenant": "Acme", "key_id": "abcdef123456"}),
            serde_json::json!({"tenant": "acme", "key_id": "short"}),
            serde_json::json!({"tenant": "acme"}),
        ] {
            assert!(
                serde_json::from_value::<Principal>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn principals_differ_by_tenant_and_by_key() {
        let p = principal("acme", "abcdef123456");
        assert_ne!(p, principal("other", "abcdef123456"));
        assert_ne!(p, principal("acme", "abcdef654321"));
        assert_eq!(p.key_id().as_str(), "abcdef123456");
    }
}
