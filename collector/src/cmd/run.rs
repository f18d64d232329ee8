//! `mapagent run`: runs a command with libmapagent.so preloaded and says where the records went.

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// Where libmapagent.so is: $MAPAGENT_LIB, next to this executable, or ../lib beside it.
pub fn find_agent() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MAPAGENT_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::input(format!(
                "MAPAGENT_LIB={}: no such file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::failure(format!("cannot find my own executable: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    for cand in [
        dir.join("libmapagent.so"),
        dir.join("../lib/libmapagent.so"),
        dir.join("../lib/mapagent/libmapagent.so"),
    ] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(Error::input(format!(
        "cannot find libmapagent.so next to {} (build it with `cargo build --release`, or set MAPAGENT_LIB)",
        exe.display()
    )))
}

/// The program a command name runs (PATH lookup as the shell does).
pub fn resolve_command(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Why LD_PRELOAD cannot observe this program, if it cannot.
pub fn unobservable(program: &Path) -> Option<String> {
    use object::read::elf::{FileHeader, ProgramHeader};
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(program).ok()?;
    if meta.permissions().mode() & 0o6000 != 0 && unsafe { libc::geteuid() } != 0 {
        return Some("it is setuid/setgid: the agent stays inert under secure execution".into());
    }
    let data = std::fs::read(program).ok()?;
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
    let endian = hdr.endian().ok()?;
    let phdrs = hdr.program_headers(endian, &*data).ok()?;
    let has_interp = phdrs
        .iter()
        .any(|p| p.p_type(endian) == object::elf::PT_INTERP);
    (!has_interp).then(|| "it is statically linked (no PT_INTERP): LD_PRELOAD has no effect, nothing will be recorded".into())
}

fn list(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mrec"))
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(out_dir: Option<PathBuf>, cmd: &[String]) -> Result<i32> {
    let Some(program) = cmd.first() else {
        return Err(Error::input(
            "run: no command given (mapagent run -- CMD [ARGS])",
        ));
    };
    // The command first: a typo should be reported as one, whatever else is missing.
    match resolve_command(program) {
        Some(p) => {
            if let Some(why) = unobservable(&p) {
                eprintln!("mapagent: warning: {}: {why}", p.display());
            }
        }
        None => return Err(Error::input(format!("run: {program}: command not found"))),
    }
    let lib = find_agent()?;
    let lib = std::fs::canonicalize(&lib).unwrap_or(lib);
    let cwd = std::env::current_dir()
        .map_err(|e| Error::failure(format!("cannot read the current directory: {e}")))?;
    let dir = out_dir.unwrap_or_else(|| PathBuf::from("mapagent-data"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        cwd.join(dir)
    };
    let before = list(&dir);
    let preload = crate::check::preload(&lib);
    // The agent's collectors leave the program's process tree at once; as a subreaper we get
    // them back, and wait for them (below) so the records are whole when we return.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    // Like time(1): the child gets the terminal's signals, we wait for it.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let mut child = std::process::Command::new(program);
    child
        .args(&cmd[1..])
        .env("LD_PRELOAD", preload)
        .env("MAPAGENT_DIR", &dir);
    unsafe {
        use std::os::unix::process::CommandExt;
        child.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let status = child
        .status()
        .map_err(|e| Error::input(format!("run: cannot start {program}: {e}")))?;
    wait_for_collectors(std::time::Duration::from_secs(10));
    let new: Vec<PathBuf> = list(&dir).difference(&before).cloned().collect();
    let shown = std::env::current_dir()
        .ok()
        .and_then(|c| dir.strip_prefix(&c).ok().map(|p| p.to_path_buf()))
        .unwrap_or(dir.clone());
    if new.is_empty() {
        eprintln!("mapagent: no records written to {}", shown.display());
    } else {
        let names: Vec<String> = new
            .iter()
            .take(8)
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let more = if new.len() > 8 {
            format!(" and {} more", new.len() - 8)
        } else {
            String::new()
        };
        eprintln!(
            "mapagent: {} record file{} in {}: {}{more}  (see: mapagent maps {})",
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            shown.display(),
            names.join(" "),
            shown.display()
        );
    }
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    })
}

/// Waits (bounded) until no collector process of the agent is left among our children; reaps
/// whatever else was orphaned to us meanwhile.
fn wait_for_collectors(limit: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG | libc::__WALL) } > 0 {
        }
        let me = std::process::id();
        let children =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        let collecting = children.split_ascii_whitespace().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "mapagent-coll")
        });
        if !collecting || start.elapsed() > limit {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
