//! The agent never takes the application down, and loses nothing silently: crashes, _exit,
//! SIGKILL, a full channel, a full disk, bad settings, signals, vfork and posix_spawn.

mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn lifecycle() -> std::path::PathBuf {
    cc("lifecycle", &["lifecycle.c"], &["-pthread"])
}

fn agent_cmd(args: &[&str], rec: &std::path::Path) -> Command {
    let mut c = Command::new(lifecycle());
    c.args(args)
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", rec);
    c
}

/// The pid of the one recording in `rec`.
fn o_pid(rec: &std::path::Path) -> String {
    let f = rec
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "mrec"))
        .expect("a record file");
    f.file_stem().unwrap().to_string_lossy().into_owned()
}

fn dump_json(rec: &std::path::Path) -> Vec<serde_json::Value> {
    let o = mapagent(&["dump", rec.to_str().unwrap(), "--json"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn mark(stdout: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(stdout);
    let v = s
        .lines()
        .find_map(|l| l.strip_prefix("mark=0x"))
        .expect("mark line");
    u64::from_str_radix(v, 16).unwrap()
}

/// The file's Exit record. A process that died without an exit path the agent ran (a crash
/// without MAPAGENT_CRASH_HANDLERS) is ended by its collector once it sees it gone, a moment
/// after the process: wait for that (bounded).
fn last_exit(rec: &std::path::Path) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(e) = dump_json(rec)
            .into_iter()
            .rev()
            .find(|r| r["type"] == "Exit")
        {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "no Exit record");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How a crash ends the record: by default the agent installs no handler (the program would
/// see it), and the collector sees the process go with the signal (vanished); with
/// MAPAGENT_CRASH_HANDLERS=1 a handler holds the process for the last look (signal).
fn crash_ending(handlers: bool) -> (u64, &'static str) {
    if handlers {
        (2, "1")
    } else {
        (5, "0")
    }
}

#[test]
fn crash_by_sigsegv_still_writes_everything() {
    for handlers in [false, true] {
        let (how, env) = crash_ending(handlers);
        let rec = scratch("segv").join(format!("rec-{env}"));
        let o = agent_cmd(&["segv"], &rec)
            .env("MAPAGENT_CRASH_HANDLERS", env)
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGSEGV),
            "the crash is still a SIGSEGV: {:?}",
            o.status
        );
        let e = last_exit(&rec);
        assert_eq!(
            (e["how"].as_u64(), e["code"].as_u64()),
            (Some(how), Some(libc::SIGSEGV as u64)),
            "handlers {handlers}: {e}"
        );
        let v = mapagent_json(&["maps", rec.to_str().unwrap(), "--json"]);
        assert_eq!(mapping_at(&v, mark(&o.stdout)).unwrap()["source"], "mmap");
    }
}

#[test]
fn abort_still_writes_everything() {
    for handlers in [false, true] {
        let (how, env) = crash_ending(handlers);
        let rec = scratch("abort").join(format!("rec-{env}"));
        let o = agent_cmd(&["abort"], &rec)
            .env("MAPAGENT_CRASH_HANDLERS", env)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(libc::SIGABRT));
        let e = last_exit(&rec);
        assert_eq!(
            (e["how"].as_u64(), e["code"].as_u64()),
            (Some(how), Some(libc::SIGABRT as u64)),
            "handlers {handlers}: {e}"
        );
    }
}

#[test]
fn underscore_exit_flushes() {
    let rec = scratch("exit7").join("rec");
    let o = agent_cmd(&["exit7"], &rec).output().unwrap();
    assert_eq!(o.status.code(), Some(7));
    let e = last_exit(&rec);
    assert_eq!((e["how"].as_u64(), e["code"].as_u64()), (Some(1), Some(7)));
}

#[test]
fn sigkill_leaves_a_readable_file() {
    let rec = scratch("sigkill").join("rec");
    let mut child = agent_cmd(&["sleep"], &rec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the agent has written the baseline and the mapping event.
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut out, &mut buf).unwrap();
    let addr = mark(&buf[..n]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = mapagent(&["maps", rec.to_str().unwrap(), "--json"]);
        if v.status.success()
            && serde_json::from_slice::<serde_json::Value>(&v.stdout)
                .ok()
                .and_then(|v| mapping_at(&v, addr))
                .is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mapping never reached the file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // No exit path runs in a SIGKILLed process; the collector, outside it, sees it go and
    // ends the record itself. Not reaped yet: the zombie's status says which signal.
    child.kill().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let o = mapagent(&["maps", rec.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "a killed process's file reads: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if !text.contains("no exit record") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(
        text.contains("vanished: killed by signal 9 (no exit path ran)"),
        "and says how it ended: {text}"
    );
    // The file is complete: the mapping is there and the last record is the Exit.
    let all = dump_json(&rec);
    let last = all.last().unwrap();
    assert_eq!(last["type"], "Exit", "{last}");
    assert_eq!(
        (last["how"].as_u64(), last["code"].as_u64()),
        (Some(5), Some(9))
    );
}

#[test]
fn full_channel_drops_are_counted_and_recorded() {
    let rec = scratch("lost").join("rec");
    let o = agent_cmd(&["storm", "4", "20000"], &rec)
        .env("MAPAGENT_BUFFER", "64")
        .output()
        .unwrap();
    assert!(o.status.success());
    let recs = dump_json(&rec);
    let lost: u64 = recs
        .iter()
        .filter(|r| r["type"] == "Lost")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let e = recs.iter().rev().find(|r| r["type"] == "Exit").unwrap();
    assert!(
        lost > 0,
        "a 64-event channel under 4 storming threads must drop"
    );
    assert_eq!(
        e["lost_total"].as_u64().unwrap(),
        lost,
        "LOST records add up to the total"
    );
    let mmaps = recs.iter().filter(|r| r["type"] == "Mmap").count() as u64;
    let munmaps = recs.iter().filter(|r| r["type"] == "Munmap").count() as u64;
    // Every storm call is either recorded or counted as lost (plus the few other calls).
    assert!(
        mmaps + munmaps + lost >= 2 * 4 * 20000,
        "{mmaps} + {munmaps} + {lost}"
    );
    // The end state is still right: reconciliation covers for what was dropped.
    let v = mapagent_json(&["maps", rec.to_str().unwrap(), "--json"]);
    assert!(mapping_at(&v, mark(&o.stdout)).is_some());
}

#[test]
fn full_disk_disables_with_one_line_and_the_app_carries_on() {
    let mnt = scratch("fulldisk").join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(m.success(), "mount tmpfs (tests run as root)");
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.clone());
    let o = agent_cmd(&["storm", "1", "20000"], &mnt).output().unwrap();
    assert!(o.status.success(), "the application finished normally");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The record file kept space in reserve: with the disk full, the line still fits.
    let err = agent_log(&mnt);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line from the agent: {err}");
    assert!(
        lines[0].starts_with(&format!("mapagent[{}]: ", o_pid(&mnt))),
        "{err}"
    );
    assert!(
        lines[0].contains("disabled") && lines[0].contains("No space left on device"),
        "{err}"
    );
    // What made it to disk reads up to the cut.
    let d = mapagent(&["dump", mnt.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&d.stdout).lines().count() > 10);
    assert!(
        matches!(d.status.code(), Some(0) | Some(2)),
        "{:?}",
        d.status
    );
}

#[test]
fn bad_settings_warn_once_and_use_defaults() {
    let rec = scratch("badsettings").join("rec");
    let o = agent_cmd(&["exit7"], &rec)
        .env("MAPAGENT_BUFFER", "lots")
        .env("MAPAGENT_FLUSH_MS", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7));
    // Nothing on the program's stderr; two lines in the agent's log, not repeated by the
    // collector (which reads the same settings).
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = agent_log(&rec);
    assert!(
        err.contains("]: ignoring MAPAGENT_BUFFER=lots (not a number); using 16384"),
        "{err}"
    );
    assert!(err.contains("]: ignoring MAPAGENT_FLUSH_MS=0"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    let mrec = rec.read_dir().unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "mrec")
    });
    assert_eq!(mrec.count(), 1, "still recorded");
}

