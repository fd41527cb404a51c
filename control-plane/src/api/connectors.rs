//! The connector service.

use super::*;
use crate::compile::timestamp;
use crate::error::Error;
use crate::model::*;
use crate::store::NewConnector;
use switchyard_proto::admin::v1 as pb;
use tonic::Request;

pub(super) fn connector_pb(c: Connector) -> pb::Connector {
    let s = c.settings;
    let kind = match s.kind {
        ConnectorKind::Mcp { url } => pb::connector::Kind::Mcp(pb::McpConnector {
            url,
            headers: c
                .headers
                .into_iter()
                .map(|h| pb::Header {
                    name: h.name,
                    value: None,
                    value_set: true,
                })
                .collect(),
        }),
    };
    pb::Connector {
        tenant: c.tenant.to_string(),
        name: c.name.to_string(),
        kind: Some(kind),
        enabled: c.enabled,
        prefix: s.prefix,
        timeout_ms: s.timeout_ms,
        allow_tools: s.allow_tools,
        deny_tools: s.deny_tools,
        retry: Some(pb::RetryPolicy {
            max_attempts: Some(s.retry.max_attempts),
            initial_backoff_ms: Some(s.retry.initial_backoff_ms),
            max_backoff_ms: Some(s.retry.max_backoff_ms),
            retry_idempotent_tools: Some(s.retry.retry_idempotent_tools),
        }),
        breaker: Some(pb::BreakerPolicy {
            consecutive_failures: Some(s.breaker.consecutive_failures),
            failure_rate_percent: Some(s.breaker.failure_rate_percent),
            minimum_calls: Some(s.breaker.minimum_calls),
            open_ms: Some(s.breaker.open_ms),
            half_open_probes: Some(s.breaker.half_open_probes),
        }),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        etag: c.revision.to_string(),
        dropped_headers: Vec::new(),
        auto_approve_tools: s.auto_approve_tools,
    }
}

