//! The scopes of a tenant's access tokens, and the roles they stand for: `tools:read`
//! lists everything and calls the tools that change nothing (the viewer role);
//! `tools:write` calls the others too (the editor role). A key's role decides which of them
//! a sign-in with it can be granted.

use crate::policy::Role;

pub const READ: &str = "tools:read";
pub const WRITE: &str = "tools:write";
/// Every scope, as metadata lists them.
pub const ALL: [&str; 2] = [READ, WRITE];

/// Why requested scopes cannot be granted.
#[derive(Debug, PartialEq, Eq)]
pub struct Unknown(pub String);

/// The scopes granted for `requested` (space-separated; empty: all the key's role allows)
/// to a key of role `role`: those requested that the role allows. A scope this server does
/// not know is refused, naming it.
pub fn grant(requested: &str, role: Role) -> Result<String, Unknown> {
    let allowed: &[&str] = match role {
        Role::Viewer => &[READ],
        Role::Editor | Role::Admin => &ALL,
        Role::Unspecified => &[],
    };
    let mut granted = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !ALL.contains(&scope) {
            return Err(Unknown(scope.chars().take(64).collect()));
        }
        if allowed.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    if requested.trim().is_empty() {
        granted = allowed.to_vec();
    }
    // Writing includes reading.
    if granted.contains(&WRITE) && !granted.contains(&READ) {
        granted.insert(0, READ);
    }
    Ok(granted.join(" "))
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
    fn scopes_stand_for_roles() {
        assert_eq!(role("tools:read tools:write"), Some(Role::Editor));
        assert_eq!(role("tools:read"), Some(Role::Viewer));
        assert_eq!(role(""), None);
        assert_eq!(role("tools:readx"), None);
    }
}
