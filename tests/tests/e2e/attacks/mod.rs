//! What a hostile tenant or a careless operator would try, one module per attack: each
//! asserts the platform gives nothing away and another tenant notices nothing.

mod connections;
mod fairness;
mod guessing;
mod nats_credentials;
mod operator_tokens;
mod poison;
mod request_ids;
mod revocation;
mod subscriptions;
mod upstream_sessions;
mod url_change;
