//! Operator commands: thin gRPC clients of the admin API that print tables or JSON, one
//! file per service.

mod audit;
mod audit_file;
mod connector;
mod connector_tools;
mod fleet;
mod grant;
mod key;
mod tenant;
mod tenant_audit;
mod tenant_identity;
mod token;

pub use audit::{AuditCommand, audit};
pub use connector::{ConnectorCommand, connector};
pub use fleet::{FleetCommand, fleet};
pub use grant::{GrantCommand, grant};
pub use key::{KeyCommand, key};
pub use tenant::{TenantCommand, tenant};
pub use token::{TokenCommand, token};

use crate::output::{self, Format};
use anyhow::{Context as _, anyhow, bail};
use std::path::PathBuf;
use switchyard_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Admin API address of the control plane.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Operator token [default: $SWITCHYARD_TOKEN, else <data-dir>/operator-token].
    #[arg(long, global = true, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        env = "SWITCHYARD_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: Format,
    /// Data directory of `switchyard dev`.
    #[arg(long, global = true, env = "SWITCHYARD_DATA_DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
}

type Auth = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Authed = InterceptedService<Channel, Auth>;

impl GlobalArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_owned());
        }
        let path = self.data_dir.join("operator-token");
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.trim().to_owned()),
            Err(_) => bail!(
                "no operator token: pass --token, set SWITCHYARD_TOKEN, or run `switchyard dev`, \
                 which writes one to {}",
                path.display()
            ),
        }
    }

    async fn channel(&self) -> anyhow::Result<Authed> {
        let token = self.token()?;
        let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
            anyhow!("the operator token contains characters not allowed in a header")
        })?;
        let channel = tonic::transport::Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {:?} is not a valid URL", self.server))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.server))?;
        let auth: Auth = Box::new(move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        });
        Ok(InterceptedService::new(channel, auth))
    }
}

/// The time `--expires-in` (e.g. 30d) names, from now.
pub(super) fn expire_time(
    expires_in: Option<&str>,
) -> anyhow::Result<Option<prost_types::Timestamp>> {
    let Some(e) = expires_in else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    Ok(Some(prost_types::Timestamp {
        seconds: now + key::parse_duration(e)?,
        nanos: 0,
    }))
}

/// Turns a gRPC error into the message the server gave, with its code.
pub(super) fn server_error(status: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", status.code(), status.message())
}

pub(super) fn print_done(format: Format, message: &str) {
    match format {
        Format::Json => println!("{}", serde_json::json!({ "ok": true, "message": message })),
        Format::Table | Format::Csv => println!("{message}"),
    }
}
