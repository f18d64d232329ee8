//! The wrapper against the real agent: this test binary runs itself again with
//! libmapagent.so preloaded, takes a labelled snapshot there, and reads the record back.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../collector/tests/common/agent_build.rs"]
mod agent_build;

/// libmapagent.so built from this checkout.
fn agent() -> PathBuf {
    agent_build::build_agent(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
}

#[test]
fn without_the_agent_it_says_so_and_does_nothing() {
    if std::env::var_os("MAPAGENT_SNAPSHOT_CHILD").is_some() {
        return; // the child run has the agent
    }
    assert!(!mapagent_snapshot::is_loaded());
    assert_eq!(
        mapagent_snapshot::snapshot("x"),
        Err(mapagent_snapshot::Error::NotLoaded)
    );
    assert_eq!(
        mapagent_snapshot::watch_sample(),
        Err(mapagent_snapshot::Error::NotLoaded)
    );
}

/// Run only as the child of the test below.
#[test]
#[ignore]
fn child_takes_snapshots() {
    assert!(mapagent_snapshot::is_loaded());
    assert_eq!(mapagent_snapshot::snapshot("from-rust"), Ok(()));
    assert_eq!(
        mapagent_snapshot::snapshot("bad\0label"),
        Err(mapagent_snapshot::Error::BadLabel)
    );
    assert_eq!(mapagent_snapshot::snapshot("second"), Ok(()));
    assert_eq!(mapagent_snapshot::watch_sample(), Ok(()));
}

#[test]
fn under_the_agent_labelled_snapshots_are_recorded() {
    let dir = std::env::temp_dir().join(format!("mapagent-snapshot-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_takes_snapshots",
            "--test-threads=1",
        ])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &dir)
        .env("MAPAGENT_SNAPSHOT_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 passed"));
    let loaded = mapagent::select::Loaded::open(&dir).unwrap();
    let parsed = loaded.parse().unwrap();
    let timelines = mapagent::select::timelines(&loaded, &parsed);
    let labels: Vec<String> = timelines
        .iter()
        .flat_map(|t| t.snapshots.iter().map(|s| s.label.clone()))
        .collect();
    assert_eq!(labels, ["from-rust", "second", "exit"], "{labels:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
