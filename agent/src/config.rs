//! Settings from the environment, read once in the constructor. A bad value gets one line on
//! stderr and the default; it never stops the application.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute output directory (MAPAGENT_DIR, default ./mapagent-data).
    pub dir: PathBuf,
    /// Capacity of the event channel, in events (MAPAGENT_BUFFER).
    pub buffer: usize,
    /// Longest the writer sleeps between drains, in ms (MAPAGENT_FLUSH_MS).
    pub flush_ms: u64,
    /// Minimum time between full reconciliations not forced by an event, in ms
    /// (MAPAGENT_RECONCILE_MS); 0 disables periodic ones (statm-triggered ones stay).
    pub reconcile_ms: u64,
    /// Most bytes of image copies kept in <dir>/keep, all processes together
    /// (MAPAGENT_KEEP_MAX, with an optional K/M/G suffix).
    pub keep_max: u64,
    /// tracing level for diagnostics (MAPAGENT_LOG), None = silent.
    pub log: Option<tracing::Level>,
    /// Take a page snapshot this often, in ms (MAPAGENT_INTERVAL_MS); 0: never.
    pub interval_ms: u64,
    /// Take a page snapshot when this signal arrives (MAPAGENT_SNAPSHOT_SIGNAL: USR1, SIGUSR2,
    /// RTMIN+3, or a number).
    pub snapshot_signal: Option<i32>,
    /// Globals to watch (MAPAGENT_WATCH=name:type,...): (name, record::watch_type).
    pub watch: Vec<(Vec<u8>, u8)>,
    /// Sample the watched globals this often, in ms (MAPAGENT_WATCH_MS); 0: only with
    /// snapshots and mapagent_watch_sample().
    pub watch_ms: u64,
    /// Pages per CPU of the kernel's ring for its reports of new VMAs (MAPAGENT_KERNEL_PAGES,
    /// a power of two); 0: no kernel timeline, changes behind the hooks wait for a reconcile.
    pub kernel_pages: u32,
    /// MAPAGENT_CRASH_HANDLERS=1: handlers on SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT
    /// (over the default disposition only) that hold a crashing process until the collector
    /// took its last look at the pages. Off by default: the program would see them, and the
    /// collector sees a crash anyway (Exit vanished, with the signal).
    pub crash_handlers: bool,
}

/// The settings as the collector gets them (from the ring's header, not its own environment):
/// set once, before Config::from_block parses them.
static BLOCK: std::sync::atomic::AtomicPtr<Vec<(Vec<u8>, Vec<u8>)>> =
    std::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

fn var_os(name: &str) -> Option<OsString> {
    let b = BLOCK.load(std::sync::atomic::Ordering::Acquire);
    if b.is_null() {
        return std::env::var_os(name);
    }
    let pairs = unsafe { &*b };
    pairs
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| OsString::from_vec(v.clone()))
}

/// Every MAPAGENT_* variable of this process as NUL-separated NAME=VALUE, with MAPAGENT_DIR
/// made absolute (the collector runs elsewhere).
pub fn env_block(cfg: &Config) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let k = k.into_vec();
        if !k.starts_with(b"MAPAGENT_") || k == b"MAPAGENT_DIR" {
            continue;
        }
        out.extend_from_slice(&k);
        out.push(b'=');
        out.extend_from_slice(&v.into_vec());
        out.push(0);
    }
    out.extend_from_slice(b"MAPAGENT_DIR=");
    out.extend_from_slice(cfg.dir.as_os_str().as_encoded_bytes());
    out.push(0);
    out
}

/// MAPAGENT_WATCH: "name:type,name:type"; a bad entry is skipped with a warning.
fn watches() -> Vec<(Vec<u8>, u8)> {
    let Some(v) = var_os("MAPAGENT_WATCH") else {
        return Vec::new();
    };
    let s = v.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let (mut bad, mut first_bad) = (0, String::new());
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, ty) = item.split_once(':').unwrap_or((item, "u64"));
        match mapagent_record::records::watch_type::parse(ty.trim().as_bytes()) {
            Some(t) if !name.is_empty() && name.len() < 256 && out.len() < 64 => {
                out.push((name.trim().as_bytes().to_vec(), t))
            }
            _ => {
                if bad == 0 {
                    first_bad = item.to_string();
                }
                bad += 1;
            }
        }
    }
    // One line for all the bad entries.
    if bad > 0 {
        let what = if bad == 1 {
            first_bad
        } else {
            format!("{first_bad} and {} more", bad - 1)
        };
        warn(
            "MAPAGENT_WATCH",
            &what,
            "expected NAME:TYPE with TYPE u8..u64, i8..i64, f64, ptr, str or chars (64 at most)",
            "the other entries",
        );
    }
    out
}

