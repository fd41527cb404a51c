//! The HTTP headers MCP 2026-07-28 (SEP-2243) wants on a request, for a call `direct`
//! sends to a 2026-07-28 upstream: `Mcp-Method`, `Mcp-Name` (the tool's or prompt's name,
//! the resource's URI), and for a tool whose input schema marks arguments with
//! `x-mcp-header`, one `Mcp-Param-{name}` header per such argument the call gives. A value
//! that cannot travel as printable ASCII goes as `=?base64?...?=`.

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientRequest, JsonObject};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

const PREFIX: &str = "=?base64?";
const SUFFIX: &str = "?=";

/// The arguments of one tool that go in headers too: each property's path from the
/// schema's root (through `properties` only) and its header.
#[derive(Debug, PartialEq)]
pub struct ParamHeaders(Vec<(Vec<String>, HeaderName)>);

impl ParamHeaders {
    /// The annotated properties of tool input schema `schema`; `None` when it marks none
    /// (most tools), so a call of it carries nothing to look up.
    pub fn of(schema: &JsonObject) -> Option<Arc<Self>> {
        let mut found = Vec::new();
        collect(schema, &mut Vec::new(), &mut found);
        (!found.is_empty()).then(|| Arc::new(Self(found)))
    }

    /// Adds a header for each annotated argument `arguments` gives a primitive value.
    fn add(&self, arguments: &JsonObject, headers: &mut HashMap<HeaderName, HeaderValue>) {
        for (path, header) in &self.0 {
            let Some((first, rest)) = path.split_first() else {
                continue;
            };
            let value = rest
                .iter()
                .try_fold(arguments.get(first), |v, key| v.map(|v| v.get(key)))
                .flatten();
            let text = match value {
                Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string().into(),
                _ => continue,
            };
            if let Some(v) = header_value(&text) {
                headers.insert(header.clone(), v);
            }
        }
    }
}

/// Walks `schema`'s `properties` (and theirs), noting each property marked with a header.
fn collect(
    schema: &JsonObject,
    path: &mut Vec<String>,
    found: &mut Vec<(Vec<String>, HeaderName)>,
) {
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return;
    };
    for (key, property) in properties {
        let Value::Object(property) = property else {
            continue;
        };
        path.push(key.clone());
        if let Some(Value::String(name)) = property.get("x-mcp-header")
            && !name.is_empty()
            && let Ok(header) = HeaderName::try_from(format!("mcp-param-{name}"))
        {
            found.push((path.clone(), header));
        }
        collect(property, path, found);
        path.pop();
    }
}

/// `value` as a header value: as it is when it is printable ASCII without surrounding
/// blanks, else Base64 in the sentinel (so is a value that looks like the sentinel).
fn header_value(value: &str) -> Option<HeaderValue> {
    let printable = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let blank_edge = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let sentinel = value.starts_with(PREFIX) && value.ends_with(SUFFIX);
    if printable && !blank_edge && !sentinel {
        return HeaderValue::from_str(value).ok();
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    HeaderValue::from_str(&format!("{PREFIX}{encoded}{SUFFIX}")).ok()
}

/// Adds `request`'s `Mcp-Method` and `Mcp-Name` headers, and its `Mcp-Param-*` headers
/// as `params` (the called tool's annotations, if any) say.
pub fn add(
    request: &ClientRequest,
    params: Option<&ParamHeaders>,
    headers: &mut HashMap<HeaderName, HeaderValue>,
) {
    let (name, arguments) = match request {
        ClientRequest::CallToolRequest(r) => (Some(&*r.params.name), r.params.arguments.as_ref()),
        ClientRequest::GetPromptRequest(r) => (Some(r.params.name.as_str()), None),
        ClientRequest::ReadResourceRequest(r) => (Some(r.params.uri.as_str()), None),
        _ => (None, None),
    };
    if let Ok(method) = HeaderValue::from_str(request.method()) {
        headers.insert(HeaderName::from_static("mcp-method"), method);
    }
    if let Some(v) = name.and_then(header_value) {
        headers.insert(HeaderName::from_static("mcp-name"), v);
    }
    if let (Some(params), Some(arguments)) = (params, arguments) {
        params.add(arguments, headers);
    }
}

#[cfg(test)]
#[path = "call_headers_tests.rs"]
mod tests;
