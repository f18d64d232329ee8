//! Loading a DIR or FILE of recordings and choosing the processes a command looks at.

use crate::error::{Error, Result};
use crate::input::{self, Parsed, Recording};
use crate::text::At;
use crate::timeline::Timeline;
use std::path::Path;

/// Everything under a path, read and parsed. Truncation warnings are printed as the files are
/// read; `truncated` tells the caller to exit non-zero once its output is out.
pub struct Loaded {
    recordings: Vec<Recording>,
    /// What the user named (a file or a directory).
    pub path: std::path::PathBuf,
    /// Files of the directory that could not be opened (each already warned about).
    skipped: usize,
}

impl Loaded {
    pub fn open(path: &Path) -> Result<Loaded> {
        let (recordings, skipped) = input::open_all(path)?;
        Ok(Loaded {
            recordings,
            skipped,
            path: path.to_path_buf(),
        })
    }

    /// Every file, checked. In a directory a damaged file is skipped with one warning (an
    /// empty Parsed marked `skipped`), so that one bad file does not hide the others.
    pub fn parse(&self) -> Result<Vec<Parsed<'_>>> {
        if self.recordings.len() == 1 && self.skipped == 0 {
            return Ok(vec![self.recordings[0].parse()?]);
        }
        let skipped = || Parsed {
            items: Vec::new(),
            truncated: None,
            skipped: true,
        };
        let mut v: Vec<Parsed> = self
            .recordings
            .iter()
            .map(|r| {
                r.parse().unwrap_or_else(|e| {
                    eprintln!("mapagent: warning: {e}; skipped");
                    skipped()
                })
            })
            .collect();
        // Past the recordings (timelines zips the two): they only make the exit code 2.
        v.extend((0..self.skipped).map(|_| skipped()));
        Ok(v)
    }

    pub fn recordings(&self) -> &[Recording] {
        &self.recordings
    }
}

/// Prints truncation warnings; true if any file was cut short.
/// Prints the truncation warnings; true if any file was cut short or skipped as damaged (the
/// command then exits 2 after showing the rest).
pub fn warn_truncated(parsed: &[Parsed<'_>]) -> bool {
    let mut any = false;
    for p in parsed {
        if let Some(w) = &p.truncated {
            eprintln!("mapagent: warning: {w}");
            any = true;
        }
        any |= p.skipped;
    }
    any
}

pub fn timelines<'a>(loaded: &'a Loaded, parsed: &'a [Parsed<'a>]) -> Vec<Timeline<'a>> {
    let mut v: Vec<Timeline> = loaded
        .recordings
        .iter()
        .zip(parsed)
        .filter_map(|(r, p)| {
            let t = Timeline::build(r.path.clone(), p);
            // A lone file gets one line: pick's error names it.
            if t.is_none() && loaded.recordings.len() > 1 && !p.skipped {
                eprintln!(
                    "mapagent: warning: {}: no process record; skipped",
                    r.path.display()
                );
            }
            t
        })
        .collect();
    v.sort_by_key(|t| (t.process.start_mono_ns, t.pid(), t.process.exec_gen));
    v
}

/// The timelines to show: one pid (the program it was running at `at`, or all it ran if `at`
/// is the end) or every process.
pub fn pick<'t, 'a>(
    loaded: &Loaded,
    all: &'t [Timeline<'a>],
    pid: Option<u32>,
    at: At,
) -> Result<Vec<&'t Timeline<'a>>> {
    if all.is_empty() {
        // Nothing to show is bad input, not an empty answer (the warnings above say why
        // each file was skipped).
        return Err(Error::input(format!(
            "{}: no process recorded in it",
            loaded.path.display()
        )));
    }
    let Some(pid) = pid else {
        return Ok(all.iter().collect());
    };
    let mine: Vec<&Timeline> = all.iter().filter(|t| t.pid() == pid).collect();
    if mine.is_empty() {
        let mut pids: Vec<u32> = all.iter().map(|t| t.pid()).collect();
        pids.sort();
        pids.dedup();
        let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        return Err(Error::input(format!(
            "no recording of pid {pid} (recorded: {})",
            list.join(", ")
        )));
    }
    if mine.len() == 1 {
        return Ok(mine);
    }
    // A pid that exec'd has one file per program: the one running at `at`, or the last.
    let chosen = match at {
        At::End => mine.last().copied(),
        _ => mine
            .iter()
            .copied()
            .rfind(|t| {
                at.resolve(t.process.start_mono_ns)
                    .is_some_and(|x| x >= t.process.start_mono_ns)
            })
            .or(mine.first().copied()),
    };
    Ok(chosen.into_iter().collect())
}
