//! Page-state snapshots from Rust code, for programs run under `libmapagent.so`
//! (`mapagent run -- ./app`, or `LD_PRELOAD=libmapagent.so ./app`).
//!
//! ```no_run
//! // After initialisation, look at what it dirtied:
//! let _ = mapagent_snapshot::snapshot("after-init");
//! // then: mapagent dirty mapagent-data --snapshot after-init
//! ```
//!
//! The agent's `mapagent_snapshot` is looked up at run time, so nothing links against the
//! agent and a program using this crate runs unchanged without it.

use std::ffi::{c_char, c_int, CString};
use std::sync::OnceLock;

type SnapshotFn = unsafe extern "C" fn(*const c_char) -> c_int;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// libmapagent.so is not preloaded in this process.
    NotLoaded,
    /// The agent is loaded but not recording (disabled, inert under setuid), or the snapshot
    /// did not finish within its 30 s wait.
    NotTaken,
    /// The label holds a NUL byte.
    BadLabel,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::NotLoaded => "libmapagent.so is not loaded in this process",
            Error::NotTaken => "the agent did not take the snapshot (not recording, or timed out)",
            Error::BadLabel => "a snapshot label cannot hold a NUL byte",
        })
    }
}

impl std::error::Error for Error {}

type WatchFn = unsafe extern "C" fn() -> c_int;

/// The agent's function `name`, if libmapagent.so is loaded.
fn lookup(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

fn entry() -> Option<SnapshotFn> {
    static F: OnceLock<Option<SnapshotFn>> = OnceLock::new();
    // SAFETY: the agent's `int mapagent_snapshot(const char *)`.
    *F.get_or_init(|| lookup(c"mapagent_snapshot").map(|p| unsafe { std::mem::transmute(p) }))
}

/// Whether libmapagent.so is loaded in this process.
pub fn is_loaded() -> bool {
    entry().is_some()
}

/// Snapshots the state of every page of every mapping, labelled `label`, and returns once the
/// agent has written it (`mapagent dirty --snapshot LABEL` selects it).
pub fn snapshot(label: &str) -> Result<(), Error> {
    let f = entry().ok_or(Error::NotLoaded)?;
    let label = CString::new(label).map_err(|_| Error::BadLabel)?;
    // SAFETY: a valid C string that outlives the call.
    match unsafe { f(label.as_ptr()) } {
        0 => Ok(()),
        _ => Err(Error::NotTaken),
    }
}

/// Samples every global named in MAPAGENT_WATCH now (`mapagent watch` prints the timeline),
/// returning once the agent has written the values.
pub fn watch_sample() -> Result<(), Error> {
    static F: OnceLock<Option<WatchFn>> = OnceLock::new();
    // SAFETY: the agent's `int mapagent_watch_sample(void)`.
    let f = F
        .get_or_init(|| lookup(c"mapagent_watch_sample").map(|p| unsafe { std::mem::transmute(p) }))
        .ok_or(Error::NotLoaded)?;
    // SAFETY: no arguments.
    match unsafe { f() } {
        0 => Ok(()),
        _ => Err(Error::NotTaken),
    }
}
