//! Compiles the server's wire contract (`../../proto`, the one `.proto` of the repository) with
//! protox and prost-build, as the server's own build script does: no system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "../../proto/raystack/raccoon/v1beta1/raccoon.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["../../proto"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;
    Ok(())
}
