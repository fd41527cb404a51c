//! The Switchyard control plane: the admin API (gRPC) over a PostgreSQL or SQLite store,
//! the policy compiler, and the transactional outbox of policy changes.

pub mod api;
pub mod audit;
pub mod auth;
pub mod compile;
pub mod error;
pub mod kube;
pub mod metrics;
pub mod model;
pub mod nats_creds;
pub mod publisher;
pub mod refusals;
pub mod server;
pub mod sightings;
pub mod store;
pub mod usage;

pub use error::{Error, Result};
pub use server::{Config, KubeConfig, Listeners, serve};
pub use store::Store;
