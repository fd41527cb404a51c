//! Names clients see: `{prefix}__{name}` within `[A-Za-z0-9_-]{1,64}`, because model APIs
//! reject anything else. A name that does not fit is cleaned and shortened
//! deterministically with a hash suffix of the original; a name that two connectors would
//! both expose is hidden on both and reported, never silently shadowed.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const MAX_LEN: usize = 64;
const HASH_LEN: usize = 8;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The name clients see for upstream `name` under `prefix` (empty: no prefix).
pub fn exposed(prefix: &str, name: &str) -> String {
    let raw = if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}__{name}")
    };
    if !raw.is_empty() && raw.len() <= MAX_LEN && raw.chars().all(allowed) {
        return raw;
    }
    let hash: String = Sha256::digest(raw.as_bytes())
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let head: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(MAX_LEN - HASH_LEN - 1)
        .collect();
    format!("{head}_{hash}")
}

/// Where an exposed name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub connector: String,
    pub upstream: String,
}

/// Maps exposed names to connectors, dropping every name claimed more than once.
#[derive(Debug, Default)]
pub struct NameMap {
    targets: HashMap<String, Target>,
    collided: Vec<String>,
}

impl NameMap {
    /// Builds the map from `(connector, prefix, upstream names)`; returns it with the
    /// exposed names in input order (collisions removed).
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str, Vec<String>)>,
    ) -> (Self, Vec<(String, Target)>) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut ordered = Vec::new();
        for (connector, prefix, names) in entries {
            for upstream in names {
                let name = exposed(prefix, &upstream);
                *seen.entry(name.clone()).or_default() += 1;
                ordered.push((
                    name,
                    Target {
                        connector: connector.to_owned(),
                        upstream,
                    },
                ));
            }
        }
        let mut map = NameMap::default();
        ordered.retain(|(name, _)| seen.get(name).copied() == Some(1));
        for (name, count) in seen {
            if count > 1 {
                map.collided.push(name);
            }
        }
        map.collided.sort();
        for (name, target) in &ordered {
            map.targets.insert(name.clone(), target.clone());
        }
        (map, ordered)
    }

    pub fn get(&self, exposed: &str) -> Option<&Target> {
        self.targets.get(exposed)
    }

    /// Names hidden because more than one connector would expose them.
    pub fn collisions(&self) -> &[String] {
        &self.collided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_prefixed() {
        assert_eq!(exposed("github", "get_issue"), "github__get_issue");
        assert_eq!(exposed("", "get_issue"), "get_issue");
    }

    #[test]
    fn bad_or_long_names_are_shortened_deterministically() {
        let long = "x".repeat(100);
        let a = exposed("p", &long);
        assert_eq!(a.len(), MAX_LEN);
        assert_eq!(a, exposed("p", &long));
        assert_ne!(a, exposed("p", &"x".repeat(101)));
        let dotted = exposed("p", "a.b");
        assert!(dotted.chars().all(allowed), "{dotted}");
        assert_ne!(dotted, exposed("p", "a_b"), "cleaning must not merge names");
        assert!(exposed("", "").len() > 1);
    }

    #[test]
    fn collisions_are_hidden_on_both_sides() {
        let (map, listed) = NameMap::build([
            ("a", "", vec!["echo".to_owned(), "only_a".to_owned()]),
            ("b", "", vec!["echo".to_owned()]),
        ]);
        assert_eq!(map.collisions(), ["echo"]);
        assert!(map.get("echo").is_none());
        assert_eq!(map.get("only_a").unwrap().connector, "a");
        assert_eq!(listed.len(), 1);
    }
}
