//! The real control plane, started in-process on port 0, and authenticated gRPC clients.

use crate::capture_logs;
use crate::nats::NatsServer;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard_bus::{Buses, Fleet, PolicyBus, ToolBus, UsageBus};
use switchyard_common::netguard::UpstreamGuard;
use switchyard_control_plane::compile::Keys;
use switchyard_control_plane::{Config, Store};
use switchyard_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Authed = InterceptedService<Channel, TokenInterceptor>;

#[derive(Clone)]
pub struct TokenInterceptor(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A control plane serving on an ephemeral port; stopped when dropped.
pub struct ControlPlane {
    pub addr: SocketAddr,
    /// Health and metrics.
    pub metrics: SocketAddr,
    pub token: String,
    pub store: Store,
    pub keys: Keys,
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The buses a control plane publishes to and reads from (none: it keeps changes in its
/// outbox).
#[derive(Default, Clone)]
pub(crate) struct CpBuses {
    pub policy: Option<Arc<dyn PolicyBus>>,
    pub usage: Option<Arc<UsageBus>>,
    pub tools: Option<Arc<ToolBus>>,
    pub refusals: Option<Arc<switchyard_bus::RefusalBus>>,
    pub fleet: Option<Arc<dyn Fleet>>,
    pub grants: Option<Arc<dyn switchyard_bus::CasKv>>,
}

impl CpBuses {
    /// Policies, usage and heartbeats on `nats`, in the test buckets.
    pub async fn nats(nats: &NatsServer) -> Self {
        let buses = Buses::nats(nats.client().await, &crate::nats::test_buckets());
        Self {
            policy: Some(buses.policy),
            usage: Some(buses.usage),
            tools: Some(buses.tools),
            refusals: Some(buses.refusals),
            fleet: Some(buses.fleet),
            grants: Some(buses.grants.grants),
        }
    }

    /// Publishing policies into `bus` only.
    pub fn policy(bus: Option<Arc<dyn PolicyBus>>) -> Self {
        Self {
            policy: bus,
            ..Self::default()
        }
    }
}

impl ControlPlane {
    /// Starts on `store` with `keys`, the operator `token` and `buses`, allowing loopback
    /// upstreams, its configuration adjusted by `adjust`.
    pub(crate) async fn start(
        store: Store,
        keys: Keys,
        token: String,
        buses: CpBuses,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        capture_logs();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let mut config = Config {
            keys: keys.clone(),
            upstream_guard: UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()]),
            bootstrap_token: Some(token.clone()),
            usage_bus: buses.policy.as_ref().and(buses.usage),
            tool_bus: buses.policy.as_ref().and(buses.tools),
            refusal_bus: buses.policy.as_ref().and(buses.refusals),
            policy_bus: buses.policy,
            fleet: buses.fleet,
            grants: buses.grants,
            profiles: Default::default(),
            kube: None,
            audit_retention: None,
            audit_signer: Some(test_signer(&token)),
            audit_checkpoint_every: std::time::Duration::from_secs(1),
            audit_previous_keys: Vec::new(),
        };
        adjust(&mut config);
        // The token must be installed before the first request can arrive.
        switchyard_control_plane::server::install_bootstrap_token(&store, Some(&token))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_store = store.clone();
        tokio::spawn(async move {
            let listeners = switchyard_control_plane::Listeners {
                grpc: listener,
                metrics: Some(metrics),
            };
            switchyard_control_plane::serve(listeners, server_store, config, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect_lazy();
        Self {
            addr,
            metrics: metrics_addr,
            token,
            store,
            keys,
            channel,
            stop: Some(stop),
        }
    }

    /// Another replica on the same store and token, with `keys` and `buses`.
    pub(crate) async fn replica(&self, keys: Keys, buses: CpBuses) -> Self {
        Self::start(self.store.clone(), keys, self.token.clone(), buses, |_| {}).await
    }

    /// Stops serving (as a replica that goes away).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }

    /// A channel that sends `token` (or nothing) as the bearer credential.
    pub fn channel_with(&self, token: Option<&str>) -> Authed {
        let value = token.map(|t| format!("Bearer {t}").parse().unwrap());
        InterceptedService::new(self.channel.clone(), TokenInterceptor(value))
    }

    pub fn authed(&self) -> Authed {
        self.channel_with(Some(&self.token))
    }

    /// A channel without credentials.
    pub fn plain(&self) -> Channel {
        self.channel.clone()
    }

    pub fn tenants(&self) -> pb::tenant_service_client::TenantServiceClient<Authed> {
        pb::tenant_service_client::TenantServiceClient::new(self.authed())
    }

    /// Tenant `slug`'s tool calls counted this month (what `switchyard tenant usage` shows).
    pub async fn tool_calls(&self, slug: &str) -> u64 {
        self.tenants()
            .get_tenant_usage(pb::GetTenantUsageRequest { slug: slug.into() })
            .await
            .expect("the tenant's usage")
            .into_inner()
            .tool_calls
    }

    pub fn connectors(&self) -> pb::connector_service_client::ConnectorServiceClient<Authed> {
        pb::connector_service_client::ConnectorServiceClient::new(self.authed())
    }

    pub fn keys_api(&self) -> pb::api_key_service_client::ApiKeyServiceClient<Authed> {
        pb::api_key_service_client::ApiKeyServiceClient::new(self.authed())
    }

    pub fn audit(&self) -> pb::audit_service_client::AuditServiceClient<Authed> {
        pb::audit_service_client::AuditServiceClient::new(self.authed())
    }

    pub fn grants(&self) -> pb::grant_service_client::GrantServiceClient<Authed> {
        pb::grant_service_client::GrantServiceClient::new(self.authed())
    }

    pub fn fleet(&self) -> pb::fleet_service_client::FleetServiceClient<Authed> {
        pb::fleet_service_client::FleetServiceClient::new(self.authed())
    }

    /// Creates an API key (editor, no rate of its own) for `tenant`; returns its secret.
    pub async fn api_key(&self, tenant: &str) -> String {
        self.keys_api()
            .create_api_key(pb::CreateApiKeyRequest {
                tenant: tenant.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// Creates a tenant with default quotas.
    pub async fn create_tenant(&self, slug: &str) -> pb::Tenant {
        self.tenants()
            .create_tenant(pb::CreateTenantRequest {
                slug: slug.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Tenant `slug` as `GetTenant` answers it.
    pub async fn tenant(&self, slug: &str) -> pb::Tenant {
        self.tenants()
            .get_tenant(pb::GetTenantRequest { slug: slug.into() })
            .await
            .unwrap()
            .into_inner()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An MCP connector request for `tenant` named `name` pointing at `url`.
pub fn mcp_connector(
    tenant: &str,
    name: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> pb::CreateConnectorRequest {
    pb::CreateConnectorRequest {
        connector: Some(pb::Connector {
            tenant: tenant.into(),
            name: name.into(),
            kind: Some(pb::connector::Kind::Mcp(pb::McpConnector {
                url: url.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| pb::Header {
                        name: (*n).into(),
                        value: Some((*v).into()),
                        value_set: false,
                    })
                    .collect(),
            })),
            ..Default::default()
        }),
        enabled: None,
    }
}

/// The field named by an INVALID_ARGUMENT status's BadRequest details.
pub fn violated_field(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
}

/// The audit signing key of the control planes sharing operator token `token`: replicas
/// of one deployment sign with one key.
fn test_signer(token: &str) -> switchyard_control_plane::audit::checkpoint::Signer {
    use base64::Engine as _;
    use sha2::Digest as _;
    let seed = sha2::Sha256::digest(format!("audit-signing-key:{token}"));
    switchyard_control_plane::audit::checkpoint::Signer::from_base64(
        &base64::engine::general_purpose::STANDARD.encode(seed),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
