//! A tenant's tier and compute profile through the admin API: an unknown profile is refused
//! naming the field, the isolated tier needs the namespace reconciler (and a Gateway for its
//! routes), and what was set reads back.

use std::collections::BTreeMap;
use switchyard_control_plane::kube::{ComputeProfile, Profiles};
use switchyard_tests::admin::*;
use switchyard_tests::{Stack, violated_field};
use tonic::Code;

#[tokio::test]
async fn tier_and_profile_are_validated_and_kept() {
    let stack = Stack::builder()
        .workers(0)
        .control_plane(|c| {
            c.profiles = Profiles::new(
                BTreeMap::from([(
                    "small".into(),
                    ComputeProfile {
                        workers: 1,
                        ..Default::default()
                    },
                )]),
                None,
            )
            .unwrap();
        })
        .start()
        .await;
    let cp = &stack.cp;
    let mut api = cp.tenants();
    let create = |tier: i32, profile: &str| CreateTenantRequest {
        slug: "acme".into(),
        tier,
        compute_profile: profile.into(),
        ..Default::default()
    };

    let err = api.create_tenant(create(0, "huge")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&err).as_deref(), Some("compute_profile"));
    assert!(
        err.message().contains("small"),
        "names what exists: {}",
        err.message()
    );

    let err = api
        .create_tenant(create(TenantTier::Isolated as i32, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("kube-namespaces"),
        "{}",
        err.message()
    );

    let err = api.create_tenant(create(7, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&err).as_deref(), Some("tier"));

    let t = api
        .create_tenant(create(TenantTier::Shared as i32, "small"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (t.tier, t.compute_profile.as_str()),
        (TenantTier::Shared as i32, "small")
    );

    let err = api
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            tier: Some(TenantTier::Isolated as i32),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = api
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            compute_profile: Some("nope".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&err).as_deref(), Some("compute_profile"));
    // Back to the default profile; nothing else changed, nothing was lost.
    let t = api
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            compute_profile: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.compute_profile, "");
    assert_eq!(t.tier, TenantTier::Shared as i32);
}
