//! `switchyard dev`: the control plane on SQLite under a data directory, with keys and an
//! operator token generated there on first start, so a first try needs no setup.

use anyhow::Context as _;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::Path;
use switchyard_common::netguard::UpstreamGuard;
use switchyard_common::seal::{Keyring, SecretKey};
use switchyard_control_plane::auth::generate_operator_token;
use switchyard_control_plane::{Store, compile::Keys};

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address of the admin API.
    #[arg(
        long,
        env = "SWITCHYARD_GRPC_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    grpc_listen: SocketAddr,
    /// Address of the MCP endpoint (`/t/{tenant}/mcp`).
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// CIDRs connectors may point to despite the private-range guard [default: loopback].
    #[arg(
        long,
        env = "SWITCHYARD_UPSTREAM_ALLOW",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    upstream_allow: Vec<IpNet>,
    /// Write a new operator token when the data directory's token file is gone (the old
    /// tokens stay valid until revoked with `switchyard token revoke`).
    #[arg(long)]
    new_operator_token: bool,
}

/// Writes `contents` to a new file readable only by its owner.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a key file, creating it with a fresh key on first start.
fn key_file(path: &Path) -> anyhow::Result<SecretKey> {
    if !path.exists() {
        write_private(
            path,
            &format!("{}\n", SecretKey::generate().to_base64().as_str()),
        )?;
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::from_base64(&text).with_context(|| format!("key file {}", path.display()))
}

/// Reads the operator token file, creating it on first start (or when `mint`); says
/// whether it was new. A store that has tokens already gets no new one unasked: a lost
/// file must not quietly add a second valid token.
async fn token_file(path: &Path, store: &Store, mint: bool) -> anyhow::Result<(String, bool)> {
    if path.exists() {
        let token =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((token.trim().to_owned(), false));
    }
    if !mint && store.has_operator_tokens().await? {
        anyhow::bail!(
            "{} is gone, but this data directory has operator tokens already. Use one of them \
             (--token or SWITCHYARD_TOKEN; `switchyard token create` makes more), or start with \
             --new-operator-token to write a new one",
            path.display()
        );
    }
    let token = generate_operator_token();
    write_private(path, &format!("{token}\n"))?;
    Ok((token, true))
}

/// Runs until Ctrl-C or SIGTERM; state lives in `data_dir` (the global `--data-dir`).
pub async fn run(args: DevArgs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    let master = key_file(&dir.join("master-key"))?;
    let policy = key_file(&dir.join("policy-key"))?;
    let audit_signer = switchyard_control_plane::audit::checkpoint::Signer::from_base64(
        key_file(&dir.join("audit-signing-key"))?
            .to_base64()
            .as_str(),
    )
    .map_err(|e| anyhow::anyhow!("audit-signing-key {e}"))?;
    let db = dir.join("switchyard.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    store.migrate().await.context("applying migrations")?;
    let token_path = dir.join("operator-token");
    let (token, new_token) = token_file(&token_path, &store, args.new_operator_token).await?;

    let listener = tokio::net::TcpListener::bind(args.grpc_listen)
        .await
        .with_context(|| format!("binding grpc-listen {}", args.grpc_listen))?;
    let addr = listener.local_addr()?;
    let http = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding http-listen {}", args.http_listen))?;
    let http_addr = http.local_addr()?;
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the metrics listener")?;
    let metrics_addr = metrics.local_addr()?;
    let token_note = if new_token {
        "created"
    } else {
        "kept from an earlier start"
    };
    println!(
        "Switchyard dev is running.\n\
         \x20 admin API (gRPC):  http://{addr}\n\
         \x20 MCP endpoints:     http://{http_addr}/t/<tenant>/mcp\n\
         \x20 health, metrics:   http://{metrics_addr}/metrics\n\
         \x20 data directory:    {dir}\n\
         \x20 operator token:    {token_path} ({token_note}; the CLI reads it from there)\n\n\
         Try:\n\
         \x20 switchyard tenant create acme\n\
         \x20 switchyard connector add --tenant acme --name everything --url http://127.0.0.1:3001/mcp\n\
         \x20 switchyard key create --tenant acme\n\
         \x20 then point an MCP client at http://{http_addr}/t/acme/mcp with `Authorization: Bearer <key>`\n\
         With grpcurl:\n\
         \x20 grpcurl -plaintext -H \"authorization: Bearer $(cat {token_path})\" {addr} list",
        dir = dir.display(),
        token_path = token_path.display(),
    );
    let buses = switchyard_bus::Buses::in_memory();
    let mut worker_config = switchyard_worker::Config::new(Keyring::new(policy.clone()));
    // The gateway's own endpoint is refused as an upstream, on both sides.
    let own = |g: UpstreamGuard| {
        let (ip, port) = (args.http_listen.ip(), args.http_listen.port());
        let g = g.with_own_host(&ip.to_string(), port);
        if ip.is_loopback() {
            g.with_own_host("localhost", port)
        } else {
            g
        }
    };
    worker_config.upstream_guard = own(UpstreamGuard::new(args.upstream_allow.clone()));
    let config = switchyard_control_plane::Config {
        keys: Keys {
            master: Keyring::new(master),
            policy: Keyring::new(policy),
        },
        upstream_guard: own(UpstreamGuard::new(args.upstream_allow.clone())),
        bootstrap_token: Some(token),
        policy_bus: Some(buses.policy.clone()),
        usage_bus: Some(buses.usage.clone()),
        tool_bus: Some(buses.tools.clone()),
        refusal_bus: Some(buses.refusals.clone()),
        grants: Some(buses.grants.grants.clone()),
        fleet: Some(buses.fleet.clone()),
        profiles: Default::default(),
        kube: None,
        audit_retention: Some(switchyard_control_plane::audit::retention::days(
            switchyard_control_plane::audit::retention::DEFAULT_DAYS,
        )),
        audit_signer: Some(audit_signer),
        audit_checkpoint_every: switchyard_control_plane::audit::checkpoint::DEFAULT_EVERY,
        audit_previous_keys: Vec::new(),
    };
    // Both stop on the same signal, which the control plane's shutdown passes on to the
    // worker.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(switchyard_worker::run(
        worker_config,
        http,
        metrics,
        buses,
        {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        },
    ));
    let listeners = switchyard_control_plane::Listeners {
        grpc: listener,
        metrics: None,
    };
    let control = switchyard_control_plane::serve(listeners, store, config, async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    control.await?;
    worker.await??;
    Ok(())
}