#[test]
fn process_signals_reach_the_application_not_the_writer() {
    let rec = scratch("signals").join("rec");
    let mut child = agent_cmd(&["signals", "50"], &rec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    }
    let pid = child.id() as i32;
    let mut exited = false;
    for _ in 0..2000 {
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        std::thread::sleep(std::time::Duration::from_millis(2));
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
    }
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "SIGUSR1 never reached the thread that unblocked it (delivered to the agent's thread?)"
        );
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.contains("wrong_thread=0"),
        "a handler ran on the wrong thread: {rest}"
    );
}

#[test]
fn vfork_and_posix_spawn_children_do_not_disturb_the_parent() {
    let rec = scratch("vfork").join("rec");
    let o = agent_cmd(&["vfork"], &rec).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    let after = u64::from_str_radix(
        s.lines().find_map(|l| l.strip_prefix("after=0x")).unwrap(),
        16,
    )
    .unwrap();
    let parent = o.status; // unused but keeps intent clear
    let _ = parent;
    // The parent's own file ends with its own exit and has no Exec record.
    let files: Vec<_> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        3,
        "parent + the two /bin/true children: {files:?}"
    );
    let mut parent_file = None;
    for f in &files {
        let recs = dump_json(f);
        if recs[0]["exe"].as_str().unwrap().ends_with("lifecycle") {
            assert!(
                !recs.iter().any(|r| r["type"] == "Exec"),
                "a vfork child's exec must not be recorded as the parent's"
            );
            assert_eq!(recs.last().unwrap()["type"], "Exit");
            parent_file = Some(f.clone());
        } else {
            assert!(recs[0]["exe"].as_str().unwrap().ends_with("true"));
        }
    }
    let v = mapagent_json(&["maps", parent_file.unwrap().to_str().unwrap(), "--json"]);
    assert_eq!(mapping_at(&v, after).unwrap()["perms"], "r--p");
}

