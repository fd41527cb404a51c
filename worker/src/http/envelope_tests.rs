use super::{Message, read};
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, GetMeta as _, JsonRpcMessage,
    NumberOrString, RequestId,
};

/// What rmcp makes of `body`, in the same terms.
fn rmcp_reads(body: &str) -> Message {
    match serde_json::from_str::<ClientJsonRpcMessage>(body) {
        Ok(JsonRpcMessage::Request(r)) => Message::Call(r.id, r.request),
        Ok(JsonRpcMessage::Notification(n)) => match n.notification {
            ClientNotification::CancelledNotification(c) => match c.params.request_id {
                Some(id) => Message::Cancelled(id),
                None => Message::Other,
            },
            _ => Message::Other,
        },
        _ => Message::Other,
    }
}

/// The request as it would go out again, `_meta` included, and its progress token.
fn shape(message: &Message) -> Option<(RequestId, serde_json::Value, Option<String>)> {
    match message {
        Message::Call(id, request) => Some((
            id.clone(),
            serde_json::to_value(request).unwrap(),
            request
                .get_meta()
                .get_progress_token()
                .map(|t| format!("{:?}", t.0)),
        )),
        _ => None,
    }
}

const CALLS: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,{"a":null}]}}}"#,
    r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"echo"}}"#,
    r#"{"id":7,"params":{"_meta":{"progressToken":"p-1","x":{"y":2}},"name":"slow","arguments":{}},"method":"tools/call","jsonrpc":"2.0"}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","_meta":null,"arguments":{"a":"\u00e9\n"}}}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///a.txt","_meta":{"k":1}}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"greet","arguments":{"who":"you"}}}"#,
    r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","requestState":"s","inputResponses":{}},"extra":true}"#,
];

#[test]
fn calls_read_as_rmcp_reads_them() {
    for body in CALLS {
        let ours = read(body.as_bytes());
        assert!(matches!(ours, Message::Call(..)), "{body}: {ours:?}");
        assert_eq!(shape(&ours), shape(&rmcp_reads(body)), "{body}");
    }
}

#[test]
fn a_cancellation_names_its_request() {
    let body = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"stop"}}"#;
    assert!(matches!(
        read(body.as_bytes()),
        Message::Cancelled(NumberOrString::Number(9))
    ));
    assert!(matches!(rmcp_reads(body), Message::Cancelled(_)));
}

/// Whatever is not one of the calls, or is not what rmcp would read as one, goes to rmcp.
#[test]
fn everything_else_is_left_to_rmcp() {
    let others = [
        "",
        "not json",
        "[]",
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}]"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":[1]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":[]}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"x"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ];
    for body in others {
        let ours = read(body.as_bytes());
        assert!(matches!(ours, Message::Other), "{body}: {ours:?}");
        // Nor is it one of those calls to rmcp.
        let served = |r: &ClientRequest| {
            matches!(
                r,
                ClientRequest::CallToolRequest(_)
                    | ClientRequest::ReadResourceRequest(_)
                    | ClientRequest::GetPromptRequest(_)
            )
        };
        assert!(
            !matches!(rmcp_reads(body), Message::Call(_, r) if served(&r)),
            "{body}"
        );
    }
}
