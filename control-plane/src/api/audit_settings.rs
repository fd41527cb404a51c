//! A tenant's audit settings in requests and answers: validated, naming the field.

use super::*;

/// Sensitive key names a tenant may add.
const MAX_SENSITIVE_KEYS: usize = 64;
const MAX_KEY_LEN: usize = 64;
/// Days records may be kept at most (100 years).
const MAX_RETENTION_DAYS: u32 = 36_500;

pub(super) fn audit_pb(a: &AuditSettings) -> pb::AuditSettings {
    pb::AuditSettings {
        arguments: match a.arguments {
            ArgumentAudit::None => pb::AuditArguments::None,
            ArgumentAudit::Digest => pb::AuditArguments::Digest,
            ArgumentAudit::Redacted => pb::AuditArguments::Redacted,
        } as i32,
        sensitive_keys: a.sensitive_keys.clone(),
        retention_days: a.retention_days,
        fail_closed: a.fail_closed,
    }
}

/// The settings `a` gives, checked.
pub(super) fn audit_settings(a: &pb::AuditSettings) -> Result<AuditSettings> {
    let arguments = match pb::AuditArguments::try_from(a.arguments) {
        Ok(pb::AuditArguments::Unspecified | pb::AuditArguments::None) => ArgumentAudit::None,
        Ok(pb::AuditArguments::Digest) => ArgumentAudit::Digest,
        Ok(pb::AuditArguments::Redacted) => ArgumentAudit::Redacted,
        Err(_) => {
            return Err(Error::invalid(
                "audit.arguments",
                "must be none, digest or redacted",
            ));
        }
    };
    if a.sensitive_keys.len() > MAX_SENSITIVE_KEYS {
        return Err(Error::invalid(
            "audit.sensitive_keys",
            format!("at most {MAX_SENSITIVE_KEYS} names"),
        ));
    }
    let mut sensitive_keys = Vec::with_capacity(a.sensitive_keys.len());
    for (i, key) in a.sensitive_keys.iter().enumerate() {
        let key = key.trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("audit.sensitive_keys[{i}]"),
                format!("must be 1 to {MAX_KEY_LEN} printable characters"),
            ));
        }
        if !sensitive_keys.iter().any(|k: &String| k == key) {
            sensitive_keys.push(key.to_owned());
        }
    }
    if a.retention_days > MAX_RETENTION_DAYS {
        return Err(Error::invalid(
            "audit.retention_days",
            format!("must be 0 (the control plane's default) to {MAX_RETENTION_DAYS}"),
        ));
    }
    Ok(AuditSettings {
        arguments,
        sensitive_keys,
        retention_days: a.retention_days,
        fail_closed: a.fail_closed,
    })
}
