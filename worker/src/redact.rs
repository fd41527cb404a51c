//! What a call's audit record keeps of its arguments, as the tenant chose: nothing, a
//! digest, or the arguments redacted. Redaction masks the values of sensitive keys (built-in
//! names like `password` or `api_key`, and the tenant's own) wherever they are nested, and
//! in every other string what looks like a secret or personal data: email addresses, card
//! numbers (that pass the Luhn check), bearer tokens, JWTs and well-known API key formats.
//! It errs towards masking: a false positive loses a value from the record, a miss leaks it.

use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// The longest redacted arguments recorded (their JSON text); longer ones are cut.
pub const MAX_RECORDED: usize = 4096;
/// Arguments larger than this (their JSON text) are not redacted: only their digest is kept.
const MAX_REDACTED_INPUT: usize = 64 * 1024;

/// Key names whose values are always masked, compared without case, `-` or `_`, and
/// matched anywhere in a key (`db_password`, `X-Api-Key`).
const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "privatekey",
    "sessionid",
    "ssn",
    "cardnumber",
    "creditcard",
    "cvv",
    "cvc",
];

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// What a tenant's call records keep of the arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Arguments {
    #[default]
    None,
    Digest,
    /// Redacted, also masking the values of these keys (normalised).
    Redacted(Vec<String>),
}

/// What a call's usage event carries of its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub digest: Option<String>,
    pub redacted: Option<String>,
}

impl Arguments {
    /// From a policy's setting and the tenant's sensitive keys.
    pub fn from_policy(mode: switchyard_proto::policy::v1::ArgumentAudit, keys: &[String]) -> Self {
        use switchyard_proto::policy::v1::ArgumentAudit as Mode;
        match mode {
            Mode::None => Self::None,
            Mode::Digest => Self::Digest,
            Mode::Redacted => Self::Redacted(keys.iter().map(|k| normalise(k)).collect()),
        }
    }

    /// What to record of `args` (absent arguments are recorded as an empty object).
    pub fn record(&self, args: Option<&Value>) -> Recorded {
        let empty = Value::Object(Default::default());
        let args = args.unwrap_or(&empty);
        match self {
            Self::None => Recorded::default(),
            Self::Digest => Recorded {
                digest: Some(digest(args)),
                redacted: None,
            },
            Self::Redacted(keys) => {
                let text = args.to_string();
                if text.len() > MAX_REDACTED_INPUT {
                    return Recorded {
                        digest: Some(digest(args)),
                        redacted: None,
                    };
                }
                let mut masked = args.clone();
                redact(&mut masked, keys);
                Recorded {
                    digest: None,
                    redacted: Some(cut(masked.to_string())),
                }
            }
        }
    }
}

/// `sha256:` and the hex SHA-256 of `args`' canonical JSON (RFC 8785).
pub fn digest(args: &Value) -> String {
    use sha2::Digest as _;
    let canonical = serde_jcs::to_vec(args).unwrap_or_default();
    let hash = sha2::Sha256::digest(&canonical);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `text` cut to [`MAX_RECORDED`] bytes at a character boundary, marked when cut.
fn cut(mut text: String) -> String {
    if text.len() <= MAX_RECORDED {
        return text;
    }
    let mut end = MAX_RECORDED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("…[cut]");
    text
}

const MASK: &str = "[redacted]";

fn sensitive(key: &str, extra: &[String]) -> bool {
    let key = normalise(key);
    SENSITIVE.iter().any(|s| key.contains(s)) || extra.contains(&key)
}

/// Masks sensitive values in `value`, in place.
pub fn redact(value: &mut Value, extra: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if sensitive(key, extra) {
                    *v = Value::String(MASK.to_owned());
                } else {
                    redact(v, extra);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, extra)),
        Value::String(s) => {
            if let Some(masked) = mask_text(s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+", "Bearer [redacted]"),
        (r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", "[token]"),
        (
            r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{35}|\bsy_[A-Za-z0-9_-]{16,}",
            "[api key]",
        ),
        (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]"),
    ]
    .into_iter()
    .filter_map(|(p, mask)| Regex::new(p).ok().map(|r| (r, mask)))
    .collect()
});

static CARD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").ok());

/// Whether `digits` pass the Luhn check card numbers carry.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2, d * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => *d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `text` with what looks like a secret or personal data masked; `None` when nothing was.
fn mask_text(text: &str) -> Option<String> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for (pattern, mask) in PATTERNS.iter() {
        if pattern.is_match(&out) {
            out = std::borrow::Cow::Owned(pattern.replace_all(&out, *mask).into_owned());
        }
    }
    if let Some(card) = CARD.as_ref()
        && card.is_match(&out)
    {
        let replaced = card.replace_all(&out, |c: &regex::Captures<'_>| {
            let digits: Vec<u32> = c[0].chars().filter_map(|ch| ch.to_digit(10)).collect();
            if luhn(&digits) {
                "[card]".to_owned()
            } else {
                c[0].to_owned()
            }
        });
        out = std::borrow::Cow::Owned(replaced.into_owned());
    }
    match out {
        std::borrow::Cow::Owned(s) if s != text => Some(s),
        _ => None,
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
