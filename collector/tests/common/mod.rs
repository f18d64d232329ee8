//! Test support: builds the real agent and the C programs under c-tests/, runs programs under
//! the agent, and reads the checkpoints those programs write (their /proc/self/maps at a
//! CLOCK_MONOTONIC time) to use the kernel as the oracle.
#![allow(dead_code)]

use mapagent_record::region::{parse_maps, Region};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

mod agent_build;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    agent_build::target_dir_of(&root())
}

/// The collector binary under test.
pub fn mapagent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mapagent"))
}

/// libmapagent.so, built in release mode (what users preload) once per test binary.
pub fn agent() -> PathBuf {
    agent_build::build_agent(&root())
}

pub fn build_dir() -> PathBuf {
    let d = target_dir().join("c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles c-tests sources into build_dir()/out, unless it is already newer than its
/// sources: rebuilding (and renaming over) a library another test has loaded would make it
/// "(deleted)" under that test's feet. Atomic rename, so nobody sees a half-written file.
pub fn cc(out: &str, srcs: &[&str], args: &[&str]) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dest = build_dir().join(out);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_src = srcs
        .iter()
        .map(|s| root().join("c-tests").join(s))
        .chain([root().join("c-tests/checkpoint.h")])
        .filter_map(|p| mtime(&p))
        .max();
    if let (Some(d), Some(s)) = (mtime(&dest), newest_src) {
        if d >= s {
            return dest;
        }
    }
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let file = dest.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = dest.with_file_name(format!(".{file}.{}", std::process::id()));
    let mut cmd = Command::new("cc");
    cmd.args(["-O1", "-g", "-Wall", "-D_GNU_SOURCE"]);
    for s in srcs {
        cmd.arg(root().join("c-tests").join(s));
    }
    cmd.args(args).arg("-o").arg(&tmp);
    let o = cmd.output().expect("run cc");
    assert!(
        o.status.success(),
        "cc {out} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &dest).unwrap();
    dest
}

/// A plugin library libplug_<name>.so in `dir`.
pub fn plugin(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let rel = dir
        .strip_prefix(build_dir())
        .expect("plugin dirs live under build_dir");
    let out = rel.join(format!("libplug_{name}.so"));
    cc(
        out.to_str().unwrap(),
        &["plug.c"],
        &["-shared", "-fPIC", &format!("-DPLUG=plug_{name}")],
    )
}

/// A shared library `lib_out` (libNAME.so, -fPIC) from `lib_srcs` and a program `exe_out`
/// from `exe_srcs` linked against it, finding it at run time through its RUNPATH.
pub fn cc_with_lib(
    lib_out: &str,
    lib_srcs: &[&str],
    exe_out: &str,
    exe_srcs: &[&str],
    exe_args: &[&str],
) -> (PathBuf, PathBuf) {
    let lib = cc(lib_out, lib_srcs, &["-shared", "-fPIC"]);
    let dir = lib.parent().unwrap().to_str().unwrap().to_string();
    let name = lib.file_stem().unwrap().to_str().unwrap();
    let name = name.strip_prefix("lib").unwrap_or(name);
    let mut args: Vec<String> = exe_args.iter().map(|a| a.to_string()).collect();
    args.extend([
        format!("-L{dir}"),
        format!("-l{name}"),
        format!("-Wl,-rpath,{dir}"),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exe = cc(exe_out, exe_srcs, &args);
    (lib, exe)
}

/// The blog's reproduction: libdirty_lib.so (-fPIC) and dirty_main linked against it.
pub fn blog_programs() -> (PathBuf, PathBuf) {
    cc_with_lib(
        "dirty/libdirty_lib.so",
        &["dirty_lib.c"],
        "dirty/dirty_main",
        &["dirty_main.c"],
        &[],
    )
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = target_dir()
        .join("test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The agent's diagnostics for a recording directory (MAPAGENT_DIR/mapagent.log), "" if it
/// said nothing (then it creates no file).
pub fn agent_log(rec: &Path) -> String {
    std::fs::read_to_string(rec.join("mapagent.log")).unwrap_or_default()
}

/// Runs `cmd` with its output captured, killing it and failing if it has not ended within
/// `secs` (it hung); its pid too.
pub fn run_bounded(mut cmd: Command, what: &str, secs: u64) -> (u32, Output) {
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {secs} s (hung)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (pid, child.wait_with_output().unwrap())
}

/// Every record file (*.mrec) in `rec` with its records as `mapagent dump --json` gives them,
/// sorted by file name; a file that does not dump cleanly fails the test.
pub fn record_dumps(rec: &Path) -> Vec<(PathBuf, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(rec).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_none_or(|x| x != "mrec") {
            continue;
        }
        let d = mapagent(&["dump", f.to_str().unwrap(), "--json"]);
        assert!(
            d.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&d.stderr)
        );
        let v = String::from_utf8_lossy(&d.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", f.display()))
            })
            .collect();
        out.push((f, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs `argv` with the agent preloaded, records into `rec`, checkpoints into `rec/../cp.txt`.
pub fn run_agent(argv: &[&str], rec: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", rec)
        .env("CHECKPOINT_FILE", rec.with_extension("cp"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{argv:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub struct Checkpoint {
    pub label: String,
    pub t: u64,
    pub pid: u32,
    pub maps: Vec<Region>,
}

pub fn checkpoints(rec: &Path) -> Vec<Checkpoint> {
    let text = std::fs::read(rec.with_extension("cp")).expect("checkpoint file");
    let mut out: Vec<Checkpoint> = Vec::new();
    let mut cur: Option<(String, u64, u32, Vec<u8>)> = None;
    for line in text.split_inclusive(|&c| c == b'\n') {
        if let Some(head) = line.strip_prefix(b"== ") {
            if let Some((l, t, p, m)) = cur.take() {
                out.push(Checkpoint {
                    label: l,
                    t,
                    pid: p,
                    maps: parse_maps(&m).unwrap(),
                });
            }
            let head = String::from_utf8_lossy(head);
            let f: Vec<&str> = head.split_whitespace().collect();
            cur = Some((
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                Vec::new(),
            ));
        } else if let Some((_, _, _, m)) = cur.as_mut() {
            m.extend_from_slice(line);
        }
    }
    if let Some((l, t, p, m)) = cur.take() {
        out.push(Checkpoint {
            label: l,
            t,
            pid: p,
            maps: parse_maps(&m).unwrap(),
        });
    }
    assert!(!out.is_empty(), "no checkpoints written");
    out
}

pub fn mapagent(args: &[&str]) -> Output {
    Command::new(mapagent_bin())
        .args(args)
        .output()
        .expect("run mapagent")
}

pub fn mapagent_json(args: &[&str]) -> serde_json::Value {
    let o = mapagent(args);
    assert!(
        o.status.success(),
        "mapagent {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}"))
}

/// (start, end, perms, offset, name) of one line of maps, exactly as the kernel wrote it.
pub type Row = (u64, u64, String, u64, String);

pub fn kernel_rows(maps: &[Region]) -> Vec<Row> {
    maps.iter()
        .map(|r| {
            (
                r.start,
                r.end,
                r.perms(),
                r.offset,
                String::from_utf8_lossy(&r.name).into_owned(),
            )
        })
        .collect()
}

/// The mappings of `mapagent maps --json` (not those only maybe there: `pending`).
pub fn agent_rows(v: &serde_json::Value) -> Vec<Row> {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["pending"] != true)
        .map(|m| {
            let path = m["path"].as_str().unwrap().to_string();
            (
                m["start"].as_u64().unwrap(),
                m["end"].as_u64().unwrap(),
                m["perms"].as_str().unwrap().to_string(),
                m["offset"].as_u64().unwrap(),
                path,
            )
        })
        .collect()
}

/// How `mapagent maps --at T` compares with the kernel's maps at one checkpoint, line for
/// line: kernel lines mapagent has exactly, those it lacks but covers with a line it marked
/// uncertain (a reconcile found a change over that range in a window holding T), and those
/// it gets wrong. File-backed and other lines are counted apart.
#[derive(Default, Debug)]
pub struct Comparison {
    pub label: String,
    pub file_lines: usize,
    pub file_equal: usize,
    pub other_lines: usize,
    pub other_equal: usize,
    pub marked: Vec<String>,
    pub wrong: Vec<String>,
    pub extra: Vec<String>,
}

fn fmt_row(r: &Row) -> String {
    format!("{:x}-{:x} {} {:08x} {}", r.0, r.1, r.2, r.3, r.4)
}

pub fn compare_checkpoints(rec: &Path) -> Vec<Comparison> {
    let mut out = Vec::new();
    for cp in &checkpoints(rec) {
        let v = mapagent_json(&[
            "maps",
            rec.to_str().unwrap(),
            "--pid",
            &cp.pid.to_string(),
            "--at",
            &cp.t.to_string(),
            "--json",
        ]);
        let got = agent_rows(&v);
        let unsure: Vec<(u64, u64)> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !m["uncertain"].is_null())
            .map(|m| (m["start"].as_u64().unwrap(), m["end"].as_u64().unwrap()))
            .collect();
        let covered = |r: &Row| unsure.iter().any(|&(s, e)| s < r.1 && r.0 < e);
        let mut c = Comparison {
            label: cp.label.clone(),
            ..Default::default()
        };
        for (k, r) in cp.maps.iter().zip(kernel_rows(&cp.maps)) {
            let equal = got.contains(&r);
            if k.is_file() {
                c.file_lines += 1;
                c.file_equal += equal as usize;
            } else {
                c.other_lines += 1;
                c.other_equal += equal as usize;
            }
            if !equal {
                if covered(&r) {
                    c.marked.push(fmt_row(&r));
                } else {
                    c.wrong.push(fmt_row(&r));
                }
            }
        }
        let want = kernel_rows(&cp.maps);
        c.extra = got
            .iter()
            .filter(|r| !want.contains(r) && !covered(r))
            .map(fmt_row)
            .collect();
        out.push(c);
    }
    assert!(!out.is_empty(), "no checkpoints");
    out
}

/// Asserts that `mapagent maps --at T` equals the kernel's maps at every checkpoint, line for
/// line (address, perms, offset, path), except lines mapagent marks uncertain.
pub fn assert_checkpoints_match(rec: &Path) -> Vec<Checkpoint> {
    for c in compare_checkpoints(rec) {
        if !c.wrong.is_empty() || !c.extra.is_empty() {
            let dump = mapagent(&["dump", rec.to_str().unwrap()]);
            panic!(
                "checkpoint {}: mapagent maps differs from the kernel\n  kernel has, mapagent lacks:\n    {}\n  mapagent has, kernel lacks:\n    {}\n--- dump ---\n{}",
                c.label,
                c.wrong.join("\n    "),
                c.extra.join("\n    "),
                String::from_utf8_lossy(&dump.stdout).lines().rev().take(60).collect::<Vec<_>>().join("\n")
            );
        }
    }
    checkpoints(rec)
}

/// The mapping covering `addr` in `mapagent maps --json` output.
pub fn mapping_at(v: &serde_json::Value, addr: u64) -> Option<serde_json::Value> {
    v.as_array()?
        .iter()
        .filter(|m| m["pending"] != true)
        .find(|m| m["start"].as_u64().unwrap() <= addr && addr < m["end"].as_u64().unwrap())
        .cloned()
}

/// Anonymous: kB per mapping (start, end) of a /proc/self/smaps dump.
pub fn smaps_anonymous(path: &Path) -> Vec<(u64, u64, String, u64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 5 && f[0].contains('-') && f[1].len() == 4 {
            let (s, e) = f[0].split_once('-').unwrap();
            let file = f[4] != "0" && f[1].ends_with('p');
            out.push((
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
                if file {
                    f.get(5).unwrap_or(&"").to_string()
                } else {
                    String::new()
                },
                u64::MAX,
            ));
        } else if let Some(v) = l.strip_prefix("Anonymous:") {
            out.last_mut().unwrap().3 = v.trim().trim_end_matches(" kB").trim().parse().unwrap();
        }
    }
    out.into_iter().filter(|m| !m.2.is_empty()).collect()
}
