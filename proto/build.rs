//! Compiles the .proto files with protox (pure Rust, no system `protoc`) and writes the
//! encoded descriptor set next to the generated code for gRPC reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "switchyard/admin/v1/tenants.proto",
        "switchyard/admin/v1/identity.proto",
        "switchyard/admin/v1/connectors.proto",
        "switchyard/admin/v1/keys.proto",
        "switchyard/admin/v1/grants.proto",
        "switchyard/admin/v1/fleet.proto",
        "switchyard/admin/v1/audit.proto",
        "switchyard/admin/v1/operator_tokens.proto",
        "switchyard/policy/v1/policy.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
