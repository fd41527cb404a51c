//! `switchyard health`: checks that a deployment serves, from inside it (the Helm chart's
//! test pod) or from a script. Each admin API is asked through grpc.health.v1 (which needs
//! no operator token) and each readiness URL must answer 200; every check is reported, and
//! the command fails if any did.

use anyhow::bail;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// An admin API to check, e.g. http://switchyard-control-plane:50051 (repeatable).
    #[arg(long = "admin", value_name = "URL")]
    admin: Vec<String>,
    /// A URL that must answer 200, e.g. http://switchyard-worker:9091/readyz (repeatable).
    #[arg(long = "ready", value_name = "URL")]
    ready: Vec<String>,
    /// Seconds each check may take.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

async fn admin(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner();
    match answer.status() {
        ServingStatus::Serving => Ok(()),
        other => bail!("answers {}", other.as_str_name()),
    }
}

async fn ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let status = http.get(url).send().await?.status();
    if !status.is_success() {
        bail!("answers {status}");
    }
    Ok(())
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    if args.admin.is_empty() && args.ready.is_empty() {
        bail!("nothing to check: give --admin URL and/or --ready URL");
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let mut failed = 0;
    for url in &args.admin {
        match admin(url, timeout).await {
            Ok(()) => println!("ok    admin {url}"),
            Err(e) => {
                failed += 1;
                println!("FAIL  admin {url}: {e:#}");
            }
        }
    }
    for url in &args.ready {
        match ready(&http, url).await {
            Ok(()) => println!("ok    ready {url}"),
            Err(e) => {
                failed += 1;
                println!("FAIL  ready {url}: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} checks failed",
            args.admin.len() + args.ready.len()
        );
    }
    Ok(())
}