#[tonic::async_trait]
impl pb::connector_service_server::ConnectorService for Admin {
    async fn create_connector(
        &self,
        req: Request<pb::CreateConnectorRequest>,
    ) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let c = r
                    .connector
                    .ok_or_else(|| Error::invalid("connector", "is required"))?;
                let tenant = slug("connector.tenant", &c.tenant)?;
                let name = connector_name("connector.name", &c.name)?;
                let (kind, headers) = match &c.kind {
                    Some(pb::connector::Kind::Mcp(m)) => {
                        let url = upstream_url("connector.mcp.url", &m.url, &self.guard).await?;
                        let headers = headers_in("connector.mcp.headers", &m.headers, &[])?;
                        (ConnectorKind::Mcp { url }, headers)
                    }
                    None => {
                        return Err(Error::invalid(
                            "connector.kind",
                            "is required: set connector.mcp",
                        ));
                    }
                };
                let settings = ConnectorSettings {
                    kind,
                    prefix: c
                        .prefix
                        .as_deref()
                        .map(|p| prefix("connector.prefix", p))
                        .transpose()?,
                    timeout_ms: timeout_ms("connector.timeout_ms", c.timeout_ms)?,
                    allow_tools: patterns("connector.allow_tools", &c.allow_tools)?,
                    deny_tools: patterns("connector.deny_tools", &c.deny_tools)?,
                    retry: apply_retry(RetrySettings::default(), c.retry.as_ref())
                        .map_err(|e| nest("connector", e))?,
                    breaker: apply_breaker(BreakerSettings::default(), c.breaker.as_ref())
                        .map_err(|e| nest("connector", e))?,
                    auto_approve_tools: c.auto_approve_tools,
                };
                let keys = &self.keys;
                if let Some(state) = self.store.tenant_state(&tenant).await? {
                    let probe = Connector {
                        id: "size-probe".into(),
                        tenant: tenant.clone(),
                        name: name.clone(),
                        enabled: true,
                        settings: settings.clone(),
                        headers: seal_headers(
                            keys,
                            &state.tenant.id,
                            "size-probe",
                            headers.clone(),
                        ),
                        revision: 0,
                        created_at: 0,
                        updated_at: 0,
                    };
                    policy_size::fits(
                        &policy_size::with_connector(&state, probe),
                        keys,
                        "connector.mcp.headers",
                    )?;
                }
                let created = self
                    .store
                    .create_connector(
                        &tenant,
                        NewConnector {
                            name,
                            enabled: r.enabled.unwrap_or(true),
                            settings,
                            seal_headers: |tenant_id: &str, connector_id: &str| {
                                Ok(seal_headers(keys, tenant_id, connector_id, headers))
                            },
                        },
                    )
                    .await?;
                tracing::info!(
                    tenant = %tenant,
                    connector = %created.name,
                    revision = created.revision,
                    "connector created"
                );
                Ok(connector_pb(created))
            }
            .await,
        )
    }

    async fn get_connector(&self, req: Request<pb::GetConnectorRequest>) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                Ok(connector_pb(
                    self.store.get_connector(&tenant, &name).await?,
                ))
            }
            .await,
        )
    }

    async fn list_connectors(
        &self,
        req: Request<pb::ListConnectorsRequest>,
    ) -> Reply<pb::ListConnectorsResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let connectors = self.store.list_connectors(&tenant).await?;
                Ok(pb::ListConnectorsResponse {
                    connectors: connectors.into_iter().map(connector_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn update_connector(
        &self,
        req: Request<pb::UpdateConnectorRequest>,
    ) -> Reply<pb::Connector> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                let etag = etag(&r.etag)?;
                // Validate everything that needs no stored state before the transaction.
                let url = match &r.kind {
                    Some(pb::update_connector_request::Kind::Mcp(m)) => {
                        Some(upstream_url("mcp.url", &m.url, &self.guard).await?)
                    }
                    None => None,
                };
                let new_prefix = match (&r.prefix, r.reset_prefix) {
                    (Some(_), true) => {
                        return Err(Error::invalid(
                            "reset_prefix",
                            "cannot be combined with prefix",
                        ));
                    }
                    (Some(p), false) => Some(Some(prefix("prefix", p)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                };
                let timeout = r
                    .timeout_ms
                    .map(|t| timeout_ms("timeout_ms", t))
                    .transpose()?;
                let allow = r
                    .allow_tools
                    .as_ref()
                    .map(|l| patterns("allow_tools.patterns", &l.patterns))
                    .transpose()?;
                let deny = r
                    .deny_tools
                    .as_ref()
                    .map(|l| patterns("deny_tools.patterns", &l.patterns))
                    .transpose()?;
                let keys = &self.keys;
                let state = self.store.tenant_state(&tenant).await?;
                let mut dropped = Vec::new();
                let updated = self
                    .store
                    .update_connector(&tenant, &name, etag, |tenant_id, c| {
                        if let (Some(url), Some(pb::update_connector_request::Kind::Mcp(m))) =
                            (url, &r.kind)
                        {
                            // Stored secrets stay with the origin they were given for.
                            let ConnectorKind::Mcp { url: stored } = &c.settings.kind;
                            let keep = same_origin(stored, &url).then_some(&c.headers[..]);
                            let (headers, gone) = headers_given("mcp.headers", &m.headers, keep)?;
                            c.headers = seal_headers(keys, tenant_id, &c.id, headers);
                            c.settings.kind = ConnectorKind::Mcp { url };
                            dropped = gone;
                        }
                        if let Some(enabled) = r.enabled {
                            c.enabled = enabled;
                        }
                        if let Some(auto) = r.auto_approve_tools {
                            c.settings.auto_approve_tools = auto;
                        }
                        if let Some(p) = new_prefix {
                            c.settings.prefix = p;
                        }
                        if let Some(t) = timeout {
                            c.settings.timeout_ms = t;
                        }
                        if let Some(a) = allow {
                            c.settings.allow_tools = a;
                        }
                        if let Some(d) = deny {
                            c.settings.deny_tools = d;
                        }
                        c.settings.retry = apply_retry(c.settings.retry, r.retry.as_ref())?;
                        c.settings.breaker = apply_breaker(c.settings.breaker, r.breaker.as_ref())?;
                        if let Some(state) = &state {
                            let after = policy_size::with_connector(state, c.clone());
                            policy_size::fits(&after, keys, "mcp.headers")?;
                        }
                        Ok(())
                    })
                    .await?;
                tracing::info!(
                    tenant = %tenant,
                    connector = %name,
                    revision = updated.revision,
                    dropped_headers = dropped.len(),
                    "connector updated"
                );
                let mut answer = connector_pb(updated);
                answer.dropped_headers = dropped;
                Ok(answer)
            }
            .await,
        )
    }

    async fn delete_connector(
        &self,
        req: Request<pb::DeleteConnectorRequest>,
    ) -> Reply<pb::DeleteConnectorResponse> {
        let r = req.into_inner();
        reply(
            async {
                let tenant = slug("tenant", &r.tenant)?;
                let name = connector_name("name", &r.name)?;
                let etag = etag(&r.etag)?;
                self.store.delete_connector(&tenant, &name, etag).await?;
                tracing::info!(tenant = %tenant, connector = %name, "connector deleted");
                Ok(pb::DeleteConnectorResponse {})
            }
            .await,
        )
    }

    async fn list_connector_tools(
        &self,
        req: Request<pb::ListConnectorToolsRequest>,
    ) -> Reply<pb::ListConnectorToolsResponse> {
        reply(self.list_tools(req.into_inner()).await)
    }

    async fn approve_connector_tools(
        &self,
        req: Request<pb::ApproveConnectorToolsRequest>,
    ) -> Reply<pb::ApproveConnectorToolsResponse> {
        reply(self.approve_tools(req.into_inner()).await)
    }
}
