//! A tenant's audit settings on the command line.

use super::*;

/// What call records keep of a call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArgumentsArg {
    None,
    Digest,
    Redacted,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// What call records keep of the arguments: none, a digest, or the arguments redacted.
    #[arg(long, value_enum)]
    audit_arguments: Option<ArgumentsArg>,
    /// An argument name whose values redaction masks, beside the built-in ones (repeat it;
    /// replaces the tenant's list).
    #[arg(long = "audit-sensitive-key")]
    audit_sensitive_keys: Vec<String>,
    /// Days the tenant's audit records are kept (0: the control plane's default).
    #[arg(long)]
    audit_retention_days: Option<u32>,
    /// Refuse the tenant's calls while their audit records cannot be queued (true), or
    /// serve them and leave a gap record for the records lost (false, the default).
    #[arg(long)]
    audit_fail_closed: Option<bool>,
}

impl AuditArgs {
    /// These flags applied over `current`; `None` when none was given.
    pub fn over(&self, current: Option<pb::AuditSettings>) -> Option<pb::AuditSettings> {
        if self.audit_arguments.is_none()
            && self.audit_sensitive_keys.is_empty()
            && self.audit_retention_days.is_none()
            && self.audit_fail_closed.is_none()
        {
            return None;
        }
        let mut settings = current.unwrap_or_default();
        if let Some(a) = self.audit_arguments {
            settings.arguments = match a {
                ArgumentsArg::None => pb::AuditArguments::None,
                ArgumentsArg::Digest => pb::AuditArguments::Digest,
                ArgumentsArg::Redacted => pb::AuditArguments::Redacted,
            } as i32;
        }
        if !self.audit_sensitive_keys.is_empty() {
            settings
                .sensitive_keys
                .clone_from(&self.audit_sensitive_keys);
        }
        if let Some(days) = self.audit_retention_days {
            settings.retention_days = days;
        }
        if let Some(closed) = self.audit_fail_closed {
            settings.fail_closed = closed;
        }
        Some(settings)
    }
}
