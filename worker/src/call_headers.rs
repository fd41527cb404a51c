//! The HTTP headers MCP 2026-07-28 (SEP-2243) wants on a request, for a call `direct`
//! sends to a 2026-07-28 upstream: `Mcp-Method`, `Mcp-Name` (the tool's or prompt's name,
//! the resource's URI), and for a tool whose input schema marks arguments with
//! `x-mcp-header`, one `Mcp-Param-{name}` header per such argument the call gives. A value
//! that cannot travel as printable ASCII goes as `=?base64?...?=`. A 2026-07-28 client's
//! own `Mcp-Param-*` headers are checked against its arguments by the same annotations.

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
            let Some(text) = value_at(arguments, path).and_then(text_of) else {
                continue;
            };
            if let Some(v) = header_value(&text) {
                headers.insert(header.clone(), v);
            }
        }
    }

    /// Whether a 2026-07-28 client's `headers` agree with the `arguments` of its call, as
    /// the receiver of such a request must check (an intermediary may have acted on the
    /// headers alone): each annotated argument given a value comes with exactly one header
    /// carrying that value, plain or in Base64, and no header comes for an argument not
    /// given. Why not, when they disagree.
    pub fn check(
        &self,
        arguments: Option<&JsonObject>,
        headers: &http::HeaderMap,
    ) -> Result<(), String> {
        for (path, header) in &self.0 {
            let given = arguments.and_then(|a| value_at(a, path)).and_then(text_of);
            let mut sent = headers.get_all(header).iter();
            let (first, again) = (sent.next(), sent.next());
            if again.is_some() {
                return Err(format!("{header} is repeated"));
            }
            let argument = || path.join(".");
            match (first, given) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(format!(
                        "{header} is sent for `{}`, which the call does not give",
                        argument()
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!("{header} is missing for `{}`", argument()));
                }
                (Some(sent), Some(given)) => {
                    let Some(sent) = sent.to_str().ok().and_then(decode) else {
                        return Err(format!("{header} is not a valid header value"));
                    };
                    if sent != given {
                        return Err(format!(
                            "{header} does not match `{}` in the body",
                            argument()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The value at `path` (through objects) in `arguments`.
fn value_at<'a>(arguments: &'a JsonObject, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(arguments.get(first)?, |v, key| v.get(key))
}

/// A primitive argument as its header carries it; `None` for anything else (null, an
/// array, an object), which no header carries.
fn text_of(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string().into()),
        _ => None,
    }
}

/// What a header value carries: itself, or the text the Base64 sentinel wraps; `None`
/// when the sentinel wraps no valid Base64 of UTF-8.
fn decode(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    match value
        .strip_prefix(PREFIX)
        .and_then(|v| v.strip_suffix(SUFFIX))
    {
        Some(inner) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?;
            String::from_utf8(bytes).ok().map(Into::into)
        }
        None => Some(value.into()),
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
