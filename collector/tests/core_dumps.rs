//! `mapagent core` on real cores of one program (a memfd magic ring buffer, a dlopen'ed
//! library, a SysV segment, a private file mapping with one written page), written by gdb's
//! gcore and by the kernel after SIGSEGV: every mapping gdb's `info proc mappings` lists, plus
//! [heap] and [stack], and the module load biases and build-ids of `eu-unstrip -n --core`.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Subject {
    exe: PathBuf,
    lib: PathBuf,
    data: PathBuf,
}

fn subject(dir: &Path) -> Subject {
    let exe = cc("core_subject", &["core_subject.c"], &["-ldl"]);
    let lib = plugin(&build_dir().join("core-plugins"), "core");
    let data = dir.join("data.bin");
    let bytes: Vec<u8> = (0..4 * 4096u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&data, bytes).unwrap();
    Subject { exe, lib, data }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// "ready PID ring=0x.. shm=0x.. data=0x.. heap=0x.." -> (pid, ring, shm, data, heap).
fn ready(line: &str) -> (u32, u64, u64, u64, u64) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let hex = |x: &str| u64::from_str_radix(x.split_once("=0x").unwrap().1, 16).unwrap();
    (
        f[1].parse().unwrap(),
        hex(f[2]),
        hex(f[3]),
        hex(f[4]),
        hex(f[5]),
    )
}

/// gdb's `info proc mappings` rows for a core: (start, end, offset, objfile).
fn gdb_mappings(core: &Path, exe: &Path) -> Vec<(u64, u64, u64, String)> {
    let o = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "info proc mappings", "-c"])
        .arg(core)
        .arg(exe)
        .output()
        .expect("gdb");
    let text = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<_> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 || !f[0].starts_with("0x") {
                return None;
            }
            let n = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok();
            Some((n(f[0])?, n(f[1])?, n(f[3])?, f[4..].join(" ")))
        })
        .collect();
    assert!(rows.len() > 10, "gdb listed too little:\n{text}");
    rows
}

/// `eu-unstrip -n --core`: (module start, build-id) for modules with a build-id.
fn eu_modules(core: &Path) -> Vec<(u64, String)> {
    let o = Command::new("eu-unstrip")
        .arg("-n")
        .arg(format!("--core={}", core.display()))
        .output()
        .expect("eu-unstrip (Debian package elfutils)");
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let start = f.next()?.split('+').next()?;
            let bid = f.next()?.split('@').next()?;
            (bid != "-").then(|| {
                (
                    u64::from_str_radix(start.trim_start_matches("0x"), 16).unwrap(),
                    bid.to_string(),
                )
            })
        })
        .collect();
    v.sort();
    assert!(v.len() >= 4, "eu-unstrip listed too little:\n{text}");
    v
}

