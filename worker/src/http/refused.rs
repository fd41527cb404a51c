//! What happens to a request the gate refuses: its error, counted in a metric by reason,
//! and, for refusals a tenant's security officer needs to see, tallied for the audit trail
//! (see `refusals`). One classification decides both.

use super::App;
use crate::error::Error;
use crate::metrics::{Metrics, ReasonLabel};
use switchyard_bus::RefusalKind;

/// A refused request: what went wrong, and the id of the request it answers (`null` when
/// it is not known yet).
pub(super) struct Refused(pub Error, pub serde_json::Value);

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Self(e, serde_json::Value::Null)
    }
}

/// Who a refused request came from, as far as the gate got.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The key authenticated, or the key id a failed credential claimed.
    pub key: Option<switchyard_common::KeyId>,
    /// The subject of the access token authenticated.
    pub subject: Option<String>,
    /// Whether `key` authenticated.
    pub authenticated: bool,
    pub client: Option<std::net::IpAddr>,
}

/// What kind of refusal `e` is, and whether it goes on the audit trail: the worker's own
/// state (busy checking keys, draining, handing a tenant to its dedicated workers) is
/// counted but says nothing about the caller.
fn classify(e: &Error) -> Option<(RefusalKind, bool)> {
    Some(match e {
        Error::MissingCredential
        | Error::InvalidCredential
        | Error::ApiKeysDisabled
        | Error::InsufficientScope(_)
        | Error::ScopeNeeded(_)
        | Error::TooManyAttempts(_)
        | Error::Suspended(_) => (RefusalKind::AuthFailure, true),
        Error::AuthBusy | Error::IdentityProviderUnavailable => (RefusalKind::AuthFailure, false),
        Error::Limited(_) | Error::QuotaExhausted(_) => (RefusalKind::Refusal, true),
        Error::Draining | Error::Dedicated => (RefusalKind::Refusal, false),
        _ => return None,
    })
}

/// Counts a refusal in its metric, by its reason: credentials in `auth_failures`, limits
/// and hand-overs in `limited`.
pub(super) fn count(metrics: &Metrics, e: &Error) {
    let family = match classify(e) {
        Some((RefusalKind::AuthFailure, _)) => &metrics.auth_failures,
        Some((RefusalKind::Refusal, _)) => &metrics.limited,
        Some((RefusalKind::AuditGap | RefusalKind::Authorization, _)) | None => return,
    };
    family
        .get_or_create(&ReasonLabel { reason: e.reason() })
        .inc();
}

impl App {
    /// Tallies a refusal of a request to `tenant` for the audit trail (see `refusals`):
    /// authentication failures by claimed key and address, and refusals by a limit by key.
    /// A tenant this worker does not hold is left to the metrics.
    pub(super) fn tally(&self, tenant: &str, seen: &Seen, e: &Error) {
        let Some((kind, true)) = classify(e) else {
            return;
        };
        if self.policies.get(tenant).is_none() {
            return;
        }
        self.refusals.note(crate::refusals::Refused {
            tenant,
            kind,
            key: seen.key.as_ref().map(|k| k.as_str()),
            subject: seen.subject.as_deref(),
            reason: e.reason(),
            target: None,
            source: seen.client.filter(|_| kind == RefusalKind::AuthFailure),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policies;
    use std::sync::Arc;
    use switchyard_common::seal::{Keyring, SecretKey};

    #[test]
    fn refusals_are_counted_under_their_reason() {
        let policies = Arc::new(Policies::new(Keyring::new(SecretKey::generate())));
        let metrics = Metrics::new(policies, Arc::new(switchyard_bus::MemoryBus::default()));
        let examples = crate::error::tests::examples();
        for (e, ..) in &examples {
            count(&metrics, e);
        }
        let text = metrics.render();
        let counted = |family: &str, reason: &str| {
            text.contains(&format!(
                "switchyard_worker_{family}_total{{reason=\"{reason}\"}}"
            ))
        };
        for (e, ..) in &examples {
            let reason = e.reason();
            let family = match e {
                Error::MissingCredential
                | Error::InvalidCredential
                | Error::ApiKeysDisabled
                | Error::InsufficientScope(_)
                | Error::ScopeNeeded(_)
                | Error::IdentityProviderUnavailable
                | Error::AuthBusy
                | Error::TooManyAttempts(_)
                | Error::Suspended(_) => Some("auth_failures"),
                Error::Draining
                | Error::Dedicated
                | Error::Limited(_)
                | Error::QuotaExhausted(_) => Some("limited"),
                _ => None,
            };
            match family {
                Some(f) => assert!(counted(f, reason), "{reason} not in {f}:\n{text}"),
                None => assert!(
                    !counted("limited", reason) && !counted("auth_failures", reason),
                    "{reason} counted as a refusal"
                ),
            }
        }
    }
}
