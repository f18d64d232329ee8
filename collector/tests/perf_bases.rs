//! Must show 2 of the agent issue: the load bases the agent recorded equal those in the MMAP2
//! records of a real `perf record` over the same run.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

/// (start, pgoff, path) of every executable file mapping perf saw for `pid` once it was running
/// `comm` (the same pid ran `env` before the exec).
fn perf_exec_maps(data: &std::path::Path, pid: u32, comm: &str) -> BTreeSet<(u64, u64, String)> {
    let o = Command::new("perf")
        .args(["script", "-i"])
        .arg(data)
        .args(["--show-mmap-events"])
        .output()
        .expect("perf script");
    assert!(
        o.status.success(),
        "perf script: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.contains("PERF_RECORD_MMAP2") && l.split_whitespace().next() == Some(comm))
    {
        // ... PERF_RECORD_MMAP2 PID/TID: [0xSTART(0xLEN) @ 0xPGOFF maj:min ino gen]: r-xp PATH
        let after = line.split("PERF_RECORD_MMAP2 ").nth(1).unwrap();
        let who: u32 = after.split('/').next().unwrap().parse().unwrap();
        if who != pid {
            continue;
        }
        let bracket = after.split('[').nth(1).unwrap();
        let start = u64::from_str_radix(
            bracket.split('(').next().unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap();
        let pgoff = u64::from_str_radix(
            bracket
                .split("@ ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        let (perms, path) = after.split("]: ").nth(1).unwrap().split_once(' ').unwrap();
        if perms.contains('x') && path.starts_with('/') {
            out.insert((start, pgoff, path.to_string()));
        }
    }
    out
}

#[test]
fn load_bases_equal_perf_mmap2_records() {
    let lib = plugin(&build_dir().join("plugins"), "a");
    let exe = cc("fixed_dlopen", &["fixed_dlopen.c"], &["-ldl"]);
    let dir = scratch("perf_bases");
    let rec = dir.join("rec");
    let data = dir.join("perf.data");
    // perf records the program; the agent is preloaded into the program only (not perf).
    let o = Command::new("perf")
        .args(["record", "-q", "-e", "dummy", "-o"])
        .arg(&data)
        .arg("--")
        .arg("env")
        .arg(format!("LD_PRELOAD={}", agent().display()))
        .arg(format!("MAPAGENT_DIR={}", rec.display()))
        .arg(&exe)
        .arg(&lib)
        .output()
        .expect("perf record");
    assert!(
        o.status.success(),
        "perf record failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let images = images.as_array().unwrap();
    let pid = images[0]["pid"].as_u64().unwrap() as u32;
    let perf = perf_exec_maps(&data, pid, "fixed_dlopen");
    // Every executable segment of every file-backed image the agent recorded is exactly where
    // perf saw it mapped; and perf saw no executable file mapping the agent did not place.
    let mut agent_side = BTreeSet::new();
    for im in images {
        let path = im["path"].as_str().unwrap();
        if !path.starts_with('/') {
            continue; // the vDSO
        }
        let bias = im["load_bias"].as_u64().unwrap();
        for seg in im["segments"].as_array().unwrap() {
            if seg["flags"].as_str().unwrap().contains('x') {
                let start = bias + (seg["vaddr"].as_u64().unwrap() & !0xfff);
                let pgoff = seg["offset"].as_u64().unwrap() & !0xfff;
                agent_side.insert((start, pgoff, path.to_string()));
            }
        }
    }
    let plug: Vec<_> = agent_side
        .iter()
        .filter(|(_, _, p)| p.ends_with("libplug_a.so"))
        .collect();
    assert_eq!(
        plug.len(),
        2,
        "two loads of libplug_a at different bases: {agent_side:#?}"
    );
    assert_eq!(agent_side, perf, "agent images vs perf MMAP2");
}
