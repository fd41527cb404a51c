//! gRPC reflection lists the admin services; grpc.health.v1 answers SERVING, even to
//! probes without credentials.

use switchyard_tests::Stack;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

async fn reflect(
    client: &mut ServerReflectionClient<switchyard_tests::Authed>,
    request: MessageRequest,
) -> Result<ServerReflectionResponse, tonic::Status> {
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await?
        .into_inner();
    Ok(stream.message().await?.expect("one response"))
}

#[tokio::test]
async fn reflection_lists_the_admin_services() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut client = ServerReflectionClient::new(cp.authed());
    let resp = reflect(&mut client, MessageRequest::ListServices(String::new()))
        .await
        .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response: {resp:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "switchyard.admin.v1.TenantService",
        "switchyard.admin.v1.ConnectorService",
        "switchyard.admin.v1.ApiKeyService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Descriptors resolve, including imported well-known types.
    let resp = reflect(
        &mut client,
        MessageRequest::FileContainingSymbol("switchyard.admin.v1.TenantService".into()),
    )
    .await
    .unwrap();
    assert!(matches!(
        resp.message_response,
        Some(MessageResponse::FileDescriptorResponse(_))
    ));

    let mut anonymous = ServerReflectionClient::new(cp.channel_with(None));
    let err = reflect(&mut anonymous, MessageRequest::ListServices(String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn health_is_serving_without_credentials() {
    let stack = Stack::builder().without_nats().start().await;
    let cp = &stack.cp;
    let mut health = HealthClient::new(cp.plain());
    for service in ["", "switchyard.admin.v1.TenantService"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "{service:?}");
    }
}
