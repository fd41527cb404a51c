//! What the fixture lists, as the suites expect it: its tools and prompts, and the image
//! and audio data its answers carry.

use serde_json::{Value, json};

/// A 1x1 PNG and a minimal WAV: the suites check only that data and MIME type are present.
pub(super) const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
pub(super) const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

pub(super) fn tools() -> Value {
    let plain = |name: &str, description: &str| json!({"name": name, "description": description, "inputSchema": no_args()});
    let mut tools = vec![
        plain("test_simple_text", "Returns simple text content"),
        plain("test_image_content", "Returns image content"),
        plain("test_audio_content", "Returns audio content"),
        plain("test_embedded_resource", "Returns an embedded resource"),
        plain(
            "test_multiple_content_types",
            "Returns text, image and resource content",
        ),
        plain("test_tool_with_logging", "Sends log messages while it runs"),
        plain("test_tool_with_progress", "Reports progress while it runs"),
        plain("test_error_handling", "Always fails with a tool error"),
        json!({"name": "test_sampling", "description": "Asks the client's model",
               "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}}),
        json!({"name": "test_elicitation", "description": "Asks the user for input",
               "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}),
        plain(
            "test_elicitation_sep1034_defaults",
            "Elicitation with default values",
        ),
        plain(
            "test_elicitation_sep1330_enums",
            "Elicitation with enum variants",
        ),
        json!({"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
               "inputSchema": {
                   "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                   "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                             "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                   "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                                  "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                                  "phone": {"type": "string"}, "email": {"type": "string"}},
                   "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                   "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                   "then": {"required": ["phone"]}, "else": {"required": ["email"]},
                   "additionalProperties": false}}),
        plain(
            "test_missing_capability",
            "Needs the client's sampling capability",
        ),
        plain(
            "test_streaming_elicitation",
            "Asks for input with an input-required result",
        ),
        plain(
            "test_logging_tool",
            "Logs at the level the request asks for",
        ),
        json!({"name": "test_custom_header", "description": "Takes an argument mirrored in a header",
               "inputSchema": {"type": "object",
                               "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                               "required": ["region"]}}),
    ];
    for (name, what) in [
        ("elicitation", "an elicitation"),
        ("sampling", "a sampling request"),
        ("list_roots", "the client's roots"),
        ("request_state", "a confirmation, keeping request state"),
        ("multiple_inputs", "elicitation, sampling and roots at once"),
        ("multi_round", "two rounds of input"),
        ("tampered_state", "a confirmation, verifying request state"),
        ("capabilities", "only what the client declared"),
    ] {
        tools.push(plain(
            &format!("test_input_required_result_{name}"),
            &format!("Input-required result asking for {what}"),
        ));
    }
    Value::Array(tools)
}

pub(super) fn prompts() -> Value {
    json!([
        {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
        {"name": "test_prompt_with_arguments", "description": "A prompt with two arguments",
         "arguments": [{"name": "arg1", "description": "First argument", "required": true},
                       {"name": "arg2", "description": "Second argument", "required": true}]},
        {"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource",
         "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
        {"name": "test_prompt_with_image", "description": "A prompt with an image"},
        {"name": "test_input_required_result_prompt", "description": "A prompt that asks for context first"},
    ])
}
