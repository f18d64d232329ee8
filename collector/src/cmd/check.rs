//! `mapagent check --max-dirty IMAGE=PAGES... -- CMD`: run CMD under the agent and fail when an
//! image has more private dirty pages than allowed, listing the symbols on them.

use crate::check::{self, Limit};
use crate::error::{Error, Result};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

pub struct Args {
    pub limits: Vec<Limit>,
    /// Keep the records here (default: a temporary directory, kept only when the check fails).
    pub output: Option<PathBuf>,
    pub json: bool,
    pub cmd: Vec<String>,
}

pub const EXIT_OVER_LIMIT: i32 = 1;

pub fn run(a: &Args) -> Result<i32> {
    let Some(program) = a.cmd.first() else {
        return Err(Error::input(
            "check: no command given (mapagent check --max-dirty IMAGE=PAGES -- CMD)",
        ));
    };
    if super::run::resolve_command(program).is_none() {
        return Err(Error::input(format!("check: {program}: command not found")));
    }
    let agent = super::run::find_agent()?;
    let agent = std::fs::canonicalize(&agent).unwrap_or(agent);
    let (dir, temporary) = match &a.output {
        Some(d) => (d.clone(), false),
        None => (fresh_temp_dir()?, true),
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(&a.cmd[1..]);
    let checked = check::run(&mut cmd, &agent, &dir, &a.limits);
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let failed_cmd = !checked.status.success();
    if a.json {
        super::json_out(&checked.violations)?;
    } else {
        for l in &a.limits {
            for r in &checked.reports {
                for im in r.images.iter().filter(|i| i.path.contains(&l.image)) {
                    if im.dirty_pages <= l.max_pages {
                        eprintln!(
                            "mapagent check: ok: {} (pid {}): {} private dirty page{}, limit {}",
                            im.path,
                            r.pid,
                            im.dirty_pages,
                            if im.dirty_pages == 1 { "" } else { "s" },
                            l.max_pages
                        );
                    }
                }
            }
        }
        for v in &checked.violations {
            eprintln!("mapagent check: FAIL: {v}");
        }
    }
    let keep = !temporary || !checked.violations.is_empty() || failed_cmd;
    if keep {
        eprintln!(
            "mapagent check: records in {} (see: mapagent dirty {})",
            dir.display(),
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if failed_cmd {
        let st = checked.status;
        let code = st
            .code()
            .or_else(|| st.signal().map(|s| 128 + s))
            .unwrap_or(1);
        eprintln!("mapagent check: {program} failed ({st})");
        return Ok(code);
    }
    Ok(if checked.violations.is_empty() {
        0
    } else {
        EXIT_OVER_LIMIT
    })
}

/// A new private directory under $TMPDIR.
fn fresh_temp_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..1000 {
        let d = base.join(format!("mapagent-check-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::failure(format!(
                    "cannot create a directory in {}: {e}",
                    base.display()
                )))
            }
        }
    }
    Err(Error::failure(format!(
        "cannot create a directory in {}",
        base.display()
    )))
}
