//! The admin API's gRPC services: request validation (errors name the field), conversion
//! between protobuf and domain records, and calls into the store. One file per service;
//! `fields` parses request fields, `connector_spec` a connector's settings for create and
//! update alike.

mod audit;
mod audit_export;
mod audit_settings;
mod connector_spec;
mod connector_tools;
mod connectors;
mod daily_usage;
mod fields;
mod fleet;
mod grants;
mod identity_settings;
mod keys;
mod operator_tokens;
mod policy_size;
mod tenants;

#[cfg(test)]
mod proptests;

pub use policy_size::POLICY_MAX_BYTES;

use connector_spec::*;
use fields::*;

use crate::compile::Keys;
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::Store;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_proto::admin::v1 as pb;
use tonic::{Response, Status};

/// State shared by the admin services.
#[derive(Debug, Clone)]
pub struct Admin {
    pub store: Store,
    pub keys: Keys,
    pub guard: UpstreamGuard,
    /// The workers' heartbeats; `None` when no fleet is connected.
    pub fleet: Option<std::sync::Arc<dyn switchyard_bus::Fleet>>,
    /// The compute profiles tenants may name.
    pub profiles: crate::kube::Profiles,
    /// Why the isolated tier is unavailable, if it is.
    pub isolation_unavailable: Option<String>,
    /// The keys audit checkpoints are checked against; empty when none is configured.
    pub audit_keys: crate::audit::checkpoint::Keyring,
    /// The built-in authorization server's grants; `None` when no NATS is connected.
    pub grants: Option<std::sync::Arc<dyn switchyard_bus::CasKv>>,
}

impl Admin {
    /// A tenant's tier from the request: unset is shared; isolated needs the reconciler.
    fn tier(&self, value: i32) -> Result<Tier> {
        match pb::TenantTier::try_from(value) {
            Ok(pb::TenantTier::Unspecified | pb::TenantTier::Shared) => Ok(Tier::Shared),
            Ok(pb::TenantTier::Isolated) => match &self.isolation_unavailable {
                Some(why) => Err(Error::FailedPrecondition(format!(
                    "tier: the isolated tier is not available: {why}"
                ))),
                None => Ok(Tier::Isolated),
            },
            Err(_) => Err(Error::invalid("tier", "must be shared or isolated")),
        }
    }

    /// A compute profile name from the request: empty (the default) or one defined.
    fn compute_profile(&self, name: &str) -> Result<String> {
        if !name.is_empty() && self.profiles.get(name).is_none() {
            return Err(Error::invalid(
                "compute_profile",
                format!(
                    "no profile {name:?}; this control plane defines: {}",
                    self.profiles.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(name.to_owned())
    }
}

type Reply<T> = std::result::Result<Response<T>, Status>;

fn reply<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}
