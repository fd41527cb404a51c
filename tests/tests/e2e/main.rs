//! End-to-end tests: one binary, so the suite links once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_api;
mod attacks;
mod audit;
mod audit_arguments;
mod audit_checkpoints;
mod audit_filters;
mod audit_redelivery;
mod audit_refusals;
mod bad_input;
mod bridging;
mod bus_contract;
mod cross_worker;
mod isolated_tier;
mod limits;
mod monitoring;
mod namespaces;
mod ordering;
mod parking;
mod placement;
mod probes;
mod publisher;
mod python_sdk;
mod reflection_health;
mod resilience;
mod secrets;
mod store_contract;
mod store_publish;
mod tool_pins;
mod upstream_bounds;
mod upstream_restart;
mod upstream_resume;
mod upstream_sessions;
mod usage_fold;
mod worker;
