use super::*;

#[test]
fn bounds_out_of_range_are_refused_naming_the_flag() {
    let cases: [(WorkerArgs, &str); 5] = [
        (
            WorkerArgs {
                max_upstream_response_bytes: Some(1024),
                ..Default::default()
            },
            "max-upstream-response-bytes",
        ),
        (
            WorkerArgs {
                max_listed_per_connector: Some(0),
                ..Default::default()
            },
            "max-listed-per-connector",
        ),
        (
            WorkerArgs {
                max_upstream_sessions_per_tenant: Some(0),
                ..Default::default()
            },
            "max-upstream-sessions-per-tenant",
        ),
        (
            WorkerArgs {
                max_headers: Some(2),
                ..Default::default()
            },
            "max-headers",
        ),
        (
            WorkerArgs {
                header_read_timeout: Some(0),
                ..Default::default()
            },
            "header-read-timeout",
        ),
    ];
    for (args, flag) in cases {
        let e = bounds(&args)
            .map(|_| ())
            .and_then(|()| upstream_bounds(&args).map(|_| ()))
            .unwrap_err();
        assert!(e.to_string().contains(flag), "{e} should name {flag}");
    }
    let ok = WorkerArgs {
        max_upstream_response_bytes: Some(65_536),
        max_listed_per_connector: Some(10),
        max_upstream_sessions_per_tenant: Some(3),
        ..Default::default()
    };
    let b = upstream_bounds(&ok).unwrap();
    assert_eq!(
        (
            b.max_response_bytes,
            b.max_listed,
            b.max_sessions_per_tenant
        ),
        (65_536, 10, 3)
    );
}

#[test]
fn session_settings_out_of_range_are_refused_naming_the_flag() {
    let key = switchyard_common::seal::SecretKey::generate().to_base64();
    let args = |max_sessions, session_park_after| WorkerArgs {
        nats_url: Some("nats://localhost:4222".into()),
        policy_key: Some(key.as_str().to_owned()),
        max_sessions,
        session_park_after,
        ..Default::default()
    };
    for (args, flag) in [
        (args(Some(0), None), "max-sessions"),
        (args(None, Some(0)), "session-park-after"),
        (args(None, Some(9)), "session-park-after"),
        (args(None, Some(3601)), "session-park-after"),
    ] {
        let e = args.validate().unwrap_err();
        assert!(e.to_string().contains(flag), "{e} should name {flag}");
    }
    let config = args(Some(5), Some(12)).validate().unwrap().config;
    assert_eq!(
        (config.max_sessions, config.session_park_after),
        (5, std::time::Duration::from_secs(12))
    );
}

#[test]
fn the_public_url_must_be_an_origin() {
    let key = switchyard_common::seal::SecretKey::generate().to_base64();
    let args = |url: &str| WorkerArgs {
        nats_url: Some("nats://localhost:4222".into()),
        policy_key: Some(key.as_str().to_owned()),
        public_url: Some(url::Url::parse(url).unwrap()),
        ..Default::default()
    };
    for bad in [
        "ftp://mcp.example.com",
        "https://mcp.example.com/prefix",
        "https://mcp.example.com/?a=b",
        "https://mcp.example.com/#x",
        "https://user:pw@mcp.example.com",
    ] {
        let e = args(bad).validate().unwrap_err();
        assert!(e.to_string().contains("public-url"), "{bad}: {e}");
    }
    for good in ["https://mcp.example.com", "http://127.0.0.1:8080/"] {
        let config = args(good).validate().unwrap().config;
        assert!(config.public_url.is_some(), "{good}");
    }
}
