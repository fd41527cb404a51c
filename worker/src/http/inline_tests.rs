use super::plain;
use http::HeaderMap;

fn hosts() -> Vec<String> {
    vec!["mcp.example.com".into(), "mcp.example.com:8443".into()]
}

/// The headers of a plain call, with `changes` applied (`None` removes the header).
fn headers(changes: &[(&'static str, Option<&str>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "mcp.example.com".parse().unwrap());
    h.insert(
        "accept",
        "application/json, text/event-stream".parse().unwrap(),
    );
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("mcp-protocol-version", "2025-06-18".parse().unwrap());
    for (name, value) in changes {
        match value {
            Some(v) => {
                h.insert(*name, v.parse().unwrap());
            }
            None => {
                h.remove(*name);
            }
        }
    }
    h
}

#[test]
fn a_plain_call_is_taken() {
    assert!(plain(&headers(&[]), &hosts()));
    assert!(plain(&headers(&[("mcp-protocol-version", None)]), &hosts()));
    // An entry without a port takes any, as rmcp's check does.
    for host in ["MCP.example.com:8443", "mcp.example.com:1"] {
        assert!(plain(&headers(&[("host", Some(host))]), &hosts()), "{host}");
    }
    assert!(plain(
        &headers(&[("content-type", Some("application/json; charset=utf-8"))]),
        &hosts()
    ));
    assert!(plain(
        &headers(&[("accept", Some("text/event-stream;q=0.5, application/json"))]),
        &hosts()
    ));
}

#[test]
fn anything_rmcp_might_refuse_is_left_to_it() {
    let refused: &[(&'static str, Option<&str>)] = &[
        // A browser: rmcp checks the origin.
        ("origin", Some("https://mcp.example.com")),
        // Names rmcp would not accept, or none.
        ("host", Some("evil.example")),
        ("host", Some("mcp.example.com.evil.example:8443")),
        ("host", Some("mcp.example.com.evil.example")),
        ("host", None),
        // A client that cannot read one of the two answers' kinds.
        ("accept", Some("application/json")),
        ("accept", Some("text/event-stream")),
        ("accept", Some("application/json, text/event-stream;q=0")),
        ("accept", None),
        // Not JSON.
        ("content-type", Some("text/plain")),
        ("content-type", None),
        // A 2026-07-28 request, or a version rmcp does not know.
        ("mcp-protocol-version", Some("2026-07-28")),
        ("mcp-protocol-version", Some("1999-01-01")),
    ];
    for change in refused {
        assert!(!plain(&headers(&[*change]), &hosts()), "{change:?}");
    }
}

#[test]
fn two_hosts_are_not_one() {
    let mut h = headers(&[]);
    h.append("host", "evil.example".parse().unwrap());
    assert!(!plain(&h, &hosts()));
}

#[test]
fn loopback_defaults_take_any_port() {
    let loopback = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for host in [
        "localhost:3000",
        "127.0.0.1:8080",
        "[::1]:9000",
        "localhost",
    ] {
        assert!(
            plain(&headers(&[("host", Some(host))]), &loopback),
            "{host}"
        );
    }
    assert!(!plain(
        &headers(&[("host", Some("10.0.0.1:8080"))]),
        &loopback
    ));
}
