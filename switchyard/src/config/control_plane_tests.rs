//! The control plane role's settings: defaults, bounds and the chart's rendering.

use super::*;

#[test]
fn audit_retention_defaults_to_a_year_and_refuses_days_out_of_range() {
    assert_eq!(
        audit_retention(None).unwrap(),
        std::time::Duration::from_secs(365 * 86_400)
    );
    assert_eq!(
        audit_retention(Some(7)).unwrap(),
        std::time::Duration::from_secs(7 * 86_400)
    );
    for bad in [0, 36_501] {
        let e = audit_retention(Some(bad)).unwrap_err();
        assert!(e.to_string().contains("audit-retention-days"), "{bad}: {e}");
    }
}

#[test]
fn the_public_url_must_name_an_http_host() {
    let guard = || UpstreamGuard::new(Vec::new());
    for bad in ["ftp://mcp.example.com/", "unix:/run/mcp.sock"] {
        let url = bad.parse().unwrap();
        let e = own_guard(guard(), Some(&url)).unwrap_err();
        assert!(e.to_string().contains("public-url"), "{bad}: {e}");
    }
    let url = "https://mcp.example.com".parse().unwrap();
    let g = own_guard(guard(), Some(&url)).unwrap();
    assert!(g.is_own_host("mcp.example.com", 443));
    assert!(
        !own_guard(guard(), None)
            .unwrap()
            .is_own_host("mcp.example.com", 443)
    );
}
use switchyard_common::seal::SecretKey;

fn key() -> String {
    SecretKey::generate().to_base64().to_string()
}

#[test]
fn file_fills_what_flags_leave_unset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.toml");
    std::fs::write(
        &path,
        format!(
            "database-url = \"postgres://file/db\"\ngrpc-listen = \"127.0.0.1:6000\"\n\
             master-key = \"{}\"\npolicy-key = \"{}\"\n",
            key(),
            key()
        ),
    )
    .unwrap();
    let args = ControlPlaneArgs {
        database_url: Some("postgres://flag/db".into()),
        config: Some(path),
        ..Default::default()
    };
    let s = args.validate().unwrap();
    assert_eq!(s.database_url, "postgres://flag/db");
    assert_eq!(s.grpc_listen, "127.0.0.1:6000".parse().unwrap());
}

#[test]
fn unknown_file_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.toml");
    std::fs::write(&path, "databse-url = \"x\"\n").unwrap();
    let err = ControlPlaneArgs {
        config: Some(path),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(format!("{err:#}").contains("databse-url"), "{err:#}");
}

#[test]
fn bad_keys_are_named() {
    let err = ControlPlaneArgs {
        database_url: Some("postgres://x/y".into()),
        master_key: Some("dG9vIHNob3J0".into()),
        policy_key: Some(key()),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(format!("{err:#}").contains("master-key"), "{err:#}");
    let err = ControlPlaneArgs {
        database_url: Some("postgres://x/y".into()),
        policy_key: Some(key()),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(format!("{err:#}").contains("master-key"), "{err:#}");
}

#[test]
fn previous_audit_keys_are_checked_and_the_bad_one_named() {
    let public = |seed: u8| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let signer = Signer::from_base64(&b64.encode([seed; 32])).unwrap();
        b64.encode(signer.public().as_bytes())
    };
    let args = |keys: Vec<String>| ControlPlaneArgs {
        database_url: Some("postgres://x/y".into()),
        master_key: Some(key()),
        policy_key: Some(key()),
        audit_previous_public_keys: Some(keys),
        ..Default::default()
    };
    let s = args(vec![public(1), public(2)]).validate().unwrap();
    assert_eq!(s.config.audit_previous_keys.len(), 2);
    let err = args(vec![public(1), "c2hvcnQ=".into()])
        .validate()
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("audit-previous-public-keys") && err.contains("key 2"),
        "{err}"
    );
}

mod chart_tests {
    use super::*;

    /// The control-plane.toml the Helm chart renders (its snapshot with every profile).
    fn rendered_by_the_chart() -> String {
        let snapshot = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/chart/isolation.yaml"
        ))
        .unwrap();
        let mut lines = snapshot
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("control-plane.toml:"))
            .skip(1);
        let first = lines.next().unwrap();
        let indent = first.len() - first.trim_start().len();
        std::iter::once(first)
            .chain(
                lines.take_while(|l| {
                    l.trim().is_empty() || l.len() - l.trim_start().len() >= indent
                }),
            )
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_charts_configuration_file_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control-plane.toml");
        std::fs::write(&path, rendered_by_the_chart()).unwrap();
        let args = ControlPlaneArgs {
            config: Some(path),
            ..Default::default()
        };
        let file = read_file(args.config.as_ref().unwrap()).unwrap();
        let profiles = crate::config::kube::profiles(&file).unwrap();
        assert_eq!(profiles.get("").unwrap().workers, 1, "small is the default");
        assert_eq!(profiles.get("large").unwrap().pods, 40);
        assert_eq!(profiles.get("default").unwrap().pods, 6);
        let env = crate::config::kube::worker_env(file.kube_worker_env.unwrap()).unwrap();
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(value("SWITCHYARD_MAX_HEADERS"), Some("64"));
        assert_eq!(
            value("SWITCHYARD_MAX_UPSTREAM_SESSIONS_PER_TENANT"),
            Some("1000")
        );
    }
}
