use super::*;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams, Request};
use serde_json::json;

fn object(v: Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

fn call(name: &str, arguments: Value) -> ClientRequest {
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(object(arguments));
    ClientRequest::CallToolRequest(Request::new(params))
}

fn headers_of(request: &ClientRequest, schema: Option<Value>) -> HashMap<String, String> {
    let params = schema.and_then(|s| ParamHeaders::of(&object(s)));
    let mut headers = HashMap::new();
    add(request, params.as_deref(), &mut headers);
    headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

/// What a `=?base64?...?=` value carries.
fn decoded(value: &str) -> String {
    let inner = value
        .strip_prefix(PREFIX)
        .unwrap()
        .strip_suffix(SUFFIX)
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_schema_that_marks_nothing_has_no_param_headers() {
    let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
    assert_eq!(ParamHeaders::of(&object(schema)), None);
    assert_eq!(ParamHeaders::of(&JsonObject::new()), None);
    let empty = json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}});
    assert_eq!(
        ParamHeaders::of(&object(empty)),
        None,
        "an empty name marks nothing"
    );
    let bad = json!({"properties": {"a": {"type": "string", "x-mcp-header": "a b"}}});
    assert_eq!(ParamHeaders::of(&object(bad)), None, "not a header name");
}

#[test]
fn a_call_carries_its_method_name_and_marked_arguments() {
    let schema = json!({"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "count": {"type": "integer", "x-mcp-header": "Count"},
        "dry": {"type": "boolean", "x-mcp-header": "Dry"},
        "target": {"type": "object", "properties": {
            "zone": {"type": "string", "x-mcp-header": "Zone"}
        }},
        "note": {"type": "string"}
    }});
    let request = call(
        "deploy",
        json!({"region": "eu-west-1", "count": 3, "dry": false,
               "target": {"zone": "b"}, "note": "not a header"}),
    );
    let headers = headers_of(&request, Some(schema));
    let want: HashMap<String, String> = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "deploy"),
        ("mcp-param-region", "eu-west-1"),
        ("mcp-param-count", "3"),
        ("mcp-param-dry", "false"),
        ("mcp-param-zone", "b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(headers, want);
}

#[test]
fn an_argument_absent_null_or_not_primitive_sends_no_header() {
    let schema = json!({"properties": {
        "a": {"type": "string", "x-mcp-header": "A"},
        "b": {"type": "string", "x-mcp-header": "B"},
        "c": {"type": "string", "x-mcp-header": "C"},
        "d": {"type": "object", "properties": {"e": {"type": "string", "x-mcp-header": "E"}}}
    }});
    let request = call(
        "t",
        json!({"b": null, "c": {"nested": 1}, "d": "not an object"}),
    );
    let headers = headers_of(&request, Some(schema));
    assert_eq!(headers.len(), 2, "method and name only: {headers:?}");
}

#[test]
fn values_that_are_not_plain_ascii_travel_in_base64() {
    for value in [
        " leading",
        "trailing\t",
        "naïve",
        "line\nbreak",
        "=?base64?aGk=?=",
    ] {
        let schema = json!({"properties": {"v": {"type": "string", "x-mcp-header": "V"}}});
        let headers = headers_of(&call("t", json!({"v": value})), Some(schema));
        let sent = &headers["mcp-param-v"];
        assert!(sent.starts_with(PREFIX), "{value:?} went as {sent:?}");
        assert_eq!(decoded(sent), value);
    }
    let name = "résumé";
    let headers = headers_of(&call(name, json!({})), None);
    assert_eq!(decoded(&headers["mcp-name"]), name);
    let headers = headers_of(&call("plain name-1.2", json!({})), None);
    assert_eq!(headers["mcp-name"], "plain name-1.2");
}

#[test]
fn a_resource_read_is_named_by_its_uri() {
    let params = ReadResourceRequestParams::new("file:///notes/a.txt");
    let request = ClientRequest::ReadResourceRequest(Request::new(params));
    let headers = headers_of(&request, None);
    assert_eq!(headers["mcp-method"], "resources/read");
    assert_eq!(headers["mcp-name"], "file:///notes/a.txt");
}

/// What `check` says of a call of a tool marking `region` and `zone.name` with `arguments`
/// and the client's `headers`.
fn checked(arguments: Value, headers: &[(&str, &str)]) -> Result<(), String> {
    let schema = json!({"properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "zone": {"type": "object", "properties": {"name": {"type": "string", "x-mcp-header": "Zone"}}}
    }});
    let params = ParamHeaders::of(&object(schema)).unwrap();
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::try_from(*k).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    params.check(Some(&object(arguments)), &map)
}

#[test]
fn headers_that_mirror_the_arguments_are_taken() {
    assert_eq!(checked(json!({}), &[]), Ok(()));
    assert_eq!(checked(json!({"region": null, "note": 1}), &[]), Ok(()));
    assert_eq!(
        checked(
            json!({"region": "eu-west-1", "zone": {"name": "b"}}),
            &[("mcp-param-region", "eu-west-1"), ("mcp-param-zone", "b")]
        ),
        Ok(())
    );
    // In Base64, as a client must send what is not plain ASCII, and may send anything.
    assert_eq!(
        checked(
            json!({"region": "zürich"}),
            &[("mcp-param-region", "=?base64?esO8cmljaA==?=")]
        ),
        Ok(())
    );
    assert_eq!(
        checked(
            json!({"region": "eu"}),
            &[("mcp-param-region", "=?base64?ZXU=?=")]
        ),
        Ok(())
    );
}

#[test]
fn headers_that_disagree_with_the_arguments_are_refused_naming_the_header() {
    let cases: [(Value, &[(&str, &str)]); 7] = [
        // Another value than the body's.
        (json!({"region": "eu"}), &[("mcp-param-region", "us")]),
        // The body's value, missing from the headers.
        (json!({"region": "eu"}), &[]),
        // A header for an argument the call does not give, or gives as null.
        (json!({}), &[("mcp-param-zone", "b")]),
        (json!({"region": null}), &[("mcp-param-region", "eu")]),
        // Twice: an intermediary may take either.
        (
            json!({"region": "eu"}),
            &[("mcp-param-region", "eu"), ("mcp-param-region", "us")],
        ),
        // Base64 of another value, or not Base64 at all.
        (
            json!({"region": "eu"}),
            &[("mcp-param-region", "=?base64?dXM=?=")],
        ),
        (
            json!({"region": "eu"}),
            &[("mcp-param-region", "=?base64?***?=")],
        ),
    ];
    for (arguments, headers) in cases {
        let why = checked(arguments.clone(), headers).unwrap_err();
        assert!(
            why.contains("mcp-param-region") || why.contains("mcp-param-zone"),
            "{arguments} {headers:?}: {why}"
        );
    }
}
