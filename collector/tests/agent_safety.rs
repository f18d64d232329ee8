//! The agent changes nothing the application can see: dlopen's binding modes, and under
//! secure execution (setuid) it does nothing at all. MAPAGENT_LOG gives diagnostics.

mod common;
use common::*;
use std::process::Command;

#[test]
fn rtld_deepbind_and_default_binding_are_unchanged() {
    let lib = cc(
        "deepbind/libdeepbind.so",
        &["deepbind_lib.c"],
        &["-shared", "-fPIC"],
    );
    let exe = cc(
        "deepbind/deepbind_main",
        &["deepbind_main.c"],
        &["-rdynamic", "-ldl"],
    );
    let dir = scratch("deepbind");
    for (mode, want) in [("deep", "library\n"), ("plain", "executable\n")] {
        let plain = Command::new(&exe)
            .args([lib.to_str().unwrap(), mode])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&plain.stdout),
            want,
            "without the agent"
        );
        let with = run_agent(
            &[exe.to_str().unwrap(), lib.to_str().unwrap(), mode],
            &dir.join(mode),
            &[],
        );
        assert_eq!(
            String::from_utf8_lossy(&with.stdout),
            want,
            "{mode} with the agent"
        );
    }
}

#[test]
fn inert_under_setuid() {
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    // Secure execution: a setuid-root program run by nobody. glibc then preloads only
    // set-user-ID libraries from its system directories, so install one there for the test.
    let sysdir = std::path::Path::new("/usr/lib/x86_64-linux-gnu");
    let name = format!("libmapagent-suidtest-{}.so", std::process::id());
    let lib = sysdir.join(&name);
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    std::fs::copy(agent(), &lib).unwrap();
    let _cleanup = Remove(lib.clone());
    let dir = scratch("setuid");
    let exe = dir.join("lifecycle-suid");
    std::fs::copy(cc("lifecycle", &["lifecycle.c"], &["-pthread"]), &exe).unwrap();
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    let cp = dir.join("cp");
    std::fs::write(&cp, b"").unwrap();
    let chmod = |p: &std::path::Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    chmod(&lib, 0o4755);
    chmod(&exe, 0o4755);
    chmod(&dir, 0o755);
    chmod(&rec, 0o777);
    chmod(&cp, 0o666);
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["find", &name])
        .env("LD_PRELOAD", &name)
        .env("MAPAGENT_DIR", &rec)
        .env("CHECKPOINT_FILE", &cp)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("found=1"),
        "the library was preloaded (else this test proves nothing): {out}"
    );
    // setpriv itself (not setuid) got the library from the name in LD_PRELOAD too and is
    // recorded up to its exec; the setuid program it exec'd must have written nothing.
    for f in std::fs::read_dir(&rec).unwrap() {
        let f = f.unwrap().path();
        let d = String::from_utf8(mapagent(&["dump", f.to_str().unwrap()]).stdout).unwrap();
        let first = d.lines().next().unwrap_or("");
        assert!(
            first.contains("exe=/usr/bin/setpriv"),
            "only setpriv is recorded, not the setuid program: {first}"
        );
    }
    assert!(
        o.stderr.is_empty(),
        "and say nothing: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn mapagent_log_prints_diagnostics_on_stderr() {
    let rec = scratch("log").join("rec");
    let exe = cc("lifecycle", &["lifecycle.c"], &["-pthread"]);
    let o = Command::new(exe)
        .arg("exit7")
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .env("MAPAGENT_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("mapagent[") && l.contains("INFO") && l.contains("recording")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("DEBUG") && l.contains("agent started")),
        "{err}"
    );
}

#[test]
fn dropping_privileges_with_kept_capabilities_does_not_abort() {
    // setpriv keeps capabilities on its own thread (PR_SET_KEEPCAPS, capset) across setresuid,
    // then calls setresgid: glibc runs that on every thread and aborts if any disagrees. The
    // agent parks its writer around such calls; without that the writer's copy fails (EPERM).
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = scratch("setpriv");
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "/bin/true",
        ])
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "setpriv under the agent: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    // setpriv's file goes on after the credential change and ends with the exec; /bin/true,
    // now running as nobody, has its own.
    let dumps: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| {
            String::from_utf8(mapagent(&["dump", e.unwrap().path().to_str().unwrap()]).stdout)
                .unwrap()
        })
        .collect();
    assert_eq!(dumps.len(), 2);
    let setpriv = dumps
        .iter()
        .find(|d| d.lines().next().unwrap().contains("exe=/usr/bin/setpriv"))
        .expect("setpriv's file");
    assert!(
        setpriv
            .lines()
            .any(|l| l.contains(" EXEC ") && l.contains("path=/bin/true")),
        "{setpriv}"
    );
    let t = dumps
        .iter()
        .find(|d| d.lines().next().unwrap().contains("exe=/usr/bin/true"))
        .expect("true's file");
    assert!(t.lines().next().unwrap().contains("uid=65534"), "{t}");
}
