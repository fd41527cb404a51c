use super::*;

fn id() -> RequestId {
    NumberOrString::String("sy-7".into())
}

fn read(data: &str, kind: Kind) -> Option<Result<ServerResult, Failed>> {
    read_event(data, &id(), kind).unwrap()
}

#[test]
fn a_calls_answer_is_read_as_a_tool_result() {
    let data = r#"{"jsonrpc":"2.0","id":"sy-7","result":{"content":[{"type":"text","text":"hi"}],"isError":true}}"#;
    let Some(Ok(ServerResult::CallToolResult(r))) = read(data, Kind::Tool) else {
        panic!("not a tool result");
    };
    assert_eq!(r.is_error, Some(true));
}

#[test]
fn other_messages_on_the_stream_are_not_the_answer() {
    for data in [
        r#"{"jsonrpc":"2.0","id":"sy-8","result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"sy-7","progress":1}}"#,
        r#"{"jsonrpc":"2.0","id":"sy-7","method":"roots/list"}"#,
    ] {
        assert!(read(data, Kind::Tool).is_none(), "{data}");
    }
}

#[test]
fn an_error_answer_is_the_upstreams_error() {
    let data = r#"{"jsonrpc":"2.0","id":"sy-7","error":{"code":-32602,"message":"bad args"}}"#;
    let Some(Err(Failed::Service(ServiceError::McpError(e)))) = read(data, Kind::Tool) else {
        panic!("not the upstream's error");
    };
    assert_eq!(e.message, "bad args");
}

#[test]
fn a_result_of_another_kind_is_still_read() {
    let data = r#"{"jsonrpc":"2.0","id":"sy-7","result":{"resultType":"input_required","inputRequests":{}}}"#;
    let answer = read(data, Kind::Tool);
    assert!(
        matches!(answer, Some(Ok(ServerResult::InputRequiredResult(_)))),
        "{answer:?}"
    );
}

#[test]
fn what_is_not_json_rpc_is_refused_as_such() {
    for data in ["[1,2]", "not json"] {
        let refused = matches!(
            read_event(data, &id(), Kind::Tool),
            Err(Failed::Service(ServiceError::TransportSend(_)))
                | Ok(Some(Err(Failed::Service(ServiceError::TransportSend(_)))))
        );
        assert!(refused, "{data}");
    }
}