/// A signal by name or number, for MAPAGENT_SNAPSHOT_SIGNAL. Signals that stop, kill or mean
/// a crash are refused: the agent must not change what they do.
fn signal(var: &str) -> Option<i32> {
    let v = var_os(var)?;
    let s = v.to_string_lossy();
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_prefix("SIG").unwrap_or(&t);
    let n = match t {
        "" => return None,
        "USR1" => Some(libc::SIGUSR1),
        "USR2" => Some(libc::SIGUSR2),
        "HUP" => Some(libc::SIGHUP),
        "WINCH" => Some(libc::SIGWINCH),
        "URG" => Some(libc::SIGURG),
        _ => match t.strip_prefix("RTMIN+") {
            Some(k) => k.parse::<i32>().ok().map(|k| libc::SIGRTMIN() + k),
            None if t == "RTMIN" => Some(libc::SIGRTMIN()),
            None => t.parse::<i32>().ok(),
        },
    };
    let forbidden = |n: i32| {
        n == libc::SIGKILL || n == libc::SIGSTOP || crate::lifecycle::CRASH_SIGNALS.contains(&n)
    };
    match n {
        Some(n) if n > 0 && n <= libc::SIGRTMAX() && !forbidden(n) => Some(n),
        _ => {
            warn(
                var,
                &s,
                "not a signal the agent may take (try USR2)",
                "no snapshot signal",
            );
            None
        }
    }
}

fn warn(var: &str, val: &str, why: &str, default: &str) {
    // The application warned when it parsed them; the collector's second parse stays quiet.
    if !BLOCK.load(std::sync::atomic::Ordering::Acquire).is_null() {
        return;
    }
    crate::log::line(&[
        b"ignoring ",
        var.as_bytes(),
        b"=",
        val.as_bytes(),
        b" (",
        why.as_bytes(),
        b"); using ",
        default.as_bytes(),
    ]);
}

fn num(var: &str, default: u64, min: u64, max: u64) -> u64 {
    let Some(v) = var_os(var) else {
        return default;
    };
    let s = v.to_string_lossy();
    match s.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        Ok(_) => {
            warn(
                var,
                &s,
                &format!("must be between {min} and {max}"),
                &default.to_string(),
            );
            default
        }
        Err(_) => {
            warn(var, &s, "not a number", &default.to_string());
            default
        }
    }
}

/// A byte count with an optional K, M or G suffix.
fn size(var: &str, default: u64) -> u64 {
    let Some(v) = var_os(var) else {
        return default;
    };
    let s = v.to_string_lossy();
    let t = s.trim();
    let (digits, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(n) => n,
        None => {
            warn(
                var,
                &s,
                "expected a size such as 256M",
                &format!("{}M", default >> 20),
            );
            default
        }
    }
}

impl Config {
    /// The collector's copy of the application's settings.
    pub fn from_block(block: &[u8]) -> Config {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = block
            .split(|&c| c == 0)
            .filter_map(|kv| {
                let eq = kv.iter().position(|&c| c == b'=')?;
                Some((kv[..eq].to_vec(), kv[eq + 1..].to_vec()))
            })
            .collect();
        BLOCK.store(
            Box::into_raw(Box::new(pairs)),
            std::sync::atomic::Ordering::Release,
        );
        Config::from_env()
    }

    pub fn from_env() -> Config {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let dir = match var_os("MAPAGENT_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(OsString::from_vec(b"mapagent-data".to_vec())),
        };
        let dir = if dir.is_absolute() {
            dir
        } else {
            cwd.join(dir)
        };
        let log = var_os("MAPAGENT_LOG")
            .map(|v| v.to_string_lossy().into_owned())
            .and_then(|s| {
                let s = s.trim().to_ascii_lowercase();
                match s.as_str() {
                    "" | "0" | "off" => None,
                    "error" => Some(tracing::Level::ERROR),
                    "warn" => Some(tracing::Level::WARN),
                    "1" | "info" => Some(tracing::Level::INFO),
                    "debug" => Some(tracing::Level::DEBUG),
                    "trace" => Some(tracing::Level::TRACE),
                    _ => {
                        warn(
                            "MAPAGENT_LOG",
                            &s,
                            "expected error|warn|info|debug|trace",
                            "info",
                        );
                        Some(tracing::Level::INFO)
                    }
                }
            });
        crate::log::configure(&dir, log);
        Config {
            dir,
            buffer: num("MAPAGENT_BUFFER", 16384, 64, 1 << 22) as usize,
            flush_ms: num("MAPAGENT_FLUSH_MS", 50, 1, 10_000),
            reconcile_ms: num("MAPAGENT_RECONCILE_MS", 1000, 0, 3_600_000),
            keep_max: size("MAPAGENT_KEEP_MAX", 256 << 20),
            log,
            interval_ms: num("MAPAGENT_INTERVAL_MS", 0, 0, 86_400_000),
            snapshot_signal: signal("MAPAGENT_SNAPSHOT_SIGNAL"),
            watch: watches(),
            watch_ms: num("MAPAGENT_WATCH_MS", 0, 0, 86_400_000),
            crash_handlers: num("MAPAGENT_CRASH_HANDLERS", 0, 0, 1) == 1,
            kernel_pages: match num("MAPAGENT_KERNEL_PAGES", 64, 0, 4096) as u32 {
                0 => 0,
                n => n.next_power_of_two(),
            },
        }
    }
}
