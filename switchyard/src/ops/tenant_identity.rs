//! A tenant's identity settings on the command line.

use super::*;

#[derive(Debug, clap::Args)]
pub struct IdentityArgs {
    /// Refuse the tenant's API keys at its endpoint (true), or accept them (false, the
    /// default). The keys are kept either way.
    #[arg(long)]
    api_keys_disabled: Option<bool>,
    /// The tenant's OpenID Connect provider, as its tokens name it in `iss`.
    #[arg(long, conflicts_with = "no_idp")]
    idp_issuer: Option<String>,
    /// The `aud` the provider's access tokens carry, when it cannot mint them for the
    /// tenant's resource URL.
    #[arg(long, requires = "idp_issuer")]
    idp_audience: Option<String>,
    /// The claim holding the user's groups or roles [default: roles].
    #[arg(long, requires = "idp_issuer")]
    idp_role_claim: Option<String>,
    /// A claim value and the role it gives, as VALUE=viewer|editor|admin (repeat it;
    /// replaces the tenant's list).
    #[arg(long = "idp-role", value_parser = role_mapping, requires = "idp_issuer")]
    idp_roles: Vec<pb::RoleMapping>,
    /// The built-in authorization server's client at the provider: users of AI clients
    /// that sign in are sent to the provider, not asked for an API key (empty: asked for
    /// an API key again). Register https://HOST/t/TENANT/oauth/callback as its redirect URI.
    #[arg(long, requires = "idp_issuer")]
    idp_client_id: Option<String>,
    /// A scope to ask for at sign-in besides openid, e.g. groups (repeat it; replaces the
    /// tenant's list).
    #[arg(long = "idp-sign-in-scope", requires = "idp_client_id")]
    idp_sign_in_scopes: Vec<String>,
    /// Remove the tenant's identity provider.
    #[arg(long)]
    no_idp: bool,
    /// Lifetime of the access tokens issued for the tenant (0: the default, 3600).
    #[arg(long)]
    access_token_seconds: Option<u32>,
    /// Lifetime of the refresh tokens issued for the tenant (0: the default, 30 days).
    #[arg(long)]
    refresh_token_seconds: Option<u32>,
}

/// `VALUE=ROLE`, split at the last `=` (a claim value may hold one).
fn role_mapping(s: &str) -> Result<pb::RoleMapping, String> {
    let (value, role) = s
        .rsplit_once('=')
        .ok_or_else(|| "expected VALUE=viewer|editor|admin".to_owned())?;
    let role = match role {
        "viewer" => pb::ApiKeyRole::Viewer,
        "editor" => pb::ApiKeyRole::Editor,
        "admin" => pb::ApiKeyRole::Admin,
        other => return Err(format!("unknown role {other:?}: viewer, editor or admin")),
    };
    Ok(pb::RoleMapping {
        value: value.to_owned(),
        role: role as i32,
    })
}

impl IdentityArgs {
    fn given(&self) -> bool {
        self.api_keys_disabled.is_some()
            || self.idp_issuer.is_some()
            || self.no_idp
            || self.access_token_seconds.is_some()
            || self.refresh_token_seconds.is_some()
    }

    /// These flags applied over `current`; `None` when none was given.
    pub fn over(&self, current: Option<pb::IdentitySettings>) -> Option<pb::IdentitySettings> {
        if !self.given() {
            return None;
        }
        let mut settings = current.unwrap_or_default();
        if let Some(disabled) = self.api_keys_disabled {
            settings.api_keys_disabled = disabled;
        }
        if self.no_idp {
            settings.provider = None;
        }
        if let Some(issuer) = &self.idp_issuer {
            // A new issuer starts from a clean provider: the audience and roles of another
            // provider would mean something else.
            let same = settings
                .provider
                .as_ref()
                .is_some_and(|p| &p.issuer == issuer);
            let mut provider = if same {
                settings.provider.take().unwrap_or_default()
            } else {
                pb::IdentityProvider::default()
            };
            provider.issuer.clone_from(issuer);
            if let Some(audience) = &self.idp_audience {
                provider.audience.clone_from(audience);
            }
            if let Some(claim) = &self.idp_role_claim {
                provider.role_claim.clone_from(claim);
            }
            if !self.idp_roles.is_empty() {
                provider.roles.clone_from(&self.idp_roles);
            }
            if let Some(client_id) = &self.idp_client_id {
                provider.client_id.clone_from(client_id);
            }
            if !self.idp_sign_in_scopes.is_empty() {
                provider.sign_in_scopes.clone_from(&self.idp_sign_in_scopes);
            }
            settings.provider = Some(provider);
        }
        if let Some(s) = self.access_token_seconds {
            settings.access_token_seconds = s;
        }
        if let Some(s) = self.refresh_token_seconds {
            settings.refresh_token_seconds = s;
        }
        Some(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        identity: IdentityArgs,
    }

    fn args(list: &[&str]) -> Result<IdentityArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(list.iter().copied())).map(|c| c.identity)
    }

    #[test]
    fn flags_go_over_the_current_settings() {
        assert!(args(&[]).unwrap().over(None).is_none());
        let set = args(&[
            "--idp-issuer",
            "https://idp.example",
            "--idp-role",
            "eng=editor",
            "--idp-role",
            "a=b=viewer",
            "--idp-client-id",
            "switchyard",
            "--idp-sign-in-scope",
            "groups",
        ])
        .unwrap()
        .over(None)
        .unwrap();
        let p = set.provider.clone().unwrap();
        assert_eq!(p.issuer, "https://idp.example");
        assert_eq!(p.roles[1].value, "a=b");
        assert_eq!(p.roles[1].role, pb::ApiKeyRole::Viewer as i32);
        assert_eq!(p.client_id, "switchyard");
        assert_eq!(p.sign_in_scopes, ["groups"]);
        // The same issuer keeps its roles; turning keys off keeps the provider.
        let off = args(&["--api-keys-disabled", "true"])
            .unwrap()
            .over(Some(set.clone()))
            .unwrap();
        assert!(off.api_keys_disabled);
        assert_eq!(off.provider, set.provider);
        let again = args(&["--idp-issuer", "https://idp.example"])
            .unwrap()
            .over(Some(set.clone()))
            .unwrap();
        assert_eq!(again.provider.unwrap().roles.len(), 2);
        // Another issuer starts clean; --no-idp removes it.
        let other = args(&["--idp-issuer", "https://other.example"])
            .unwrap()
            .over(Some(set.clone()))
            .unwrap();
        assert!(other.provider.unwrap().roles.is_empty());
        let none = args(&["--no-idp"]).unwrap().over(Some(set)).unwrap();
        assert!(none.provider.is_none());
    }

    #[test]
    fn bad_flags_are_refused_by_name() {
        assert!(args(&["--idp-role", "eng=root", "--idp-issuer", "https://x"]).is_err());
        assert!(args(&["--idp-role", "eng", "--idp-issuer", "https://x"]).is_err());
        assert!(args(&["--idp-audience", "x"]).is_err(), "needs an issuer");
        assert!(args(&["--idp-issuer", "https://x", "--no-idp"]).is_err());
        assert!(args(&["--idp-client-id", "c"]).is_err(), "needs an issuer");
        let scope_alone = ["--idp-issuer", "https://x", "--idp-sign-in-scope", "groups"];
        assert!(args(&scope_alone).is_err(), "needs a client");
    }
}
