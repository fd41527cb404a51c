//! A tenant's identity settings in requests and answers: validated, naming the field.

use super::*;

const MAX_URL_LEN: usize = 512;
const MAX_CLAIM_LEN: usize = 64;
const MAX_VALUE_LEN: usize = 256;
const MAX_ROLES: usize = 64;
const MAX_CLIENT_ID_LEN: usize = 256;
const MAX_SCOPES: usize = 8;
const MAX_SCOPE_LEN: usize = 64;
pub(super) const ACCESS_TOKEN_SECONDS: std::ops::RangeInclusive<u32> = 60..=86_400;
const REFRESH_TOKEN_SECONDS: std::ops::RangeInclusive<u32> = 3_600..=7_776_000;

fn role_pb(role: Role) -> pb::ApiKeyRole {
    match role {
        Role::Viewer => pb::ApiKeyRole::Viewer,
        Role::Editor => pb::ApiKeyRole::Editor,
        Role::Admin => pb::ApiKeyRole::Admin,
    }
}

pub(super) fn identity_pb(i: &IdentitySettings) -> pb::IdentitySettings {
    pb::IdentitySettings {
        api_keys_disabled: i.api_keys_disabled,
        provider: i.provider.as_ref().map(|p| pb::IdentityProvider {
            issuer: p.issuer.clone(),
            audience: p.audience.clone(),
            role_claim: p.role_claim.clone(),
            roles: p
                .roles
                .iter()
                .map(|m| pb::RoleMapping {
                    value: m.value.clone(),
                    role: role_pb(m.role) as i32,
                })
                .collect(),
            client_id: p.client_id.clone(),
            sign_in_scopes: p.sign_in_scopes.clone(),
        }),
        access_token_seconds: i.access_token_seconds,
        refresh_token_seconds: i.refresh_token_seconds,
    }
}

/// The settings `i` gives, checked.
pub(super) fn identity_settings(i: &pb::IdentitySettings) -> Result<IdentitySettings> {
    let provider = i.provider.as_ref().map(provider).transpose()?;
    let lifetime = |field: &str, value: u32, range: std::ops::RangeInclusive<u32>| {
        if value == 0 || range.contains(&value) {
            Ok(value)
        } else {
            Err(Error::invalid(
                format!("identity.{field}"),
                format!(
                    "must be 0 (the default) or {} to {} seconds",
                    range.start(),
                    range.end()
                ),
            ))
        }
    };
    Ok(IdentitySettings {
        api_keys_disabled: i.api_keys_disabled,
        provider,
        access_token_seconds: lifetime(
            "access_token_seconds",
            i.access_token_seconds,
            ACCESS_TOKEN_SECONDS,
        )?,
        refresh_token_seconds: lifetime(
            "refresh_token_seconds",
            i.refresh_token_seconds,
            REFRESH_TOKEN_SECONDS,
        )?,
        revoked_grants: Vec::new(),
        signing_keys_not_before: 0,
    })
}

fn provider(p: &pb::IdentityProvider) -> Result<IdentityProvider> {
    let issuer = issuer(&p.issuer)?;
    if p.audience.len() > MAX_URL_LEN || p.audience.chars().any(char::is_control) {
        return Err(Error::invalid(
            "identity.provider.audience",
            format!("at most {MAX_URL_LEN} printable characters"),
        ));
    }
    let role_claim = p.role_claim.trim();
    if role_claim.len() > MAX_CLAIM_LEN || role_claim.chars().any(char::is_control) {
        return Err(Error::invalid(
            "identity.provider.role_claim",
            format!("at most {MAX_CLAIM_LEN} printable characters"),
        ));
    }
    if p.roles.len() > MAX_ROLES {
        return Err(Error::invalid(
            "identity.provider.roles",
            format!("at most {MAX_ROLES} mappings"),
        ));
    }
    let mut roles: Vec<RoleMapping> = Vec::with_capacity(p.roles.len());
    for (n, m) in p.roles.iter().enumerate() {
        let field = |f: &str| format!("identity.provider.roles[{n}].{f}");
        if m.value.is_empty()
            || m.value.len() > MAX_VALUE_LEN
            || m.value.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                field("value"),
                format!("must be 1 to {MAX_VALUE_LEN} printable characters"),
            ));
        }
        if roles.iter().any(|r| r.value == m.value) {
            return Err(Error::invalid(field("value"), "already mapped"));
        }
        let role = match pb::ApiKeyRole::try_from(m.role) {
            Ok(pb::ApiKeyRole::Viewer) => Role::Viewer,
            Ok(pb::ApiKeyRole::Editor) => Role::Editor,
            Ok(pb::ApiKeyRole::Admin) => Role::Admin,
            Ok(pb::ApiKeyRole::Unspecified) | Err(_) => {
                return Err(Error::invalid(
                    field("role"),
                    "must be viewer, editor or admin",
                ));
            }
        };
        roles.push(RoleMapping {
            value: m.value.clone(),
            role,
        });
    }
    Ok(IdentityProvider {
        issuer,
        audience: p.audience.clone(),
        role_claim: if role_claim.is_empty() {
            "roles".to_owned()
        } else {
            role_claim.to_owned()
        },
        roles,
        client_id: client_id(&p.client_id)?,
        sign_in_scopes: sign_in_scopes(&p.sign_in_scopes)?,
    })
}

fn client_id(raw: &str) -> Result<String> {
    let id = raw.trim();
    if id.len() > MAX_CLIENT_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "identity.provider.client_id",
            format!("at most {MAX_CLIENT_ID_LEN} printable characters"),
        ));
    }
    Ok(id.to_owned())
}

/// Scopes as a request carries them, space-separated: so each is a token of its own.
fn sign_in_scopes(scopes: &[String]) -> Result<Vec<String>> {
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            "identity.provider.sign_in_scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(scopes.len());
    for (n, s) in scopes.iter().enumerate() {
        let field = format!("identity.provider.sign_in_scopes[{n}]");
        let fits = (1..=MAX_SCOPE_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
        if !fits {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_SCOPE_LEN} characters of A-Z a-z 0-9 and _.:/-"),
            ));
        }
        if s == "openid" || kept.contains(s) {
            return Err(Error::invalid(field, "already asked for"));
        }
        kept.push(s.clone());
    }
    Ok(kept)
}

/// An issuer URL as tokens carry it: https (plain http only on a loopback address), with
/// no credentials, query or fragment. Kept exactly as given, since `iss` must match it.
fn issuer(raw: &str) -> Result<String> {
    let field = "identity.provider.issuer";
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(Error::invalid(
            field,
            format!("must be a URL of 1 to {MAX_URL_LEN} characters"),
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| Error::invalid(field, format!("not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::invalid(
                field,
                "must be https (plain http only on a loopback address)",
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(field, "must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(field, "must have no query or fragment"));
    }
    Ok(raw.to_owned())
}
