//! Where the `raccoon` binary is. The root package's tests and benches have it as
//! `env!("CARGO_BIN_EXE_raccoon")`; the client crates' tests use [`built_server`], which builds
//! it into the same target directory first when needed (`cargo test -p raccoon-client`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (this crate is `crates/testkit`).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The server binary: `$RACCOON_BIN`, else `raccoon` in the running test's own profile
/// directory (`target/<profile>/`), built first with `cargo build -p raccoon --bin raccoon` (a
/// no-op when `cargo test` at the root already built it). Built once per test binary.
pub fn built_server() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RACCOON_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_path_buf();
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_owned();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_dir())
            .args(["build", "-p", "raccoon", "--bin", "raccoon"])
            .arg("--target-dir")
            .arg(&target_dir);
        if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        let status = cmd.status().expect("run cargo build for the server");
        assert!(status.success(), "building the server failed");
        profile_dir.join("raccoon")
    })
    .clone()
}
