use super::*;
use crate::kube::GatewayRef;
use std::time::Duration;

pub(crate) fn settings() -> KubeSettings {
    KubeSettings {
        namespace_prefix: "sy-t-".into(),
        lease_namespace: "switchyard".into(),
        identity: "cp-0".into(),
        worker_image: "registry.example.com/switchyard:1.0".into(),
        nats_url: "nats://nats.nats:4222".into(),
        nats_port: 4222,
        public_url: Some("https://mcp.example.com".into()),
        upstream_allow: vec!["10.50.0.0/16".into()],
        ingress_namespace: "ingress-nginx".into(),
        monitoring_namespace: "monitoring".into(),
        gateway: GatewayRef::parse("gateways/public/https"),
        resync: Duration::from_secs(300),
        nats_signer: None,
        worker_env: Vec::new(),
    }
}

fn tenant(profile: &ComputeProfile, suspended: bool) -> Tenant<'_> {
    Tenant {
        slug: "acme",
        suspended,
        profile,
        policy_key: "a2V5",
        nats_creds: None,
    }
}

#[test]
fn every_object_is_labelled_and_in_the_tenants_namespace() {
    let profile = ComputeProfile::default();
    let s = settings();
    let t = tenant(&profile, false);
    let all: Vec<Object> = base(&s, &t)
        .into_iter()
        .chain(pool(&s, &t))
        .chain(route(&s, &t))
        .collect();
    assert_eq!(all.len(), 11);
    for o in &all {
        let labels = &o.body["metadata"]["labels"];
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1, "{}", o.name);
        assert_eq!(labels[TENANT_LABEL], "acme", "{}", o.name);
        assert_eq!(o.body["metadata"]["name"], o.name.as_str());
        match &o.namespace {
            Some(ns) => assert_eq!(ns, "sy-t-acme"),
            None => assert_eq!(o.resource.kind, "Namespace"),
        }
        assert_eq!(o.body["kind"], o.resource.kind.as_str());
    }
}

#[test]
fn the_profile_sets_quota_limits_and_pool_size() {
    let profile = ComputeProfile {
        pods: 7,
        workers: 3,
        limits_memory: "3Gi".into(),
        container_cpu_limit: "1500m".into(),
        ..Default::default()
    };
    let s = settings();
    let t = tenant(&profile, false);
    let b = base(&s, &t);
    let quota = &b[1].body["spec"]["hard"];
    assert_eq!(quota["pods"], "7");
    assert_eq!(quota["limits.memory"], "3Gi");
    assert_eq!(b[2].body["spec"]["limits"][0]["max"]["cpu"], "1500m");
    let p = pool(&s, &t);
    let deployment = &p[1].body;
    assert_eq!(deployment["spec"]["replicas"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["cpu"], "1500m");
    assert_eq!(p[3].body["spec"]["minAvailable"], 2);
    assert!(p[3].body["spec"].get("maxUnavailable").is_none());
}

#[test]
fn a_suspended_pool_scales_to_zero() {
    let profile = ComputeProfile::default();
    let p = pool(&settings(), &tenant(&profile, true));
    assert_eq!(p[1].body["spec"]["replicas"], 0);
}

#[test]
fn dedicated_workers_serve_only_their_tenant_with_its_own_key() {
    let profile = ComputeProfile::default();
    let p = pool(&settings(), &tenant(&profile, false));
    assert_eq!(p[0].body["data"]["policy-key"], "YTJWNQ==");
    let env = &p[1].body["spec"]["template"]["spec"]["containers"][0]["env"];
    let get = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(get("SWITCHYARD_ONLY_TENANT")["value"], "acme");
    assert_eq!(
        get("SWITCHYARD_POLICY_KEY")["valueFrom"]["secretKeyRef"]["name"],
        POOL
    );
    assert_eq!(get("SWITCHYARD_HTTP_LISTEN")["value"], "0.0.0.0:8080");
    assert_eq!(
        get("SWITCHYARD_NATS_CREDS"),
        Value::Null,
        "no signer, no credentials"
    );
    assert_eq!(p[1].body["spec"]["template"]["spec"]["volumes"], json!([]));
}

#[test]
fn dedicated_workers_get_the_shared_workers_settings() {
    let profile = ComputeProfile::default();
    let s = KubeSettings {
        worker_env: vec![
            ("SWITCHYARD_MAX_HEADERS".into(), "32".into()),
            ("SWITCHYARD_TRUSTED_PROXIES".into(), "10.0.0.0/8".into()),
        ],
        ..settings()
    };
    let p = pool(&s, &tenant(&profile, false));
    let env = p[1].body["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(value("SWITCHYARD_MAX_HEADERS"), Some(json!("32")));
    assert_eq!(
        value("SWITCHYARD_TRUSTED_PROXIES"),
        Some(json!("10.0.0.0/8"))
    );
    assert_eq!(value("SWITCHYARD_ONLY_TENANT"), Some(json!("acme")));
}

#[test]
fn dedicated_workers_get_their_nats_credentials_from_their_secret() {
    let profile = ComputeProfile::default();
    let mut t = tenant(&profile, false);
    t.nats_creds = Some("CREDS");
    let p = pool(&settings(), &t);
    assert_eq!(p[0].body["data"]["nats-creds"], "Q1JFRFM=");
    let spec = &p[1].body["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let creds = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SWITCHYARD_NATS_CREDS")
        .unwrap();
    assert_eq!(creds["value"], "/etc/switchyard/nats/nats.creds");
    assert_eq!(spec["volumes"][0]["secret"]["secretName"], POOL);
    assert_eq!(
        spec["volumes"][0]["secret"]["items"][0]["key"],
        "nats-creds"
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/etc/switchyard/nats"
    );
    assert_eq!(container["volumeMounts"][0]["readOnly"], true);
}

#[test]
fn the_route_sends_only_the_tenants_path_to_its_pool() {
    let profile = ComputeProfile::default();
    let s = settings();
    let r = route(&s, &tenant(&profile, false)).unwrap();
    assert_eq!(
        r.body["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/t/acme/"
    );
    assert_eq!(r.body["spec"]["parentRefs"][0]["sectionName"], "https");
    let no_gateway = KubeSettings { gateway: None, ..s };
    assert!(route(&no_gateway, &tenant(&profile, false)).is_none());
}

#[test]
fn workers_reach_only_dns_nats_and_public_addresses() {
    let profile = ComputeProfile::default();
    let b = base(&settings(), &tenant(&profile, false));
    assert_eq!(b[3].body["spec"]["podSelector"], json!({}));
    let egress = b[4].body["spec"]["egress"].as_array().unwrap().clone();
    assert_eq!(egress[1]["ports"][0]["port"], 4222);
    let except = &egress[2]["to"][0]["ipBlock"]["except"];
    assert!(
        except
            .as_array()
            .unwrap()
            .contains(&json!("169.254.0.0/16"))
    );
    assert_eq!(egress[3]["to"][0]["ipBlock"]["cidr"], "10.50.0.0/16");
    let ingress = &b[4].body["spec"]["ingress"][0];
    assert_eq!(
        ingress["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
}
