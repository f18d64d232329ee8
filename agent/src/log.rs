//! The agent's diagnostics: single lines in MAPAGENT_DIR/mapagent.log, or on stderr when
//! MAPAGENT_LOG is set (with `tracing` events at that level). Emitted by the collector and by
//! the application only at start and fork, never from a hook.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

struct Stderr {
    level: Level,
}

struct Msg<'a>(&'a mut String);

impl Visit for Msg<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        use core::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    // Written out so that tracing's default (formatting through Debug) does not link float
    // formatting: its panic locations and vtables are relocated data, private dirty pages in
    // every process (see `mapagent dirty` on libmapagent.so). The agent logs no floats.
    fn record_f64(&mut self, field: &Field, _value: f64) {
        self.record_str(field, "(float)");
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push(' ');
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= self.level
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut line = format!(
            "mapagent[{}] {}:",
            crate::sys::target(),
            e.metadata().level()
        );
        e.record(&mut Msg(&mut line));
        line.push('\n');
        write_out(line.as_bytes());
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Where diagnostics go: the application's stderr only with MAPAGENT_LOG set; otherwise
/// MAPAGENT_DIR/mapagent.log, created at the first line (a clean run leaves no file).
static PATH: OnceLock<CString> = OnceLock::new();
/// The collector keeps the log file open; the application opens it for each line (only at
/// start or fork, never in a hook), so it holds no descriptor of ours.
static KEEP_OPEN: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(-1);
static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Called by the collector before anything else.
pub fn keep_open() {
    KEEP_OPEN.store(true, Ordering::Release);
}

/// Where this process's lines go, from the settings (parsed before any other warning).
pub fn configure(dir: &std::path::Path, level: Option<Level>) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = CString::new(dir.join("mapagent.log").as_os_str().as_bytes()) {
        let _ = PATH.set(c);
    }
    if let Some(level) = level {
        TO_STDERR.store(true, Ordering::Release);
        let _ = tracing::subscriber::set_global_default(Stderr { level });
    }
}

fn open_log() -> i32 {
    use std::os::unix::ffi::OsStrExt;
    let Some(p) = PATH.get() else { return -1 };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(p.as_bytes()));
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    }
}

fn write_out(line: &[u8]) {
    if TO_STDERR.load(Ordering::Acquire) {
        let _ = crate::sys::write_all(2, line);
        return;
    }
    let e = crate::sys::errno();
    if KEEP_OPEN.load(Ordering::Acquire) {
        let mut fd = FD.load(Ordering::Acquire);
        if fd < 0 {
            fd = open_log();
            FD.store(fd, Ordering::Release);
        }
        if fd >= 0 {
            let _ = crate::sys::write_all(fd, line);
        }
    } else {
        let fd = open_log();
        if fd >= 0 {
            let _ = crate::sys::write_all(fd, line);
            unsafe { libc::close(fd) };
        }
    }
    crate::sys::set_errno(e);
}

/// One line of the agent's own: "mapagent[PID]: ...", PID being the recorded process. Never
/// called from a hook, so it may allocate.
pub fn line(parts: &[&[u8]]) {
    let mut buf = format!("mapagent[{}]: ", crate::sys::target()).into_bytes();
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.truncate(511);
    buf.push(b'\n');
    write_out(&buf);
}
