//! Types both the control plane and the workers use: identifiers that can only hold valid
//! values, the error code every API maps from, secret sealing, and API key handling.

pub mod apikey;
pub mod error;
pub mod ids;
pub mod logfilter;
pub mod netguard;
pub mod pins;
pub mod seal;
pub mod trace;

pub use error::ErrorCode;
pub use ids::{ConnectorName, IdError, KeyId, TenantSlug};
