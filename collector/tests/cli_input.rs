//! Bad input to the CLI: one clear line saying what and where, exit code 2, never a panic;
//! a truncated file still shows everything before the cut.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A real record file written by the agent.
fn real_record() -> PathBuf {
    real_record_in("cli-real")
}

/// The same in a scratch directory of its own (scratch directories are made afresh: two tests
/// running at once must not share one).
fn real_record_in(name: &str) -> PathBuf {
    let rec = scratch(name).join("rec");
    let exe = cc("lifecycle", &["lifecycle.c"], &["-pthread"]);
    let o = std::process::Command::new(exe)
        .args(["storm", "1", "200"])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::read_dir(&rec)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let o = mapagent(args);
    let r = Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "mapagent {args:?} panicked: {}",
        r.stderr
    );
    r
}

/// Every read-only command on `path` fails with exit 2 and one stderr line containing `what`.
fn all_fail(path: &Path, what: &str) {
    let p = path.to_str().unwrap();
    for args in [
        vec!["dump", p],
        vec!["dump", p, "--json"],
        vec!["maps", p],
        vec!["maps", p, "--json"],
        vec!["images", p],
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(2), "mapagent {args:?}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "mapagent {args:?} said more than one line: {}",
            r.stderr
        );
        assert!(
            lines[0].starts_with("mapagent: error: ") && lines[0].contains(what),
            "mapagent {args:?}: {}",
            r.stderr
        );
    }
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch(&format!("cli-bad-{name}")).join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn missing_file() {
    all_fail(
        Path::new("/nonexistent/x.mrec"),
        "/nonexistent/x.mrec: no such file or directory",
    );
}

#[test]
fn empty_and_foreign_files() {
    all_fail(&write("empty.mrec", b""), "empty file");
    all_fail(
        Path::new("/bin/true"),
        "not a mapagent record (looks like an ELF file)",
    );
    let mut perf = b"PERFILE2".to_vec();
    perf.extend_from_slice(&[0u8; 200]);
    all_fail(&write("perf.data", &perf), "looks like a perf.data file");
    all_fail(
        &write("junk.mrec", b"hello world, this is not a record"),
        "bad magic at offset 0",
    );
}

#[test]
fn future_version() {
    let mut data = std::fs::read(real_record()).unwrap();
    data[8] = 9; // major version 9
    let crc = mapagent_record::crc32c::checksum(&data[..24]);
    data[24..28].copy_from_slice(&crc.to_le_bytes());
    data[10] = 7; // minor 7
    let crc = mapagent_record::crc32c::checksum(&data[..24]);
    data[24..28].copy_from_slice(&crc.to_le_bytes());
    all_fail(
        &write("future.mrec", &data),
        "record format version 9.7 is newer than this mapagent reads (1.x)",
    );
}

#[test]
fn corrupt_frame() {
    let data = std::fs::read(real_record()).unwrap();
    // Flip a byte in the middle of the file, inside some frame's payload or header.
    let mut bad = data.clone();
    let at = data.len() / 2;
    bad[at] ^= 0x5a;
    let p = write("corrupt.mrec", &bad);
    all_fail(&p, "corrupt record at offset 0x");
    // A directory holding it fails the same way, naming the file.
    let dir = p.parent().unwrap().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&p, dir.join("1.mrec")).unwrap();
    all_fail(&dir, "1.mrec: corrupt record");
}

