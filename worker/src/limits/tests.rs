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

/// Tries to open a session of `t` under `max`; the returned places hold it while open.
fn open(a: &Admission, t: &str, max: u32) -> Result<Admitted, Refusal> {
    let mut places = a.admit_other(t, 100, true)?;
    a.open_session(t, max, &mut places)?;
    Ok(places)
}

#[test]
fn sessions_count_across_the_fleet() {
    let a = Admission::new(10);
    a.set_fleet(2, HashMap::from([("t".to_owned(), 2)]));
    drop(open(&a, "t", 3).unwrap());
    a.session_opened("t", "s1");
    assert_eq!(open(&a, "t", 3).unwrap_err(), Refusal::Sessions);
    a.session_closed("s1");
    drop(open(&a, "t", 3).unwrap());
    a.session_opened("t", "s2");
    a.retain_sessions(|id| id != "s2");
    drop(open(&a, "t", 3).unwrap());
    assert!(open(&a, "t", 0).is_ok(), "zero is unlimited");
}

#[test]
fn sessions_being_opened_count_until_they_are_open_or_gone() {
    let a = Admission::new(10);
    // Three at once under a cap of two: the third is refused before any is open.
    let first = open(&a, "t", 2).unwrap();
    let second = open(&a, "t", 2).unwrap();
    assert_eq!(open(&a, "t", 2).unwrap_err(), Refusal::Sessions);
    // One opens (counted as open, then its places go); one fails: a place is free again.
    a.session_opened("t", "s1");
    drop(first);
    drop(second);
    let third = open(&a, "t", 2).unwrap();
    assert_eq!(open(&a, "t", 2).unwrap_err(), Refusal::Sessions);
    drop(third);
}

#[test]
fn other_requests_take_the_tenants_places_before_the_workers() {
    let a = Admission::new(3);
    let held: Vec<_> = (0..2)
        .map(|_| a.admit_other("flood", 2, true).unwrap())
        .collect();
    assert_eq!(
        a.admit_other("flood", 2, true).unwrap_err(),
        Refusal::Others
    );
    // The flooding tenant holds two of the worker's three places; another tenant still
    // gets the third.
    assert_eq!(a.in_flight(), 2);
    let calm = a.admit_other("calm", 2, true).unwrap();
    assert_eq!(
        a.admit_other("calm", 2, true).unwrap_err(),
        Refusal::Saturated
    );
    // A stream takes none of the worker's places.
    let stream = a.admit_other("calm", 2, false).unwrap();
    assert_eq!(a.in_flight(), 3);
    drop((held, calm, stream));
    assert_eq!(a.in_flight(), 0);
}