fn mapping(maps: &[Value], addr: u64) -> &Value {
    maps.iter()
        .find(|m| m["start"].as_u64().unwrap() <= addr && addr < m["end"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("no mapping holds {addr:#x}"))
}

/// Everything Must-show 1 asks of one core.
fn check_core(
    core: &Path,
    sub: &Subject,
    addrs: (u32, u64, u64, u64, u64),
    dir: &Path,
) -> Vec<Value> {
    let (pid, ring, shm, data, heap) = addrs;
    let v = mapagent_json(&["core", s(core), "--json"]);
    let maps = v.as_array().unwrap().clone();

    // Every mapping gdb lists, with its offset and file.
    for (start, end, offset, file) in gdb_mappings(core, &sub.exe) {
        let m = maps
            .iter()
            .find(|m| m["start"] == start && m["end"] == end)
            .unwrap_or_else(|| panic!("gdb's {start:#x}-{end:#x} {file} missing"));
        assert_eq!(m["path"], file.as_str(), "{m}");
        assert_eq!(m["offset"], offset, "{m}");
    }
    for name in ["[heap]", "[stack]", "[vdso]"] {
        assert!(maps.iter().any(|m| m["path"] == name), "no {name}");
    }
    // malloc's block is in [heap], not in the program's .bss mapping just above its file.
    assert_eq!(mapping(&maps, heap)["path"], "[heap]");
    // The magic ring buffer: one memfd twice, back to back, dumped.
    let (a, b) = (mapping(&maps, ring), mapping(&maps, ring + 65536));
    for m in [a, b] {
        assert_eq!(m["path"], "/memfd:magicringbuffer (deleted)", "{m}");
        assert_eq!(
            (m["memfd"].as_bool(), m["deleted"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(m["dumped"], true, "{m}");
    }
    assert_eq!(a["end"], b["start"]);
    let sysv = mapping(&maps, shm);
    assert_eq!(sysv["sysv"], true, "{sysv}");
    assert_eq!(sysv["dumped"], true, "{sysv}");

    // Module load biases and build-ids as eu-unstrip finds them.
    let mut ours: Vec<(u64, String)> = Vec::new();
    for m in &maps {
        if let (Some(_), Some(bid)) = (m["load_bias"].as_u64(), m["build_id"].as_str()) {
            if !ours.iter().any(|o| o.1 == bid) {
                // A module's start: its lowest mapping (maps are sorted).
                ours.push((m["start"].as_u64().unwrap(), bid.to_string()));
            }
        }
    }
    ours.sort();
    assert_eq!(ours, eu_modules(core));
    let plug = mapping(&maps, {
        let m = maps
            .iter()
            .find(|m| m["path"].as_str().unwrap() == s(&sub.lib))
            .expect("the dlopen'ed library");
        m["start"].as_u64().unwrap()
    });
    assert_eq!(plug["load_bias"], plug["start"]);
    assert!(
        maps.iter().any(|m| m["path"] == s(&sub.lib)
            && m["sections"]
                .as_array()
                .is_some_and(|x| x.iter().any(|s| s == ".text"))),
        "sections named"
    );

    // The private file mapping: dumped (it has a written page), and --extract writes its
    // bytes: the file's, but for the written byte.
    let dm = mapping(&maps, data);
    assert_eq!(dm["path"], s(&sub.data));
    assert_eq!(dm["dumped"], true, "{dm}");
    let out = dir.join(format!("data-{pid}.bin"));
    let o = mapagent(&[
        "core",
        s(core),
        "--extract",
        &format!("{data:#x}"),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut want = std::fs::read(&sub.data).unwrap();
    want[4096] = b'x';
    assert_eq!(std::fs::read(&out).unwrap(), want);
    let out = dir.join(format!("ring-{pid}.bin"));
    let o = mapagent(&[
        "core",
        s(core),
        "--extract",
        "magicringbuffer",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success());
    assert_eq!(
        &std::fs::read(&out).unwrap()[..4],
        b"pped",
        "the ring's wrapped write"
    );
    maps
}

#[test]
fn gcore_core_lists_what_gdb_and_eu_unstrip_do() {
    let dir = scratch("core-gcore");
    let sub = subject(&dir);
    let mut child = Command::new(&sub.exe)
        .args([s(&sub.lib), s(&sub.data), "wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs = ready(&line);
    let prefix = dir.join("gc");
    let o = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(addrs.0.to_string())
        .output()
        .expect("gcore");
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    let core = dir.join(format!("gc.{}", addrs.0));
    assert!(
        core.is_file(),
        "gcore wrote nothing: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_core(&core, &sub, addrs, &dir);
}

/// Sets /proc/sys/kernel/core_pattern for the test and puts the old one back however it ends.
struct CorePattern(String);
impl CorePattern {
    fn set(p: &str) -> CorePattern {
        let old = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
        std::fs::write("/proc/sys/kernel/core_pattern", p).expect("root may set core_pattern");
        CorePattern(old)
    }
}
impl Drop for CorePattern {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/core_pattern", self.0.trim_end());
    }
}

#[test]
fn kernel_core_after_sigsegv_with_the_agents_records() {
    let dir = scratch("core-kernel");
    let sub = subject(&dir);
    let rec = dir.join("rec");
    let o = {
        let _pattern = CorePattern::set(&format!("{}/core.%p", dir.display()));
        let mut cmd = Command::new(&sub.exe);
        cmd.args([s(&sub.lib), s(&sub.data), "crash"])
            .env("LD_PRELOAD", agent())
            .env("MAPAGENT_DIR", &rec);
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                let unlimited = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGSEGV));
    assert!(o.status.core_dumped(), "no core dumped");
    let addrs = ready(&String::from_utf8_lossy(&o.stdout));
    let core = dir.join(format!("core.{}", addrs.0));
    assert!(core.is_file());
    check_core(&core, &sub, addrs, &dir);

    // With the agent's records: inodes, and the ring's two mappings known as one memfd.
    let v = mapagent_json(&["core", s(&core), "--record", s(&rec), "--json"]);
    let maps = v.as_array().unwrap();
    let a = mapping(maps, addrs.1);
    let b = mapping(maps, addrs.1 + 65536);
    assert!(a["inode"].as_u64().is_some_and(|i| i > 0), "{a}");
    assert_eq!(a["inode"], b["inode"]);
    assert_eq!(a["aliases"], serde_json::json!([b["start"]]));
    assert_eq!(b["aliases"], serde_json::json!([a["start"]]));

    // Not a core, and a cut core: one clear line, exit 2.
    let o = mapagent(&["core", s(&sub.exe)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a core dump") && err.lines().count() == 1,
        "{err}"
    );
    let cut = dir.join("cut.core");
    let bytes = std::fs::read(&core).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = mapagent(&["core", s(&cut)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));
    std::fs::write(&cut, &bytes[..40]).unwrap();
    let o = mapagent(&["core", s(&cut)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a 64-bit ELF"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
