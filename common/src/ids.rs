//! Identifiers as newtypes whose constructors reject bad input, so the rest of the code
//! cannot hold an invalid slug, connector name or key id.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid identifier, phrased to be shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

macro_rules! string_newtype {
    ($name:ident, $check:path) => {
        impl $name {
            /// Parses `s`, or says what is wrong with it.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                $check(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// A tenant's slug: a DNS label of 1-40 characters `[a-z0-9-]` that starts with a letter
/// and does not end with `-`. It appears in `/t/{slug}/mcp` and in namespace names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

fn check_slug(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > 40 {
        return Err(IdError(format!(
            "must be 1-40 characters long, got {}",
            s.len()
        )));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(IdError("must start with a lowercase letter".into()));
    }
    if s.ends_with('-') {
        return Err(IdError("must not end with '-'".into()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(IdError(format!(
            "may contain only a-z, 0-9 and '-', found {c:?}"
        )));
    }
    Ok(())
}

string_newtype!(TenantSlug, check_slug);

/// A connector's name within its tenant: 1-24 characters `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectorName(String);

fn check_connector_name(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > 24 {
        return Err(IdError(format!(
            "must be 1-24 characters long, got {}",
            s.len()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(IdError(format!(
            "may contain only a-z, 0-9 and '-', found {c:?}"
        )));
    }
    Ok(())
}

string_newtype!(ConnectorName, check_connector_name);

/// The public id of an API key: 12 characters `[a-z0-9]`, the `<id>` in `sy_<id>_<secret>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// Length of a key id.
pub const KEY_ID_LEN: usize = 12;

fn check_key_id(s: &str) -> Result<(), IdError> {
    if s.len() != KEY_ID_LEN
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(IdError(format!(
            "must be {KEY_ID_LEN} characters of a-z and 0-9"
        )));
    }
    Ok(())
}

string_newtype!(KeyId, check_key_id);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "acme", "acme-corp-2", &"a".repeat(40)] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1acme",
            "-acme",
            "acme-",
            "Acme",
            "ac_me",
            "acmé",
            &"a".repeat(41),
            "ac me",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn connector_names() {
        for ok in ["a", "github", "9lives", "x-y", &"a".repeat(24)] {
            assert!(ConnectorName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Git", "a_b", "a.b", &"a".repeat(25)] {
            assert!(ConnectorName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids() {
        assert!(KeyId::parse("abcdef012345").is_ok());
        for bad in [
            "abcdef01234",
            "abcdef0123456",
            "ABCDEF012345",
            "abcdef_12345",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialization_validates() {
        let ok: TenantSlug = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        let err = serde_json::from_str::<TenantSlug>("\"Acme\"").unwrap_err();
        assert!(err.to_string().contains("lowercase"), "{err}");
    }
}
