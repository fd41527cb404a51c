//! Configuration of the server roles: flags, their `SWITCHYARD_*` environment twins and an
//! optional TOML file with the same keys, merged (flag > environment > file > default) and
//! validated once at start with errors that name the key.

mod control_plane;
mod kube;
mod worker;

pub use control_plane::{ControlPlaneArgs, MigrateArgs, run_control_plane, run_migrate};
pub use worker::{WorkerArgs, run_worker};

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use switchyard_common::seal::SecretKey;

/// Connects to NATS at `url`, with the credentials file `creds` if given (`flag` names its
/// setting in errors), retrying in the background until the server answers. Replies come
/// on `inbox` when given: a dedicated worker's credentials allow it its own prefix only.
pub(crate) async fn connect_nats(
    url: &str,
    creds: Option<&Path>,
    flag: &str,
    inbox: Option<String>,
) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new().retry_on_initial_connect();
    if let Some(path) = creds {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("{flag}: reading {}", path.display()))?;
    }
    if let Some(prefix) = inbox {
        options = options.custom_inbox_prefix(prefix);
    }
    options
        .connect(url)
        .await
        .with_context(|| format!("nats-url {url:?}"))
}

/// A file a setting names, read as text.
pub(crate) fn read_setting_file(flag: &str, path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {}", path.display()))
}

pub fn parse_key(name: &str, value: &str) -> anyhow::Result<SecretKey> {
    SecretKey::from_base64(value).with_context(|| {
        format!(
            "{name} (SWITCHYARD_{}) is invalid",
            name.to_uppercase().replace('-', "_")
        )
    })
}
