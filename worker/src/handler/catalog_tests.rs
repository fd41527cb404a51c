use super::*;
use serde_json::json;

fn tool(name: &str) -> Tool {
    serde_json::from_value(json!({"name": name, "inputSchema": {"type": "object"}})).unwrap()
}

fn resource(uri: &str) -> Resource {
    serde_json::from_value(json!({"uri": uri, "name": uri})).unwrap()
}

fn connector(name: &str, prefix: &str, allow: &[&str], deny: &[&str]) -> Arc<Connector> {
    Arc::new(Connector::for_test(name, prefix, allow, deny))
}

fn listing(tools: &[&str], resources: &[&str]) -> Listing {
    Listing {
        tools: tools.iter().map(|t| tool(t)).collect(),
        resources: resources.iter().map(|r| resource(r)).collect(),
        ..Listing::default()
    }
}

fn tool_names(c: &Catalog) -> Vec<String> {
    let mut names: Vec<String> = c.tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

#[test]
fn tools_appear_under_their_connectors_prefix_and_route_back() {
    let c = Catalog::build(
        "acme",
        1,
        &[
            (
                connector("gh", "gh", &[], &[]),
                Ok(listing(&["search"], &[])),
            ),
            (connector("db", "", &[], &[]), Ok(listing(&["query"], &[]))),
        ],
    );
    assert_eq!(tool_names(&c), ["gh__search", "query"]);
    let target = c.tool_names.get("gh__search").unwrap();
    assert_eq!(
        (target.connector.as_str(), target.upstream.as_str()),
        ("gh", "search")
    );
}

#[test]
fn allow_and_deny_patterns_filter_what_is_exposed() {
    let c = Catalog::build(
        "acme",
        1,
        &[(
            connector("gh", "gh", &["search*", "get_*"], &["get_secret"]),
            Ok(listing(
                &["search", "search_code", "get_issue", "get_secret", "delete"],
                &[],
            )),
        )],
    );
    assert_eq!(
        tool_names(&c),
        ["gh__get_issue", "gh__search", "gh__search_code"]
    );
}

#[test]
fn a_name_two_connectors_expose_is_hidden_on_both_sides() {
    let c = Catalog::build(
        "acme",
        1,
        &[
            (
                connector("a", "", &[], &[]),
                Ok(listing(&["echo", "only_a"], &[])),
            ),
            (connector("b", "", &[], &[]), Ok(listing(&["echo"], &[]))),
        ],
    );
    assert_eq!(tool_names(&c), ["only_a"]);
    assert!(c.tool_names.get("echo").is_none());
    assert_eq!(c.tool_names.collisions(), ["echo".to_owned()]);
}

#[test]
fn resources_belong_to_the_connector_that_listed_them_unless_two_did() {
    let mut a = listing(&[], &["file:///a.txt", "file:///both.txt"]);
    a.templates = vec![
        serde_json::from_value(json!({
        "uriTemplate": "db://rows/{id}", "name": "row"}))
        .unwrap(),
    ];
    let c = Catalog::build(
        "acme",
        1,
        &[
            (connector("a", "a", &[], &[]), Ok(a)),
            (
                connector("b", "b", &[], &[]),
                Ok(listing(&[], &["file:///both.txt"])),
            ),
        ],
    );
    assert_eq!(c.owner_of("file:///a.txt").as_deref(), Some("a"));
    assert_eq!(c.owner_of("file:///both.txt"), None, "hidden, not routed");
    assert_eq!(
        c.owner_of("db://rows/7").as_deref(),
        Some("a"),
        "by template"
    );
    assert_eq!(c.template_of("db://rows/{id}").as_deref(), Some("a"));
    assert_eq!(c.resources.len(), 1);
}

#[test]
fn a_connector_that_could_not_be_listed_is_named_for_its_tools() {
    let c = Catalog::build(
        "acme",
        1,
        &[
            (
                connector("gh", "gh", &[], &[]),
                Err("it could not be reached".into()),
            ),
            (
                connector("db", "db", &[], &[]),
                Ok(listing(&["query"], &[])),
            ),
        ],
    );
    assert_eq!(
        c.unavailable_for("gh__search"),
        Some(("gh", "it could not be reached"))
    );
    assert_eq!(c.unavailable_for("db__query"), None);
    assert_eq!(tool_names(&c), ["db__query"]);
}
