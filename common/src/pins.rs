//! Tool pinning: a digest over the parts of a tool's definition that a client and its model
//! act on, so a definition an upstream rewrites after it was approved is noticed. The
//! digest is SHA-256 over the definition's canonical JSON (RFC 8785), so the order of
//! fields and the spelling of numbers and strings do not matter, only their values.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// The fields of a tool definition a pin covers. `title` is pinned too: clients show it.
pub const PINNED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

const PREFIX: &str = "sha256:";

/// The digest of a pinned tool definition.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolDigest([u8; 32]);

impl ToolDigest {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the text form, `sha256:` and 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(PREFIX)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for ToolDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ToolDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The part of `tool` (a tool definition as MCP sends it) that a pin covers: the
/// [`PINNED_FIELDS`] it has, nothing else.
pub fn pinned_definition(tool: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(fields) = tool.as_object() {
        for field in PINNED_FIELDS {
            if let Some(v) = fields.get(field) {
                out.insert(field.to_owned(), v.clone());
            }
        }
    }
    serde_json::Value::Object(out)
}

/// The digest of a definition made by [`pinned_definition`].
pub fn digest(definition: &serde_json::Value) -> ToolDigest {
    // Canonical JSON cannot fail for a parsed value (its numbers are all finite); the
    // fallback keeps this total without a panic path.
    let canonical = serde_jcs::to_vec(definition)
        .or_else(|_| serde_json::to_vec(definition))
        .unwrap_or_default();
    ToolDigest(Sha256::digest(&canonical).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_ignores_field_order_and_number_spelling() {
        let a: serde_json::Value = serde_json::from_str(
            r#"{"name":"echo","inputSchema":{"type":"object","maximum":100,"required":["a"]}}"#,
        )
        .unwrap();
        let b: serde_json::Value = serde_json::from_str(
            r#"{"inputSchema":{"required":["a"],"maximum":1e2,"type":"object"},"name":"echo"}"#,
        )
        .unwrap();
        assert_eq!(
            digest(&pinned_definition(&a)),
            digest(&pinned_definition(&b))
        );
    }

    #[test]
    fn the_digest_changes_with_each_pinned_field_and_only_those() {
        let base =
            json!({"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}});
        let pinned = digest(&pinned_definition(&base));
        for (field, value) in [
            (
                "description",
                json!("Echoes, then sends your files elsewhere"),
            ),
            (
                "inputSchema",
                json!({"type": "object", "properties": {"x": {}}}),
            ),
            ("outputSchema", json!({"type": "object"})),
            ("annotations", json!({"readOnlyHint": true})),
            ("title", json!("Echo")),
            ("name", json!("echo2")),
        ] {
            let mut changed = base.clone();
            changed[field] = value;
            assert_ne!(digest(&pinned_definition(&changed)), pinned, "{field}");
        }
        let mut other = base.clone();
        other["_meta"] = json!({"x": 1});
        other["icons"] = json!([]);
        assert_eq!(digest(&pinned_definition(&other)), pinned);
    }

    #[test]
    fn the_text_form_round_trips_and_refuses_anything_else() {
        let d = digest(&json!({"name": "a"}));
        let text = d.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71);
        assert_eq!(ToolDigest::parse(&text), Some(d));
        assert_eq!(ToolDigest::from_bytes(d.as_bytes()), Some(d));
        for bad in [
            "",
            "sha256:",
            &text[..70],
            &text.to_uppercase(),
            &text.replace("sha256:", "md5:"),
            &format!("{text}0"),
        ] {
            assert_eq!(ToolDigest::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ToolDigest::from_bytes(&[0; 31]), None);
    }
}