#[test]
fn a_breakpoint_trap_still_ends_the_process() {
    let rec = scratch("int3").join("rec");
    let o = agent_cmd(&["int3"], &rec).output().unwrap();
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGTRAP),
        "{:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    // SIGTRAP is the debugger's: the agent takes no handler for it, and the collector, from
    // outside, writes the end it saw (after the process is gone: wait for it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dump_json(&rec).iter().any(|r| r["type"] == "Exit") {
        assert!(std::time::Instant::now() < deadline, "no Exit record");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = last_exit(&rec);
    assert_eq!(e["how"].as_u64(), Some(5), "vanished: {e}");
    // Reaped before the collector looked: the pidfd still tells (Linux 6.15+).
    if kernel_at_least(6, 15) {
        assert_eq!(e["code"].as_i64(), Some(libc::SIGTRAP as i64), "{e}");
    } else {
        assert!(
            [libc::SIGTRAP as i64, -1].contains(&e["code"].as_i64().unwrap()),
            "{e}"
        );
    }
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r.trim().split(|c: char| !c.is_ascii_digit());
    let v: (u32, u32) = (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    );
    v >= (major, minor)
}

#[test]
fn unshare_of_a_user_namespace_works_under_the_agent() {
    let rec = scratch("unshare").join("rec");
    let o = agent_cmd(&["unshare"], &rec).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unshared"));
    let e = last_exit(&rec);
    assert_eq!(
        e["how"].as_u64(),
        Some(0),
        "recording carried on after the writer was parked: {e}"
    );
}

#[test]
fn the_agent_never_takes_a_low_descriptor_number() {
    let lib = plugin(&build_dir().join("plugins"), "a");
    let rec = scratch("lowfd").join("rec");
    let o = agent_cmd(&["lowfd", lib.to_str().unwrap()], &rec)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("fd=0"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn dlopen_inside_a_dl_iterate_phdr_callback_does_not_hang() {
    let lib = plugin(&build_dir().join("plugins"), "a");
    let rec = scratch("dlwalk").join("rec");
    let mut child = agent_cmd(&["dlopen-in-walk", lib.to_str().unwrap()], &rec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hung: dlopen inside a dl_iterate_phdr callback");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
