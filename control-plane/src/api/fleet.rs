//! The fleet service: the workers' heartbeats.

use super::*;
use crate::compile::timestamp;
use switchyard_proto::admin::v1 as pb;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for Admin {
    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Reply<pb::ListWorkersResponse> {
        let Some(fleet) = &self.fleet else {
            return Err(Status::failed_precondition(
                "this control plane is not connected to the worker fleet (no nats-url)",
            ));
        };
        let mut members = fleet
            .members()
            .await
            .map_err(|e| Status::unavailable(format!("the fleet cannot be read now: {e}")))?;
        members.sort_by(|a, b| a.worker.cmp(&b.worker));
        let workers = members
            .into_iter()
            .map(|m| pb::Worker {
                id: m.worker,
                ready: m.ready,
                start_time: Some(timestamp(m.started_ms)),
                last_heartbeat: Some(timestamp(m.at_ms)),
                tenants: m.tenants,
                policy_revision: m.policy_revision,
                sessions: m.sessions.values().sum(),
                breakers: m
                    .breakers
                    .into_iter()
                    .map(|b| pb::Breaker {
                        tenant: b.tenant,
                        connector: b.connector,
                        state: b.state.as_str().to_owned(),
                        retry_time: Some(timestamp(b.retry_at_ms)),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }
}
