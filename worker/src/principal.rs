//! Who is calling: the tenant and the credential a request was authenticated with. It is
//! put in the request once authentication succeeds, binds the sessions the caller opens,
//! and names the owner of calls held for the caller's input. A session id is never a
//! credential: a request on a session must come from the principal that opened it.

use crate::policy::Role;
use serde::{Deserialize, Serialize};
pub use switchyard_common::ids::{KeyId, TenantSlug};

/// What a request was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// An API key of the tenant, by its public id.
    ApiKey(KeyId),
    /// An access token of the tenant's identity provider, by its subject.
    Token(String),
}

/// The authenticated caller of a request. Two principals are the same caller when tenant
/// and credential are: a token's role may change from one token to the next (the user's
/// groups changed) without the caller's sessions changing hands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct Principal {
    pub tenant: TenantSlug,
    pub credential: Credential,
    /// The role a token's claims give (a key's role is in the tenant's policy).
    pub token_role: Option<Role>,
    /// A token of a user signed in at the tenant's provider whose scopes give less than
    /// the user's role: signing in again could give it more.
    pub user_capped: bool,
    /// The connectors a token's scopes limit it to; `None`: every connector.
    pub connectors: Option<std::sync::Arc<[String]>>,
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        self.tenant == other.tenant && self.credential == other.credential
    }
}

impl Eq for Principal {}

impl std::hash::Hash for Principal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tenant.hash(state);
        self.credential.hash(state);
    }
}

/// Longest token subject kept; a longer one is refused before it is used.
pub const MAX_SUBJECT_LEN: usize = 255;

impl Principal {
    pub fn api_key(tenant: TenantSlug, key: KeyId) -> Self {
        Self {
            tenant,
            credential: Credential::ApiKey(key),
            token_role: None,
            user_capped: false,
            connectors: None,
        }
    }

    pub fn token(tenant: TenantSlug, subject: String, role: Role) -> Self {
        Self {
            tenant,
            credential: Credential::Token(subject),
            token_role: Some(role),
            user_capped: false,
            connectors: None,
        }
    }

    /// A user signed in at the tenant's provider through the built-in authorization
    /// server: `role` from the provider's claims, capped by `scope_role` (the scopes
    /// granted).
    pub fn signed_in(tenant: TenantSlug, subject: String, role: Role, scope_role: Role) -> Self {
        Self {
            tenant,
            credential: Credential::Token(subject),
            token_role: Some(role.min(scope_role)),
            user_capped: below_grantable(scope_role, role),
            connectors: None,
        }
    }

    /// A caller signed in with API key `key` through the built-in authorization server:
    /// the key, its role capped by `scope_role` (the scopes granted).
    pub fn granted(tenant: TenantSlug, key: KeyId, scope_role: Role) -> Self {
        Self {
            tenant,
            credential: Credential::ApiKey(key),
            token_role: Some(scope_role),
            user_capped: false,
            connectors: None,
        }
    }

    /// Whether the caller is a token granted with a key whose role under `tenant` is more
    /// than the token's scopes allow: signing in again could give it more.
    pub fn scope_capped(&self, tenant: &crate::policy::Tenant) -> bool {
        match (&self.credential, self.token_role) {
            (Credential::ApiKey(id), Some(cap)) => tenant
                .keys
                .get(id)
                .is_some_and(|k| below_grantable(cap, k.role)),
            (Credential::Token(_), _) => self.user_capped,
            (Credential::ApiKey(_), None) => false,
        }
    }

    /// The caller, limited to `connectors` (`None`: every connector).
    #[must_use]
    pub fn limited_to(mut self, connectors: Option<std::sync::Arc<[String]>>) -> Self {
        self.connectors = connectors;
        self
    }

    /// Whether the caller may use connector `name`.
    pub fn may_use(&self, name: &str) -> bool {
        self.connectors
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == name))
    }

    /// Whether the caller came with an access token rather than an API key itself.
    pub fn by_token(&self) -> bool {
        self.token_role.is_some()
    }

    /// The API key, for usage records and a key's own rate limit.
    pub fn key_id(&self) -> Option<&KeyId> {
        match &self.credential {
            Credential::ApiKey(id) => Some(id),
            Credential::Token(_) => None,
        }
    }

    /// A token's subject.
    pub fn subject(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey(_) => None,
            Credential::Token(s) => Some(s),
        }
    }

    /// The caller's role under `tenant`'s current policy: a key's from the policy (none
    /// once it is gone), a token's from its claims.
    pub fn role(&self, tenant: &crate::policy::Tenant) -> Option<Role> {
        match &self.credential {
            Credential::ApiKey(id) => {
                let key = tenant.keys.get(id)?.role;
                // Granted scopes cap the key's role (the enum orders roles by power).
                Some(match self.token_role {
                    Some(cap) if (cap as i32) < (key as i32) => cap,
                    _ => key,
                })
            }
            Credential::Token(_) => self.token_role,
        }
    }
}

/// Whether `cap` is less than scopes could grant a caller of `role`: scopes give at most
/// the editor role, so an admin's full grant is not capped.
fn below_grantable(cap: Role, role: Role) -> bool {
    (cap as i32) < (role as i32).min(Role::Editor as i32)
}

/// How a principal is kept in the shared session store: the form workers have always
/// written for keys (so sessions survive a rolling upgrade), a subject for tokens.
#[derive(Serialize, Deserialize)]
struct Stored {
    tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

impl TryFrom<Stored> for Principal {
    type Error = switchyard_common::ids::IdError;

