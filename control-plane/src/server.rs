//! Runs the admin API on a listener the caller bound: the admin services (tenants,
//! connectors, keys, fleet) behind operator authentication, plus gRPC reflection and
//! grpc.health.v1; and health and metrics on a second listener, if given.

use crate::api::Admin;
use crate::auth::{MIN_TOKEN_LEN, OperatorAuth, hash_token};
use crate::compile::Keys;
use crate::error::{Error, Result};
use crate::kube::lease::Lease;
use crate::kube::reconciler::Reconciler;
use crate::kube::{KubeSettings, Profiles};
use crate::metrics::{CallMetricsLayer, Metrics, serve_metrics};
use crate::publisher::Publisher;
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use switchyard_bus::{PolicyBus, ToolBus, UsageBus};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_proto::admin::v1 as pb;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// What the control plane needs besides its listener and store, validated at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub keys: Keys,
    pub upstream_guard: UpstreamGuard,
    /// An operator token to accept from the start; only its hash is stored.
    pub bootstrap_token: Option<String>,
    /// Where compiled policies are published; `None` leaves changes in the outbox.
    pub policy_bus: Option<Arc<dyn PolicyBus>>,
    /// Where workers report usage; `None` leaves last-used times and counts unset.
    pub usage_bus: Option<Arc<UsageBus>>,
    /// Where workers report tool definitions they hold no pin for; `None` pins nothing.
    pub tool_bus: Option<Arc<ToolBus>>,
    /// Where workers report refusals, tallied; `None` leaves them off the audit trail.
    pub refusal_bus: Option<Arc<switchyard_bus::RefusalBus>>,
    /// The workers' heartbeats, shown by the fleet service.
    pub fleet: Option<Arc<dyn switchyard_bus::Fleet>>,
    /// The built-in authorization server's grants, listed and revoked by the grant
    /// service; `None`: it answers unavailable.
    pub grants: Option<Arc<dyn switchyard_bus::CasKv>>,
    /// The compute profiles tenants may name.
    pub profiles: Profiles,
    /// Tenant namespaces on Kubernetes (`--kube-namespaces`); `None`: not reconciled.
    pub kube: Option<KubeConfig>,
    /// How long audit records are kept; `None` keeps them (nothing is removed).
    pub audit_retention: Option<std::time::Duration>,
    /// The key audit checkpoints are signed with; `None` signs none.
    pub audit_signer: Option<crate::audit::checkpoint::Signer>,
    /// How often chain heads are signed.
    pub audit_checkpoint_every: std::time::Duration,
    /// Public keys of signing keys used before the current one, which checkpoints signed
    /// before a rotation are checked against.
    pub audit_previous_keys: Vec<ed25519_dalek::VerifyingKey>,
}

/// What the namespace reconciler needs: a client of the cluster and its settings.
#[derive(Clone)]
pub struct KubeConfig {
    pub client: kube::Client,
    pub settings: KubeSettings,
}

impl std::fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConfig")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The name of the reconciler's Lease.
const LEASE: &str = "switchyard-reconciler";

/// Stores the bootstrap token's hash, if one is configured.
pub async fn install_bootstrap_token(store: &Store, token: Option<&str>) -> Result<()> {
    let Some(token) = token else { return Ok(()) };
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "bootstrap_token",
            format!("must be at least {MIN_TOKEN_LEN} characters with no whitespace"),
        ));
    }
    // Known already (perhaps revoked): left as it is, so a revoked bootstrap token given
    // again stays revoked.
    let id = hash_token(token)[..12].to_owned();
    if store
        .add_operator_token(&hash_token(token), &id, "bootstrap", None)
        .await?
    {
        tracing::info!(token = %id, "bootstrap operator token installed");
    }
    Ok(())
}

/// Where the control plane listens: the admin API, and health and metrics (never on the
/// admin API's port).
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub metrics: Option<TcpListener>,
}

