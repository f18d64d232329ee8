//! Builds libmapagent.so from this checkout (release, what users preload), once per test
//! binary. Shared by the collector's tests, the mapagent-snapshot crate's and
//! examples/dirty-gate's (which include this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target directory cargo builds into for the workspace at `root`.
pub fn target_dir_of(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// `root/target/release/libmapagent.so`, built by a nested cargo that does not inherit the
/// test build's CARGO_* settings.
pub fn build_agent(root: &Path) -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--release", "-q", "-p", "mapagent-agent"])
            .current_dir(root);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                cmd.env_remove(&k);
            }
        }
        let st = cmd.status().expect("run cargo");
        assert!(st.success(), "building the agent failed");
        let lib = target_dir_of(root).join("release/libmapagent.so");
        assert!(lib.is_file(), "{} missing", lib.display());
        lib
    })
    .clone()
}
