//! The scopes of a tenant's access tokens, and the roles they stand for: `tools:read`
//! lists everything and calls the tools that change nothing (the viewer role);
//! `tools:write` calls the others too (the editor role). A key's role decides which of them
//! a sign-in with it can be granted. `connector:NAME` (any number of them) limits a token
//! to those connectors' tools, resources and prompts; without one, it may use them all.

use crate::policy::Role;

pub const READ: &str = "tools:read";
pub const WRITE: &str = "tools:write";
/// Every scope, as metadata lists them (connector scopes are the tenant's own: listing
/// them would tell anyone its connectors).
pub const ALL: [&str; 2] = [READ, WRITE];
/// The prefix of a scope that limits a token to one connector.
pub const CONNECTOR: &str = "connector:";
/// Connector scopes a token may carry at most.
const MAX_CONNECTORS: usize = 32;

/// Why requested scopes cannot be granted.
#[derive(Debug, PartialEq, Eq)]
pub struct Unknown(pub String);

/// The scopes granted for `requested` (space-separated) to a caller of role `role`: those
/// requested that the role allows (no `tools:` scope asked for: all the role allows),
/// and every connector scope asked for. A scope this server does not know is refused,
/// naming it.
pub fn grant(requested: &str, role: Role) -> Result<String, Unknown> {
    let allowed: &[&str] = match role {
        Role::Viewer => &[READ],
        Role::Editor | Role::Admin => &ALL,
        Role::Unspecified => &[],
    };
    let (mut granted, mut connectors, mut asked) = (Vec::new(), Vec::new(), false);
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if let Some(name) = scope.strip_prefix(CONNECTOR) {
            if switchyard_common::ids::ConnectorName::parse(name).is_err() {
                return Err(Unknown(scope.chars().take(64).collect()));
            }
            if !connectors.contains(&scope) {
                if connectors.len() == MAX_CONNECTORS {
                    return Err(Unknown(format!(
                        "{scope} (at most {MAX_CONNECTORS} connectors)"
                    )));
                }
                connectors.push(scope);
            }
            continue;
        }
        if !ALL.contains(&scope) {
            return Err(Unknown(scope.chars().take(64).collect()));
        }
        asked = true;
        if allowed.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    if !asked {
        granted = allowed.to_vec();
    }
    // Writing includes reading.
    if granted.contains(&WRITE) && !granted.contains(&READ) {
        granted.insert(0, READ);
    }
    // Connector scopes alone grant nothing.
    if granted.is_empty() {
        return Ok(String::new());
    }
    granted.extend(connectors);
    Ok(granted.join(" "))
}

/// The connectors `scope` (a granted scope string) limits a token to; `None`: all.
pub fn connectors(scope: &str) -> Option<std::sync::Arc<[String]>> {
    let named: Vec<String> = scope
        .split(' ')
        .filter_map(|s| s.strip_prefix(CONNECTOR))
        .map(str::to_owned)
        .collect();
    (!named.is_empty()).then(|| named.into())
}

/// The role `scope` (a granted scope string) stands for; `None` for none.
pub fn role(scope: &str) -> Option<Role> {
    let scopes: Vec<&str> = scope.split(' ').collect();
    if scopes.contains(&WRITE) {
        Some(Role::Editor)
    } else if scopes.contains(&READ) {
        Some(Role::Viewer)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_granted_what_it_asks_within_its_role() {
        assert_eq!(grant("", Role::Editor).unwrap(), "tools:read tools:write");
        assert_eq!(grant("", Role::Viewer).unwrap(), "tools:read");
        assert_eq!(grant("tools:write", Role::Viewer).unwrap(), "");
        assert_eq!(grant("tools:read", Role::Admin).unwrap(), "tools:read");
        assert_eq!(
            grant("tools:write tools:write", Role::Admin).unwrap(),
            "tools:read tools:write"
        );
        assert_eq!(
            grant("tools:read admin", Role::Admin),
            Err(Unknown("admin".into()))
        );
    }

    #[test]
    fn connector_scopes_are_kept_beside_what_the_role_allows() {
        assert_eq!(
            grant("connector:github", Role::Viewer).unwrap(),
            "tools:read connector:github"
        );
        assert_eq!(
            grant(
                "tools:write connector:a connector:b connector:a",
                Role::Editor
            )
            .unwrap(),
            "tools:read tools:write connector:a connector:b"
        );
        // A role that gets nothing gets no connector either.
        assert_eq!(grant("tools:write connector:a", Role::Viewer).unwrap(), "");
        for bad in ["connector:", "connector:Bad_Name", "connector:a b"] {
            assert!(grant(bad, Role::Admin).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("connector:c{i}")).collect();
        assert!(grant(&many.join(" "), Role::Admin).is_err(), "bounded");
        assert!(grant(&many[..32].join(" "), Role::Admin).is_ok());
        assert_eq!(connectors("tools:read"), None);
        let limited = connectors("tools:read connector:a connector:b").unwrap();
        assert_eq!(&*limited, ["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn scopes_stand_for_roles() {
        assert_eq!(role("tools:read tools:write"), Some(Role::Editor));
        assert_eq!(role("tools:read"), Some(Role::Viewer));
        assert_eq!(role(""), None);
        assert_eq!(role("tools:readx"), None);
    }
}
