//! Configuration of the server roles: flags, their `SWITCHYARD_*` environment twins and an
//! optional TOML file with the same keys, merged (flag > environment > file > default) and
//! validated once at start with errors that name the key.

mod control_plane;
mod kube;
mod worker;

pub use control_plane::{ControlPlaneArgs, MigrateArgs, run_control_plane, run_migrate};
pub use worker::{WorkerArgs, run_worker};

use anyhow::Context as _;
use switchyard_common::seal::SecretKey;

pub fn parse_key(name: &str, value: &str) -> anyhow::Result<SecretKey> {
    SecretKey::from_base64(value).with_context(|| {
        format!(
            "{name} (SWITCHYARD_{}) is invalid",
            name.to_uppercase().replace('-', "_")
        )
    })
}
