//! The perf issue: a standalone perf.data that perf 6.1 and linux-perf-data read, and agent
//! records injected into real `perf record` recordings so perf names code it could not.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a perf subcommand; returns (exit ok, stdout, stderr).
fn perf(args: &[&str]) -> (bool, String, String) {
    let o = Command::new("perf")
        .args(args)
        .output()
        .expect("perf is installed");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Share of samples perf report attributes to `sym` (percent).
fn share(data: &Path, cache: &Path, sym: &str) -> f64 {
    let (ok, out, err) = perf(&[
        "--buildid-dir",
        cache.to_str().unwrap(),
        "report",
        "-i",
        data.to_str().unwrap(),
        "--stdio",
        "--sort",
        "sym",
    ]);
    assert!(ok, "perf report: {err}");
    out.lines()
        .filter(|l| l.contains(sym))
        .filter_map(|l| l.trim().split('%').next()?.trim().parse::<f64>().ok())
        .sum()
}

fn hot_lib(name: &str) -> PathBuf {
    cc(
        &format!("hot/libhot_{name}.so"),
        &["hot.c"],
        &["-shared", "-fPIC", &format!("-DNAME={name}")],
    )
}

fn loader() -> PathBuf {
    cc("hot/hot_loader", &["hot_loader.c"], &["-ldl"])
}

/// perf record of `argv` run under the agent.
fn perf_record(dir: &Path, extra: &[&str], argv: &[&str]) -> (PathBuf, PathBuf) {
    let data = dir.join("perf.data");
    let rec = dir.join("rec");
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-q", "-o"])
        .arg(&data)
        .args(extra)
        .arg("--")
        .arg("env");
    cmd.arg(format!("LD_PRELOAD={}", agent().display()))
        .arg(format!("MAPAGENT_DIR={}", rec.display()));
    cmd.args(argv);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "perf record: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (data, rec)
}

fn inject(data: &Path, rec: &Path, cache: &Path) -> (PathBuf, String) {
    let out = data.with_file_name("injected.data");
    let o = mapagent(&[
        "inject",
        "-i",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
        "--buildid-dir",
        cache.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "inject: {err}");
    (out, err)
}

/// perf script -D: no warnings, and the number of records.
fn records_clean(data: &Path, cache: &Path) -> usize {
    let (ok, out, err) = perf(&[
        "--buildid-dir",
        cache.to_str().unwrap(),
        "script",
        "-D",
        "-i",
        data.to_str().unwrap(),
    ]);
    assert!(
        ok && err.trim().is_empty(),
        "perf script -D on {}: {err}",
        data.display()
    );
    out.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|w| w.starts_with('['))
                && l.contains(": PERF_RECORD_")
        })
        .count()
}

/// Records hot_loader MODE (running hot_spin_NAME from libhot_NAME.so for SECS) under perf
/// and the agent, checks that plain perf cannot name the hot function (`why`), injects, and
/// checks that it then has most samples. Returns the recording, the injected file, the cache
/// and inject's message.
fn named_only_after_inject(
    name: &str,
    mode: &str,
    secs: &str,
    why: &str,
) -> (PathBuf, PathBuf, PathBuf, String) {
    let dir = scratch(&format!("perf-{mode}"));
    let lib = hot_lib(name);
    let (data, rec) = perf_record(
        &dir,
        &[],
        &[
            loader().to_str().unwrap(),
            mode,
            lib.to_str().unwrap(),
            secs,
        ],
    );
    let cache = dir.join("cache");
    let hot = format!("hot_spin_{name}");
    assert!(share(&data, &cache, &hot) < 1.0, "{why}");
    let (out, msg) = inject(&data, &rec, &cache);
    let s = share(&out, &cache, &hot);
    assert!(s > 50.0, "after inject most samples are in {hot}, got {s}%");
    (data, out, cache, msg)
}

#[test]
fn memfd_library_named_after_inject() {
    let (data, out, cache, msg) = named_only_after_inject(
        "memfd",
        "memfd",
        "1.5",
        "plain perf cannot name code in a memfd",
    );
    assert!(msg.contains("1 image added to the build-id cache"), "{msg}");
    // Every original record is still there, and perf reads the result without complaint.
    let before = records_clean(&data, &cache);
    let after = records_clean(&out, &cache);
    assert!(after > before, "{before} -> {after}");
}

#[test]
fn deleted_library_named_after_inject() {
    let (_, out, cache, _) = named_only_after_inject(
        "gone",
        "deleted",
        "1.0",
        "plain perf cannot name code in a deleted file",
    );
    records_clean(&out, &cache);
}

