//! Property tests over what clients send a worker: arbitrary bodies, header values,
//! session ids, tool names and stored records never panic, and are refused for what they
//! are.

use crate::auth::bearer;
use crate::error::Error;
use crate::http::gate::read_body;
use crate::names::exposed;
use crate::principal::Principal;
use crate::sessions::plausible_id;
use http::HeaderMap;
use proptest::prelude::*;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

proptest! {
    #[test]
    fn any_body_is_read_or_refused_for_what_it_is(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let len = body.len();
        let result = runtime().block_on(read_body(
            &HeaderMap::new(),
            axum::body::Body::from(body),
            1024,
            Duration::from_secs(5),
        ));
        match result {
            Ok((bytes, _)) => prop_assert!(bytes.len() == len && len <= 1024),
            Err(Error::PayloadTooLarge(1024)) => prop_assert!(len > 1024),
            Err(Error::Malformed) => prop_assert!(len <= 1024),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }

    #[test]
    fn any_json_rpc_shaped_body_has_a_head_or_none(id in any::<i64>(), method in "\\PC{0,40}") {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string();
        let (_, head) = runtime()
            .block_on(read_body(&HeaderMap::new(), body.into(), 4096, Duration::from_secs(5)))
            .expect("a JSON object is read");
        let head = head.expect("a head");
        prop_assert_eq!(head.method.as_deref(), Some(method.as_str()));
    }

    #[test]
    fn any_authorization_value_gives_a_token_or_none(v in "\\PC{0,200}") {
        if let Some(t) = bearer(Some(&v)) {
            prop_assert!(!t.is_empty());
            prop_assert!(v.to_ascii_lowercase().starts_with("bearer "));
        }
    }

    #[test]
    fn a_plausible_session_id_is_short_and_plain(id in "\\PC{0,300}") {
        if plausible_id(&id) {
            prop_assert!(!id.is_empty() && id.len() <= 128);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn any_tool_name_is_exposed_as_models_accept(prefix in "[a-z0-9-]{0,24}", name in "\\PC{0,200}") {
        let e = exposed(&prefix, &name);
        prop_assert!(!e.is_empty() && e.len() <= 64, "{e:?}");
        prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{e:?}");
        prop_assert_eq!(e.clone(), exposed(&prefix, &name), "the same name every time");
    }

    #[test]
    fn a_stored_session_owner_loads_only_when_valid(tenant in "\\PC{0,50}", key in "\\PC{0,20}") {
        let record = serde_json::json!({"tenant": tenant, "key_id": key});
        if let Ok(p) = serde_json::from_value::<Principal>(record) {
            prop_assert_eq!(p.tenant.as_str(), tenant.as_str());
            prop_assert_eq!(p.key_id().map(|k| k.as_str()), Some(key.as_str()));
        }
    }
}

proptest! {
    #[test]
    fn any_policy_is_applied_or_ignored_without_panicking(
        tenant in "\\PC{0,45}",
        revision in any::<u64>(),
        keys in proptest::collection::vec("\\PC{0,15}", 0..4),
        connectors in proptest::collection::vec(("\\PC{0,30}", "\\PC{0,60}"), 0..3),
    ) {
        use switchyard_proto::policy::v1 as pb;
        let ring = switchyard_common::seal::Keyring::new(switchyard_common::seal::SecretKey::generate());
        let policies = crate::policy::Policies::new(ring);
        let policy = pb::TenantPolicy {
            tenant: tenant.clone(),
            revision,
            status: pb::Status::Active as i32,
            keys: keys
                .iter()
                .map(|id| pb::KeyVerifier { id: id.clone(), ..Default::default() })
                .collect(),
            connectors: connectors
                .iter()
                .map(|(name, url)| pb::Connector {
                    name: name.clone(),
                    kind: Some(pb::connector::Kind::Mcp(pb::McpConnector {
                        url: url.clone(),
                        headers: Vec::new(),
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let applied = policies.apply(policy);
        let served = policies.get(&tenant);
        let valid = crate::principal::TenantSlug::parse(&tenant).is_ok();
        prop_assert_eq!(served.is_some(), applied && valid);
        if let Some(t) = served {
            prop_assert!(t.keys.len() <= keys.len());
        }
    }
}
