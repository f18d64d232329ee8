//! Issue 10: the program sees nothing of the agent, and a process killed at any moment leaves
//! a record that reads whole and says how it ended.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_program_sees_the_same_descriptors_threads_errno_signals_and_limits() {
    let exe = cc("visible", &["visible.c"], &["-ldl"]);
    let plain = Command::new(&exe).output().unwrap();
    assert!(plain.status.success());
    let dir = scratch("visible");
    for how in ["LD_PRELOAD", "mapagent run"] {
        let rec = dir.join(how.replace(' ', "-"));
        let with = if how == "LD_PRELOAD" {
            Command::new(&exe)
                .env("LD_PRELOAD", agent())
                .env("MAPAGENT_DIR", &rec)
                .output()
                .unwrap()
        } else {
            Command::new(mapagent_bin())
                .env("MAPAGENT_LIB", agent())
                .arg("run")
                .arg("-o")
                .arg(&rec)
                .arg("--")
                .arg(&exe)
                .output()
                .unwrap()
        };
        assert_eq!(
            String::from_utf8_lossy(&with.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "{how}: the program saw something of the agent"
        );
        assert!(with.status.success());
        let dumps = record_dumps(&rec);
        assert_eq!(dumps.len(), 1, "{how}: recorded");
        assert_eq!(dumps[0].1.last().unwrap()["type"], "Exit", "{how}");
    }
    // Also with only 64 descriptors: the program's next descriptor is still its own.
    let rec = dir.join("nofile64");
    let limited = |pre: bool| {
        let mut c = Command::new("bash");
        c.arg("-c").arg("ulimit -n 64; exec \"$0\"").arg(&exe);
        if pre {
            c.env("LD_PRELOAD", agent()).env("MAPAGENT_DIR", &rec);
        }
        c.output().unwrap()
    };
    assert_eq!(
        String::from_utf8_lossy(&limited(true).stdout),
        String::from_utf8_lossy(&limited(false).stdout)
    );
}

#[test]
fn killed_at_random_points_every_record_reads_whole_and_says_how_it_ended() {
    let exe = cc("fork_storm", &["fork_storm.c"], &["-ldl", "-lpthread"]);
    let dir = scratch("killed");
    // A cheap deterministic spread of kill times over the first 40 ms.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 40_000);
        let sig = if i % 2 == 0 {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        let rec = dir.join(format!("rec{i}"));
        let mut child = Command::new(&exe)
            .arg("100000")
            .env("LD_PRELOAD", agent())
            .env("MAPAGENT_DIR", &rec)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(sig), "run {i}");
        // Let the collectors notice and finish.
        let t = Instant::now();
        let parent_file = || {
            std::fs::read_dir(&rec).ok().and_then(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                    p.file_name().unwrap().to_string_lossy() == format!("{}.mrec", child.id())
                })
            })
        };
        loop {
            let done = parent_file().is_some_and(|f| {
                let d = mapagent(&["dump", f.to_str().unwrap(), "--json"]);
                String::from_utf8_lossy(&d.stdout).contains("\"type\":\"Exit\"")
            });
            if done || t.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if parent_file().is_none() {
            // Killed before the agent's constructor made its file: nothing to read, nothing
            // half-written either.
            continue;
        }
        for (f, recs) in record_dumps(&rec) {
            let last = recs.last().unwrap();
            if recs[0]["pid"] != child.id() as u64 {
                // A fork child of the storm, killed with its parent or finished.
                assert_eq!(last["type"], "Exit", "{}: {last}", f.display());
                continue;
            }
            assert_eq!(
                last["type"],
                "Exit",
                "run {i} ({delay:?}): {}: {last}",
                f.display()
            );
            // SIGKILL runs no handler: the collector saw the process go (vanished, with
            // the signal); SIGTERM's default action neither.
            assert_eq!(last["how"], 5, "run {i}: vanished: {last}");
            assert_eq!(last["code"], sig as i64, "run {i}: the signal: {last}");
        }
    }
}