/// `mapagent perf-map REC` into /tmp (the only place perf looks); returns the map files written.
fn perf_map(rec: &Path) -> Vec<PathBuf> {
    let o = mapagent(&["perf-map", rec.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "perf-map: {err}");
    err.lines()
        .filter_map(|l| l.strip_prefix("mapagent: ")?.split(':').next())
        .map(PathBuf::from)
        .filter(|p| p.extension().is_some_and(|e| e == "map"))
        .collect()
}

#[test]
fn elf_copied_into_anonymous_memory_named_by_perf_map() {
    let dir = scratch("perf-anon-elf");
    let lib = hot_lib("anon");
    let prog = cc("hot/anon_elf", &["anon_elf.c"], &[]);
    let (data, rec) = perf_record(
        &dir,
        &[],
        &[
            prog.to_str().unwrap(),
            lib.to_str().unwrap(),
            "hot_spin_anon",
            "1.0",
        ],
    );
    let cache = dir.join("cache");
    assert!(
        share(&data, &cache, "hot_spin_anon") < 1.0,
        "without a map file perf cannot name code in anonymous memory"
    );
    let maps = perf_map(&rec);
    assert_eq!(maps.len(), 1, "{maps:?}");
    let text = std::fs::read_to_string(&maps[0]).unwrap();
    let s = share(&data, &cache, "hot_spin_anon");
    std::fs::remove_file(&maps[0]).unwrap();
    assert!(
        text.lines().any(|l| l.ends_with(" hot_spin_anon")),
        "{text}"
    );
    assert!(
        s > 50.0,
        "with the map most samples are in hot_spin_anon, got {s}%"
    );
}

#[test]
fn memfd_as_anon_named_through_perf_map() {
    let dir = scratch("perf-memfd-anon");
    let lib = hot_lib("memfd");
    let (data, rec) = perf_record(
        &dir,
        &[],
        &[
            loader().to_str().unwrap(),
            "memfd",
            lib.to_str().unwrap(),
            "1.0",
        ],
    );
    let cache = dir.join("cache");
    let out = dir.join("anon.data");
    let o = mapagent(&[
        "inject",
        "--memfd-as-anon",
        "-i",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
        "--buildid-dir",
        cache.to_str().unwrap(),
    ]);
    let msg = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{msg}");
    assert!(
        msg.contains("0 images added to the build-id cache"),
        "{msg}"
    );
    let maps = perf_map(&rec);
    assert_eq!(maps.len(), 1, "{maps:?}");
    let s = share(&out, &cache, "hot_spin_memfd");
    std::fs::remove_file(&maps[0]).unwrap();
    assert!(s > 50.0, "most samples are in hot_spin_memfd, got {s}%");
}

#[test]
fn clock_monotonic_recordings_are_exact() {
    let dir = scratch("perf-mono");
    let lib = hot_lib("memfd");
    let (data, rec) = perf_record(
        &dir,
        &["-k", "CLOCK_MONOTONIC"],
        &[
            loader().to_str().unwrap(),
            "memfd",
            lib.to_str().unwrap(),
            "0.5",
        ],
    );
    let cache = dir.join("cache");
    let (out, msg) = inject(&data, &rec, &cache);
    assert!(msg.contains("clock: CLOCK_MONOTONIC, exact"), "{msg}");
    assert!(share(&out, &cache, "hot_spin_memfd") > 50.0);
}

#[test]
fn perf_attached_after_a_swap_resolves_to_the_library_mapped_then() {
    let dir = scratch("perf-swap");
    let (a, b) = (hot_lib("alpha"), hot_lib("beta"));
    let rec = dir.join("rec");
    let ready = dir.join("ready");
    let mut child = Command::new(loader())
        .args([
            "swap",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "2.5",
            ready.to_str().unwrap(),
        ])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !ready.exists() {
        assert!(t0.elapsed().as_secs() < 30, "the swap never happened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // alpha was loaded, run, unloaded, and beta now sits at its old address: attach now.
    let data = dir.join("perf.data");
    let (ok, _, err) = perf(&[
        "record",
        "-q",
        "-o",
        data.to_str().unwrap(),
        "-p",
        &child.id().to_string(),
        "--",
        "sleep",
        "1",
    ]);
    assert!(ok, "perf record -p: {err}");
    assert!(child.wait().unwrap().success());
    let cache = dir.join("cache");
    let (out, _) = inject(&data, &rec, &cache);
    // The injected history has alpha at that address first, then beta: samples (all after
    // the swap) must resolve to beta, not to the library that was there before.
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let bias = |n: &str| {
        images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"].as_str().unwrap().ends_with(n))
            .unwrap()["load_bias"]
            .as_u64()
    };
    assert_eq!(
        bias("libhot_alpha.so"),
        bias("libhot_beta.so"),
        "beta took alpha's address"
    );
    assert!(share(&out, &cache, "hot_spin_beta") > 50.0);
    assert!(share(&out, &cache, "hot_spin_alpha") < 1.0);
    records_clean(&out, &cache);
}

/// Opens a fifo without blocking forever on a perf that never came up.
fn open_fifo(path: &Path, write: bool, perf: &mut std::process::Child) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let t0 = std::time::Instant::now();
    loop {
        let r = std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match r {
            Ok(f) => return f,
            // ENXIO: no reader yet (perf has not opened its end).
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
        assert!(
            perf.try_wait().unwrap().is_none(),
            "perf record exited early"
        );
        assert!(
            t0.elapsed().as_secs() < 30,
            "perf never opened its control fifo"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn perf_attached_mid_run_names_two_deleted_libraries_at_one_address() {
    use std::io::{Read, Write};
    let dir = scratch("perf-attach-deleted");
    let (a, b) = (hot_lib("alpha"), hot_lib("beta"));
    let rec = dir.join("rec");
    let (ready, go) = (dir.join("ready"), dir.join("go"));
    // alpha runs, is unloaded, beta is loaded at its address and runs; both files are deleted
    // right after their dlopen, so perf cannot read either.
    let mut child = Command::new(loader())
        .args([
            "swap-wait",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "1.0",
            ready.to_str().unwrap(),
            go.to_str().unwrap(),
        ])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !dir.join("ready.a").exists() {
        assert!(t0.elapsed().as_secs() < 30, "alpha was never loaded");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Attach with events off; perf acknowledges on its fifo once they are on, and only then
    // does the program start running in alpha.
    let (ctl, ack) = (dir.join("ctl"), dir.join("ack"));
    for f in [&ctl, &ack] {
        let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let data = dir.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "-q", "-D", "-1", "--control"])
        .arg(format!("fifo:{},{}", ctl.display(), ack.display()))
        .arg("-o")
        .arg(&data)
        .args(["-p", &child.id().to_string()])
        .spawn()
        .unwrap();
    let mut acks = open_fifo(&ack, false, &mut perf);
    open_fifo(&ctl, true, &mut perf)
        .write_all(b"enable\n")
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("ack") {
        let mut buf = [0u8; 16];
        match acks.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading perf's ack: {e}"),
        }
        assert!(t0.elapsed().as_secs() < 60, "perf never enabled its events");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(&go, b"").unwrap();
    assert!(child.wait().unwrap().success());
    // perf record -p ends when the process does.
    assert!(perf.wait().unwrap().success());
    let cache = dir.join("cache");
    for sym in ["hot_spin_alpha", "hot_spin_beta"] {
        assert!(
            share(&data, &cache, sym) < 1.0,
            "plain perf cannot name {sym}: its file was deleted"
        );
    }
    let (out, msg) = inject(&data, &rec, &cache);
    assert!(
        msg.contains("2 images added to the build-id cache"),
        "{msg}"
    );
    // Each sample resolves to the library mapped at its time: about half each.
    let (sa, sb) = (
        share(&out, &cache, "hot_spin_alpha"),
        share(&out, &cache, "hot_spin_beta"),
    );
    assert!(sa > 25.0 && sb > 25.0, "alpha {sa}%, beta {sb}%: {msg}");
    assert!(sa + sb > 95.0, "alpha {sa}% + beta {sb}%");
    records_clean(&out, &cache);
}

#[test]
fn standalone_perf_data_is_read_by_perf_and_linux_perf_data() {
    let dir = scratch("perf-standalone");
    let lib = hot_lib("memfd");
    let rec = dir.join("rec");
    run_agent(
        &[
            loader().to_str().unwrap(),
            "memfd",
            lib.to_str().unwrap(),
            "0.1",
        ],
        &rec,
        &[],
    );
    let out = dir.join("out.data");
    let o = mapagent(&["perf", rec.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = out.to_str().unwrap();
    let cache = dir.join("cache");
    for args in [
        vec!["script", "-D", "-i", p],
        vec!["script", "--show-mmap-events", "-i", p],
        vec!["report", "--stdio", "-i", p],
        vec!["buildid-list", "-i", p],
    ] {
        let mut full = vec!["--buildid-dir", cache.to_str().unwrap()];
        full.extend(&args);
        let (ok, _, err) = perf(&full);
        assert!(ok, "perf {args:?} failed: {err}");
        assert!(err.trim().is_empty(), "perf {args:?} complained: {err}");
    }
    let json = dir.join("out.json");
    let (ok, _, err) = perf(&[
        "data",
        "convert",
        "-i",
        p,
        "--to-json",
        json.to_str().unwrap(),
    ]);
    assert!(
        ok && !err.to_lowercase().contains("warn"),
        "perf data convert: {err}"
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        j["headers"]["os-release"].as_str().map(|s| !s.is_empty()),
        Some(true),
        "{}",
        j["headers"]
    );
    // buildid-list shows the images' build-ids, the memfd library's among them.
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let (_, list, _) = perf(&["buildid-list", "-i", p]);
    for im in images.as_array().unwrap() {
        let bid = im["build_id"].as_str().unwrap();
        if !bid.is_empty() && !im["path"].as_str().unwrap().starts_with("linux-vdso") {
            assert!(
                list.contains(bid),
                "{bid} missing from buildid-list:\n{list}"
            );
        }
    }
    // An independent reader: mstange's linux-perf-data.
    use linux_perf_data::linux_perf_event_reader::{EventRecord, Mmap2FileId};
    use linux_perf_data::{PerfFileReader, PerfFileRecord};
    let f = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = PerfFileReader::parse_file(f).expect("linux-perf-data parses it");
    assert_eq!(
        perf_file.hostname().unwrap().map(|s| s.to_string()),
        Some(hostname())
    );
    let (mut mmap2, mut with_bid, mut comm, mut exit) = (0, 0, 0, 0);
    let mut memfd = false;
    while let Some(r) = record_iter
        .next_record(&mut perf_file)
        .expect("records parse")
    {
        if let PerfFileRecord::EventRecord { record, .. } = r {
            match record.parse().expect("record parses") {
                EventRecord::Mmap2(m) => {
                    mmap2 += 1;
                    if matches!(m.file_id, Mmap2FileId::BuildId(_)) {
                        with_bid += 1;
                    }
                    memfd |=
                        String::from_utf8_lossy(&m.path.as_slice()).starts_with("/memfd:hotlib");
                }
                EventRecord::Comm(_) => comm += 1,
                EventRecord::Exit(_) => exit += 1,
                _ => {}
            }
        }
    }
    assert!(
        mmap2 >= 10 && with_bid >= 10 && comm == 1 && exit == 1 && memfd,
        "{mmap2} {with_bid} {comm} {exit} {memfd}"
    );
}

fn hostname() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn inject_refuses_what_it_cannot_rewrite() {
    let dir = scratch("perf-refuse");
    let pipe = dir.join("pipe.data");
    let sh = format!("perf record -q -e dummy -o - -- true > {}", pipe.display());
    assert!(Command::new("sh")
        .args(["-c", &sh])
        .status()
        .unwrap()
        .success());
    let rec = dir.join("rec");
    run_agent(&["/bin/true"], &rec, &[]);
    let out = dir.join("out.data");
    let o = mapagent(&[
        "inject",
        "-i",
        pipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pipe-mode perf.data"), "{err}");
    // A mapagent record passed as the perf.data.
    let f = std::fs::read_dir(&rec)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = mapagent(&[
        "inject",
        "-i",
        f.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("this is a mapagent record, not a perf.data file"));
}

/// Issue 11: the agent keeps its copies in a directory of its own mode (0700, copies 0600),
/// and a `keep` planted as a symlink in MAPAGENT_DIR is refused, not followed.
#[test]
fn kept_copies_are_private_and_a_planted_keep_symlink_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let lib = hot_lib("memfd");
    let dir = scratch("keep-modes");
    let run_in = |rec: &Path| {
        let o = Command::new(loader())
            .args(["memfd", lib.to_str().unwrap(), "0.05"])
            .env("LD_PRELOAD", agent())
            .env("MAPAGENT_DIR", rec)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let rec = dir.join("rec");
    run_in(&rec);
    let keep = rec.join("keep");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keep), 0o700);
    let kept: Vec<_> = std::fs::read_dir(&keep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!kept.is_empty(), "the memfd image was kept");
    for k in &kept {
        assert_eq!(mode(k), 0o600, "{}", k.display());
    }
    // Planted: rec2/keep -> a directory of someone else's choosing.
    let rec2 = dir.join("rec2");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&rec2).unwrap();
    std::fs::set_permissions(&rec2, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, rec2.join("keep")).unwrap();
    run_in(&rec2);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through it"
    );
    let dumps = record_dumps(&rec2);
    let reasons: Vec<String> = dumps
        .iter()
        .flat_map(|(_, r)| r.iter())
        .filter(|r| r["type"] == "KeptImage")
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        !reasons.is_empty() && reasons.iter().all(|r| r.contains("not a directory")),
        "{reasons:?}"
    );
}