#[test]
fn truncated_file_shows_what_precedes_the_cut() {
    let data = std::fs::read(real_record()).unwrap();
    let whole = run(&["dump", real_record().to_str().unwrap()]);
    assert_eq!(whole.code, Some(0));
    let total = whole.stdout.lines().filter(|l| l.starts_with("0x")).count();
    // Frame starts, from the dump: cut a few bytes into a frame a third and half way in.
    let json = run(&["dump", real_record().to_str().unwrap(), "--json"]);
    let offsets: Vec<usize> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["offset"].as_u64())
        .map(|o| o as usize)
        .collect();
    assert!(offsets.len() > 10);
    for frac in [3, 2] {
        let cut = offsets[offsets.len() * (frac - 1) / frac] + 5;
        let p = write(&format!("cut{frac}.mrec"), &data[..cut]);
        let r = run(&["dump", p.to_str().unwrap()]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        let shown = r.stdout.lines().filter(|l| l.starts_with("0x")).count();
        assert!(shown > 0 && shown < total, "{shown} of {total}");
        assert!(
            r.stderr.contains("warning:") && r.stderr.contains("truncated at offset 0x"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        // maps and images still answer from what is there.
        let m = run(&["maps", p.to_str().unwrap()]);
        assert_eq!(m.code, Some(2));
        assert!(m.stdout.contains("mappings,"), "{}", m.stdout);
        assert!(m.stdout.contains("cut short"), "{}", m.stdout);
    }
}

#[test]
fn bad_arguments() {
    let p = real_record();
    let p = p.to_str().unwrap();
    let r = run(&["maps", p, "--at", "yesterday"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("bad time 'yesterday'"), "{}", r.stderr);
    let r = run(&["maps", p, "--pid", "1"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("no recording of pid 1 (recorded: "),
        "{}",
        r.stderr
    );
    let empty = scratch("cli-emptydir");
    let r = run(&["maps", empty.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("no record files"), "{}", r.stderr);
    let r = run(&["run", "--", "/nonexistent-program"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("command not found"), "{}", r.stderr);
}

#[test]
fn run_reports_records_and_exit_status() {
    let dir = scratch("cli-run");
    let exe = cc("lifecycle", &["lifecycle.c"], &["-pthread"]);
    let lib = agent();
    let o = std::process::Command::new(mapagent_bin())
        .args(["run", "-o"])
        .arg(dir.join("rec"))
        .arg("--")
        .arg(&exe)
        .arg("exit7")
        .env("MAPAGENT_LIB", &lib)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "exits with the command's status");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mapagent: 1 record file in "), "{err}");
    let o = std::process::Command::new(mapagent_bin())
        .args(["run", "-o"])
        .arg(dir.join("rec2"))
        .arg("--")
        .arg(&exe)
        .arg("segv")
        .env("MAPAGENT_LIB", &lib)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(128 + libc::SIGSEGV),
        "a signal becomes 128+n, as in a shell"
    );
    // A static executable cannot be observed: say so.
    let stat = cc("static_hello", &["static_hello.c"], &["-static"]);
    let o = std::process::Command::new(mapagent_bin())
        .args(["run", "-o"])
        .arg(dir.join("rec3"))
        .arg("--")
        .arg(&stat)
        .env("MAPAGENT_LIB", &lib)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("statically linked (no PT_INTERP)") && err.contains("no records written"),
        "{err}"
    );
}

/// Issue 11: an output that names an input, a record file, a symlink or a directory is
/// refused with one line and exit 2, and what it named is left as it was.
#[test]
fn outputs_never_destroy_inputs_or_follow_symlinks() {
    let rec = real_record_in("cli-outputs-rec");
    let dir = scratch("cli-outputs");
    let r = rec.to_str().unwrap();
    let original = std::fs::read(&rec).unwrap();
    // A perf.data to inject into: the agent's own standalone one.
    let data = dir.join("p.data");
    assert_eq!(
        run(&["perf", r, "-o", data.to_str().unwrap()]).code,
        Some(0)
    );
    let perf_bytes = std::fs::read(&data).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    let link = dir.join("planted");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let d = data.to_str().unwrap();
    let l = link.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["inject", "-i", d, "-o", d, r], "is also an input"),
        (vec!["perf", r, "-o", r], "is also an input"),
        (vec!["perf", r, "-o", l], "is a symbolic link"),
        (vec!["mem", r, "--svg", r], "is also an input"),
        (vec!["mem", r, "--svg", l], "is a symbolic link"),
        (
            vec!["perf", r, "-o", dir.to_str().unwrap()],
            "not a regular file",
        ),
    ];
    for (args, what) in &cases {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(what), "{args:?}: {}", out.stderr);
    }
    // Another record file is not an output either.
    let other = dir.join("other.mrec");
    std::fs::write(&other, &original).unwrap();
    let out = run(&["perf", r, "-o", other.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("is a mapagent record file"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(&rec).unwrap(),
        original,
        "the record is intact"
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        perf_bytes,
        "the perf.data is intact"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"not yours",
        "nothing written through the link"
    );
    // No temporary file is left beside any of them.
    for e in std::fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.contains(".mapagent-"), "left behind: {n}");
    }
}

