//! Generated protobuf types and gRPC stubs: the admin API (`switchyard.admin.v1`) and the
//! compiled tenant policy workers receive (`switchyard.policy.v1`).

#![allow(
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("switchyard.admin.v1");
    }
}

pub mod policy {
    pub mod v1 {
        tonic::include_proto!("switchyard.policy.v1");
    }
}

/// Encoded `FileDescriptorSet` of every file above, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
