//! Compiles the wire contract in the repository's `proto/` with protox (a pure-Rust protobuf compiler, so no system
//! `protoc` is needed) and prost-build. Every `bytes` field becomes `bytes::Bytes`, so decoding from a
//! `Bytes` receive buffer slices it instead of copying.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "../../proto/raystack/raccoon/v1beta1/raccoon.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["../../proto"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;
    Ok(())
}
