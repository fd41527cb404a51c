use super::*;

#[test]
fn credential_refusals_carry_a_bearer_challenge() {
    let missing = Error::MissingCredential.response(Value::Null);
    assert_eq!(
        missing.headers()[http::header::WWW_AUTHENTICATE],
        "Bearer realm=\"switchyard\""
    );
    let invalid = Error::InvalidCredential.response(Value::Null);
    assert_eq!(
        invalid.headers()[http::header::WWW_AUTHENTICATE],
        "Bearer realm=\"switchyard\", error=\"invalid_token\""
    );
    let at = "resource_metadata=\"https://m.example/.well-known/oauth-protected-resource/t/a/mcp\"";
    let pointed = Error::InvalidCredential.response_at(Value::Null, Some(at));
    assert_eq!(
        pointed.headers()[http::header::WWW_AUTHENTICATE],
        format!("Bearer realm=\"switchyard\", {at}, error=\"invalid_token\"").as_str()
    );
    let scope = Error::InsufficientScope("groups".into()).response_at(Value::Null, Some(at));
    assert_eq!(scope.status(), 403);
    assert!(
        scope.headers()[http::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .ends_with("error=\"insufficient_scope\"")
    );
    for e in [
        Error::MissingCredential,
        Error::InsufficientScope(String::new()),
    ] {
        assert!(e.challenges(), "{e:?}");
    }
    assert!(!Error::Draining.challenges());
    assert!(
        Error::Suspended(String::new())
            .response_at(Value::Null, Some(at))
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_none()
    );
}
