//! The dirty-page gate: hold each image's private dirty pages to a limit, naming the symbols
//! that broke it. `mapagent check` runs a command under the agent and applies it; library
//! authors can call the same functions from their own tests (see examples/dirty-gate).

use crate::dirty::{self, Options, Report, SymbolReport};
use crate::error::{Error, Result};
use crate::select;
use crate::snapshot::Which;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// A limit on an image's private dirty pages (`--max-dirty IMAGE=PAGES`).
#[derive(Clone, Debug)]
pub struct Limit {
    /// Matched against the image's path (a substring, e.g. "libfoo.so").
    pub image: String,
    pub max_pages: u64,
}

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Limit, String> {
        let (image, n) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("'{s}': expected IMAGE=PAGES, e.g. libfoo.so=4"))?;
        let max_pages = n
            .trim()
            .parse()
            .map_err(|_| format!("'{s}': '{n}' is not a number of pages"))?;
        if image.is_empty() {
            return Err(format!("'{s}': no image name before '='"));
        }
        Ok(Limit {
            image: image.to_string(),
            max_pages,
        })
    }
}

/// An image over its limit, with the symbols on its dirty pages (most dirty bytes first).
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub pid: u32,
    pub image: String,
    pub dirty_pages: u64,
    pub max_pages: u64,
    pub symbols: Vec<SymbolReport>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}): {} private dirty pages, limit {}",
            self.image, self.pid, self.dirty_pages, self.max_pages
        )?;
        for s in self.symbols.iter().take(10) {
            let section = if s.section.is_empty() {
                String::new()
            } else {
                format!("{}, ", s.section)
            };
            write!(
                f,
                "\n  {} ({section}{} dirty page{}, {} relocation{}): {}",
                s.name,
                s.dirty_pages,
                if s.dirty_pages == 1 { "" } else { "s" },
                s.relocations,
                if s.relocations == 1 { "" } else { "s" },
                s.verdict
            )?;
        }
        if self.symbols.len() > 10 {
            write!(f, "\n  ... {} more", self.symbols.len() - 10)?;
        }
        Ok(())
    }
}

/// The images in `reports` over their limits. A limit that matches no image is an error: a
/// typo would otherwise make the gate pass forever.
pub fn check(reports: &[Report], limits: &[Limit]) -> std::result::Result<Vec<Violation>, String> {
    let mut out = Vec::new();
    for l in limits {
        let mut matched = false;
        for r in reports {
            for im in r.images.iter().filter(|i| i.path.contains(&l.image)) {
                matched = true;
                if im.dirty_pages > l.max_pages {
                    out.push(Violation {
                        pid: r.pid,
                        image: im.path.clone(),
                        dirty_pages: im.dirty_pages,
                        max_pages: l.max_pages,
                        // The limit counts copied-on-write file pages: symbols only on
                        // touched .bss (anonymous memory) did not break it.
                        symbols: im
                            .symbols
                            .iter()
                            .filter(|s| s.dirty_pages > 0 && !s.section.ends_with("bss"))
                            .cloned()
                            .collect(),
                    });
                }
            }
        }
        if !matched {
            return Err(format!(
                "--max-dirty {}={}: no loaded image matches '{}'",
                l.image, l.max_pages, l.image
            ));
        }
    }
    Ok(out)
}

/// Every process of a recording (a file or directory) analysed at its last snapshot.
pub fn reports(path: &Path) -> Result<Vec<Report>> {
    let loaded = select::Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let all = select::timelines(&loaded, &parsed);
    let mut reports = Vec::new();
    for t in all.iter().filter(|t| !t.snapshots.is_empty()) {
        reports.push(dirty::analyse(t, &Which::End, &Options::default())?);
    }
    if reports.is_empty() {
        return Err(Error::input(format!(
            "{}: no page snapshot in any recording",
            path.display()
        )));
    }
    Ok(reports)
}

/// The gate applied to a recording.
pub fn check_recording(path: &Path, limits: &[Limit]) -> Result<Vec<Violation>> {
    check(&reports(path)?, limits).map_err(Error::input)
}

/// What running a command under the gate found.
#[derive(Debug)]
pub struct Checked {
    pub status: ExitStatus,
    /// Where the records are.
    pub dir: PathBuf,
    pub reports: Vec<Report>,
    pub violations: Vec<Violation>,
}

/// Runs `cmd` with `agent` preloaded, recording into `dir` (created; it should not hold older
/// recordings), waits for it, and applies `limits` to every recorded process.
pub fn run(cmd: &mut Command, agent: &Path, dir: &Path, limits: &[Limit]) -> Result<Checked> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::input(format!("{}: cannot create: {e}", dir.display())))?;
    cmd.env("LD_PRELOAD", preload(agent))
        .env("MAPAGENT_DIR", dir);
    let status = cmd.status().map_err(|e| {
        Error::input(format!(
            "cannot start {}: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    let reports = reports(dir)?;
    let violations = check(&reports, limits).map_err(Error::input)?;
    Ok(Checked {
        status,
        dir: dir.to_path_buf(),
        reports,
        violations,
    })
}

/// LD_PRELOAD with the agent first and whatever the caller had kept after it.
pub fn preload(agent: &Path) -> OsString {
    let mut s = agent.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        s.push(":");
        s.push(old);
    }
    s
}