    fn try_from(s: Stored) -> Result<Self, Self::Error> {
        let tenant = TenantSlug::parse(&s.tenant)?;
        match (s.key_id, s.subject) {
            (Some(key), None) => Ok(Self::api_key(tenant, KeyId::parse(&key)?)),
            // The role is not kept: each request's token gives it again.
            (None, Some(subject)) if !subject.is_empty() && subject.len() <= MAX_SUBJECT_LEN => {
                Ok(Self {
                    tenant,
                    credential: Credential::Token(subject),
                    token_role: None,
                    user_capped: false,
                    connectors: None,
                })
            }
            _ => Err(switchyard_common::ids::IdError(
                "a stored principal names one key id or one subject".into(),
            )),
        }
    }
}

impl From<Principal> for Stored {
    fn from(p: Principal) -> Self {
        let (key_id, subject) = match p.credential {
            Credential::ApiKey(id) => (Some(id.to_string()), None),
            Credential::Token(s) => (None, Some(s)),
        };
        Self {
            tenant: p.tenant.to_string(),
            key_id,
            subject,
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
    fn a_signed_in_users_scopes_cap_their_role_and_say_when_more_could_be_had() {
        let tenant = crate::policy::Tenant::for_test("acme");
        let user = |role, scope| {
            Principal::signed_in(
                TenantSlug::parse("acme").unwrap(),
                "alice".into(),
                role,
                scope,
            )
        };
        let read_only_editor = user(Role::Editor, Role::Viewer);
        assert_eq!(read_only_editor.role(&tenant), Some(Role::Viewer));
        assert!(
            read_only_editor.scope_capped(&tenant),
            "signing in again gives more"
        );
        let read_only_viewer = user(Role::Viewer, Role::Viewer);
        assert!(!read_only_viewer.scope_capped(&tenant));
        // Scopes give at most the editor role: an admin with every scope is not capped.
        let admin = user(Role::Admin, Role::Editor);
        assert_eq!(admin.role(&tenant), Some(Role::Editor));
        assert!(!admin.scope_capped(&tenant));
        // A scope beyond the user's role gives no more than the role.
        assert_eq!(
            user(Role::Viewer, Role::Editor).role(&tenant),
            Some(Role::Viewer)
        );
    }

    #[test]
    fn a_stored_record_with_a_bad_id_does_not_load() {
        for bad in [
            serde_json::json!({"tenant": "Acme", "key_id": "abcdef123456"}),
            serde_json::json!({"tenant": "acme", "key_id": "short"}),
            serde_json::json!({"tenant": "acme"}),
            serde_json::json!({"tenant": "acme", "subject": ""}),
            serde_json::json!({"tenant": "acme", "key_id": "abcdef123456", "subject": "u"}),
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
        assert_eq!(p.key_id().map(KeyId::as_str), Some("abcdef123456"));
    }

    #[test]
    fn a_tokens_caller_is_its_subject_whatever_role_its_token_gives() {
        let acme = TenantSlug::parse("acme").unwrap();
        let admin = Principal::token(acme.clone(), "alice".into(), Role::Admin);
        let viewer = Principal::token(acme.clone(), "alice".into(), Role::Viewer);
        assert_eq!(admin, viewer, "the same caller, sessions and all");
        assert_ne!(admin, Principal::token(acme, "bob".into(), Role::Admin));
        assert_eq!(admin.subject(), Some("alice"));
        assert!(admin.key_id().is_none());
        let json = serde_json::to_value(&admin).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tenant": "acme", "subject": "alice"})
        );
        let back: Principal = serde_json::from_value(json).unwrap();
        assert_eq!(back, admin);
        assert_eq!(back.token_role, None, "a stored session keeps no role");
    }

    #[test]
    fn a_grant_is_capped_only_when_signing_in_again_could_give_more() {
        let mut tenant = crate::policy::Tenant::for_test("acme");
        let key = |id: &str, role| {
            let id = KeyId::parse(id).unwrap();
            let k = crate::policy::Key {
                verifier: String::new(),
                role,
                requests_per_second: 0,
                burst: 0,
                expires: None,
            };
            (id, k)
        };
        for (id, role) in [
            ("aaaaaaaaaaaa", Role::Admin),
            ("eeeeeeeeeeee", Role::Editor),
            ("vvvvvvvvvvvv", Role::Viewer),
        ] {
            let (id, k) = key(id, role);
            tenant.keys.insert(id, k);
        }
        let grant = |id: &str, scope| {
            Principal::granted(tenant.slug.clone(), KeyId::parse(id).unwrap(), scope)
        };
        // The scopes give at most the editor role: an admin key's full grant is whole.
        assert!(!grant("aaaaaaaaaaaa", Role::Editor).scope_capped(&tenant));
        assert!(grant("aaaaaaaaaaaa", Role::Viewer).scope_capped(&tenant));
        assert!(grant("eeeeeeeeeeee", Role::Viewer).scope_capped(&tenant));
        assert!(!grant("vvvvvvvvvvvv", Role::Viewer).scope_capped(&tenant));
        // A key used itself is never capped.
        let key_itself =
            Principal::api_key(tenant.slug.clone(), KeyId::parse("eeeeeeeeeeee").unwrap());
        assert!(!key_itself.scope_capped(&tenant));
        assert_eq!(
            grant("eeeeeeeeeeee", Role::Viewer).role(&tenant),
            Some(Role::Viewer)
        );
        assert_eq!(
            grant("vvvvvvvvvvvv", Role::Editor).role(&tenant),
            Some(Role::Viewer)
        );
    }
}