/// Serves the admin API (and health and metrics) until `shutdown` completes.
pub async fn serve(
    listeners: Listeners,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    install_bootstrap_token(&store, config.bootstrap_token.as_deref()).await?;
    let metrics = Arc::new(Metrics::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let probes = listeners.metrics.map(|listener| {
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(serve_metrics(
            listener,
            store.clone(),
            metrics.clone(),
            stopped,
        ))
    });
    let publisher = config.policy_bus.map(|bus| {
        let publisher = Publisher::new(store.clone(), bus, config.keys.clone(), metrics.clone());
        tokio::spawn(publisher.run(std::future::pending()))
    });
    let usage = config.usage_bus.map(|bus| {
        metrics.watch_queue("usage", bus.clone());
        tokio::spawn(crate::usage::fold(store.clone(), bus))
    });
    let sightings = config.tool_bus.map(|bus| {
        metrics.watch_queue("tools", bus.clone());
        tokio::spawn(crate::sightings::fold(store.clone(), bus))
    });
    let refusals = config.refusal_bus.map(|bus| {
        metrics.watch_queue("refusals", bus.clone());
        tokio::spawn(crate::refusals::fold(store.clone(), bus))
    });
    let pruning = config
        .audit_retention
        .map(|keep| tokio::spawn(crate::audit::retention::run(store.clone(), keep)));
    let audit_keys = crate::audit::checkpoint::Keyring {
        current: config.audit_signer.as_ref().map(|s| s.public()),
        previous: config.audit_previous_keys,
    };
    let checkpoints = config.audit_signer.map(|signer| {
        tokio::spawn(crate::audit::checkpoint::run(
            store.clone(),
            signer,
            config.audit_checkpoint_every,
        ))
    });
    let isolation_unavailable = match &config.kube {
        None => Some("the control plane runs without --kube-namespaces".to_owned()),
        Some(k) if k.settings.gateway.is_none() => {
            Some("no --kube-gateway is set for dedicated workers' routes".to_owned())
        }
        Some(_) => None,
    };
    let reconciler = config.kube.map(|k| {
        let lease = Lease::new(
            kube::Api::namespaced(k.client.clone(), &k.settings.lease_namespace),
            LEASE,
            &k.settings.identity,
        );
        let reconciler = Reconciler::new(
            k.client,
            store.clone(),
            k.settings,
            config.profiles.clone(),
            config.keys.policy.clone(),
        );
        tokio::spawn(reconciler.run(lease, std::future::pending()))
    });
    let admin = Admin {
        store: store.clone(),
        keys: config.keys,
        guard: config.upstream_guard,
        fleet: config.fleet,
        profiles: config.profiles,
        isolation_unavailable,
        audit_keys,
        grants: config.grants,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::tenant_service_server::TenantServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::grant_service_server::GrantServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::connector_service_server::ConnectorServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::api_key_service_server::ApiKeyServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::fleet_service_server::FleetServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::audit_service_server::AuditServiceServer<Admin>>()
        .await;
    health
        .set_serving::<pb::operator_token_service_server::OperatorTokenServiceServer<Admin>>()
        .await;
    // Both reflection versions: many deployed clients (grpcurl < 1.9) speak only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchyard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let incoming = TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
    let served = tonic::transport::Server::builder()
        .trace_fn(|request| {
            let span = switchyard_common::span!(
                "admin.call",
                otel.kind = "server",
                otel.name = %request.uri().path(),
                rpc.system = "grpc",
                trace_id = tracing::field::Empty,
            );
            switchyard_common::trace::adopt(&span, request.headers());
            span
        })
        .layer(CallMetricsLayer(metrics))
        .layer(OperatorAuth::new(store))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::tenant_service_server::TenantServiceServer::new(
            admin.clone(),
        ))
        .add_service(pb::connector_service_server::ConnectorServiceServer::new(
            admin.clone(),
        ))
        .add_service(pb::api_key_service_server::ApiKeyServiceServer::new(
            admin.clone(),
        ))
        .add_service(
            pb::operator_token_service_server::OperatorTokenServiceServer::new(admin.clone()),
        )
        .add_service(pb::fleet_service_server::FleetServiceServer::new(
            admin.clone(),
        ))
        .add_service(pb::grant_service_server::GrantServiceServer::new(
            admin.clone(),
        ))
        .add_service(pb::audit_service_server::AuditServiceServer::new(admin))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Internal(format!("gRPC server: {e}")));
    for task in publisher
        .into_iter()
        .chain(usage)
        .chain(sightings)
        .chain(refusals)
        .chain(pruning)
        .chain(checkpoints)
        .chain(reconciler)
    {
        task.abort();
    }
    stop.cancel();
    if let Some(probes) = probes {
        probes.await.ok();
    }
    served
}
