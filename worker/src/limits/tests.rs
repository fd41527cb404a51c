use super::*;

const LIMITS: Limits = Limits {
    tenant_rate: Rate {
        per_second: 10,
        burst: 4,
    },
    key_rate: Rate {
        per_second: 0,
        burst: 0,
    },
    max_concurrent: 0,
};

#[test]
fn a_tenant_gets_its_burst_then_waits_about_one_period() {
    let a = Admission::new(100);
    for _ in 0..4 {
        assert!(a.admit("t", "k", LIMITS).is_ok());
    }
    match a.admit("t", "k", LIMITS) {
        Err(Refusal::Rate {
            scope: RateScope::Tenant,
            retry_after,
        }) => assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}"),
        other => panic!("{other:?}"),
    }
    // Another tenant is not affected.
    assert!(a.admit("u", "k", LIMITS).is_ok());
}

#[test]
fn each_worker_gets_its_share_of_the_fleet_rate() {
    let a = Admission::new(100);
    a.set_fleet(2, HashMap::new());
    // A burst of 4 split between two workers: 2 here.
    assert!(a.admit("t", "k", LIMITS).is_ok());
    assert!(a.admit("t", "k", LIMITS).is_ok());
    match a.admit("t", "k", LIMITS) {
        // Half the rate: a cell every 200 ms.
        Err(Refusal::Rate { retry_after, .. }) => {
            assert!(retry_after > Duration::from_millis(100), "{retry_after:?}");
            assert!(retry_after <= Duration::from_millis(200), "{retry_after:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_over_its_rate_does_not_spend_the_tenants() {
    let a = Admission::new(100);
    let limits = Limits {
        key_rate: Rate {
            per_second: 1,
            burst: 1,
        },
        ..LIMITS
    };
    assert!(a.admit("t", "k", limits).is_ok());
    for _ in 0..10 {
        assert!(matches!(
            a.admit("t", "k", limits),
            Err(Refusal::Rate {
                scope: RateScope::Key,
                ..
            })
        ));
    }
    // The tenant's burst of 4 had one cell taken; its other keys get the other three.
    for key in ["k2", "k3", "k4"] {
        assert!(a.admit("t", key, limits).is_ok());
    }
    assert!(matches!(
        a.admit("t", "k5", limits),
        Err(Refusal::Rate {
            scope: RateScope::Tenant,
            ..
        })
    ));
}

#[test]
fn resizing_a_gate_counts_the_places_in_use() {
    let a = Admission::new(100);
    let limits = Limits {
        max_concurrent: 4,
        tenant_rate: Rate {
            per_second: 0,
            burst: 0,
        },
        ..LIMITS
    };
    let held: Vec<_> = (0..3).map(|_| a.admit("t", "k", limits).unwrap()).collect();
    // Two workers: a share of 2, and 3 are in use here.
    a.set_fleet(2, HashMap::new());
    assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
    drop(held);
    let now: Vec<_> = (0..2).map(|_| a.admit("t", "k", limits).unwrap()).collect();
    assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
    drop(now);
    // Back to one worker: 4 again.
    a.set_fleet(1, HashMap::new());
    let all: Vec<_> = (0..4).map(|_| a.admit("t", "k", limits).unwrap()).collect();
    assert_eq!(all.len(), 4);
    assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
}

#[test]
fn concurrency_is_capped_per_tenant_and_freed_on_drop() {
    let a = Admission::new(100);
    let limits = Limits {
        max_concurrent: 2,
        tenant_rate: Rate {
            per_second: 0,
            burst: 0,
        },
        ..LIMITS
    };
    let one = a.admit("t", "k", limits).unwrap();
    let _two = a.admit("t", "k", limits).unwrap();
    assert_eq!(a.admit("t", "k", limits).unwrap_err(), Refusal::Concurrency);
    assert!(
        a.admit("u", "k", limits).is_ok(),
        "other tenants unaffected"
    );
    drop(one);
    assert!(a.admit("t", "k", limits).is_ok());
}

#[test]
fn the_worker_cap_comes_after_the_tenant_caps() {
    let a = Admission::new(1);
    let unlimited = Limits {
        tenant_rate: Rate {
            per_second: 0,
            burst: 0,
        },
        ..LIMITS
    };
    let _held = a.admit("t", "k", unlimited).unwrap();
    assert_eq!(
        a.admit("u", "k", unlimited).unwrap_err(),
        Refusal::Saturated
    );
    assert_eq!(a.in_flight(), 1);
}

#[test]
fn sessions_count_across_the_fleet() {
    let a = Admission::new(10);
    a.set_fleet(2, HashMap::from([("t".to_owned(), 2)]));
    assert!(a.may_open_session("t", 3).is_ok());
    a.session_opened("t", "s1");
    assert_eq!(a.may_open_session("t", 3).unwrap_err(), Refusal::Sessions);
    a.session_closed("s1");
    assert!(a.may_open_session("t", 3).is_ok());
    a.session_opened("t", "s2");
    a.retain_sessions(|id| id != "s2");
    assert!(a.may_open_session("t", 3).is_ok());
    assert!(a.may_open_session("t", 0).is_ok(), "zero is unlimited");
}