/// Issue 11: a file holding only the header, or cut inside its first record, is bad input
/// to every command (exit 2, the last line names the file), never a panic.
#[test]
fn header_only_and_cut_in_the_first_record_for_every_command() {
    let rec = real_record_in("cli-header-only");
    let bytes = std::fs::read(&rec).unwrap();
    let dir = scratch("cli-header-only-files");
    for (name, len) in [("header.mrec", 32), ("cut.mrec", 200)] {
        let f = dir.join(name);
        std::fs::write(&f, &bytes[..len]).unwrap();
        let p = f.to_str().unwrap();
        let html = dir.join("o.html");
        let h = html.to_str().unwrap();
        for args in [
            vec!["dump", p],
            vec!["maps", p],
            vec!["images", p],
            vec!["mem", p],
            vec!["watch", p],
            vec!["dirty", p],
            vec!["pages", p, "--image", "libc", "-o", h],
            vec!["diff", p, p],
            vec!["perf", p, "-o", h],
            vec!["shm", "--record", p],
        ] {
            let r = run(&args);
            assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
            let last = r.stderr.lines().last().unwrap_or("");
            assert!(last.contains(name), "{args:?}: {}", r.stderr);
        }
    }
}

/// Runs mapagent with `args` and returns (exit code, stderr, max RSS in KiB) from wait4.
fn run_measured(args: &[&str]) -> (i32, String, i64) {
    let child = std::process::Command::new(mapagent_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut err = child.stderr.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut err, &mut text).unwrap();
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut ru) }, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, text, ru.ru_maxrss)
}

/// Issue 11: a FIFO, a 4 GiB sparse file, an empty and a foreign file: one line each, exit 2,
/// bounded memory, no hang; in a directory they are skipped with a warning each and the good
/// record is still shown.
#[test]
fn fifos_sparse_and_damaged_files_in_a_directory() {
    let good = real_record_in("cli-dir-mixed-rec");
    let dir = scratch("cli-dir-mixed");
    std::fs::copy(&good, dir.join("100.mrec")).unwrap();
    std::fs::write(dir.join("101.mrec"), b"").unwrap();
    std::fs::write(
        dir.join("102.mrec"),
        b"PERFILE2 not ours at all, not ours at all",
    )
    .unwrap();
    let fifo = dir.join("103.mrec");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sparse = dir.join("104.mrec");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    for f in [&fifo, &sparse] {
        let (code, err, rss) = run_measured(&["maps", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {err}", f.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(f.to_str().unwrap()), "{err}");
        assert!(rss < 64 << 10, "{}: {rss} KiB", f.display());
    }
    let d = dir.to_str().unwrap();
    for cmd in ["maps", "images", "dump"] {
        let (code, err, rss) = run_measured(&[cmd, d]);
        assert_eq!(
            code, 2,
            "{cmd}: damaged files make it exit 2 after the rest: {err}"
        );
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
        assert_eq!(warnings.len(), 4, "{cmd}: one warning per bad file: {err}");
        assert!(rss < 128 << 10, "{cmd}: {rss} KiB");
        let o = mapagent(&[cmd, d]);
        assert!(!o.stdout.is_empty(), "{cmd}: the good record is shown");
    }
}
