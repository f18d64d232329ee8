//! Start, fork, exec, exit and fatal signals: the moments the agent must (re)start recording or
//! get everything onto disk before the process image goes away.

use crate::agent::{self, req, Agent};
use crate::config::Config;
use crate::event::{Event, Kind};
use crate::payload::SlotWriter;
use crate::{arena, images, sys, tls};
use core::ffi::{c_char, c_int, c_void};
use mapagent_record::records::{exit_how, origin};
use std::sync::atomic::{AtomicBool, Ordering};

/// How long an exiting or exec'ing thread waits for the writer.
const EXIT_WAIT_NS: u64 = 2_000_000_000;
const CRASH_WAIT_NS: u64 = 1_000_000_000;
/// Longest the starting thread waits for the collector's kernel reports to run (its exec and
/// the baseline take 1-3 ms; a stuck collector costs no more than this).
const KERNEL_READY_WAIT_NS: u64 = 200_000_000;
/// A fork child younger than this at exit does not wait for the collector's last look (the
/// exit page snapshot, a final reconcile): for a child that forks to run a few calls and
/// `_exit`, the hand-off costs more than its whole life. Everything it published is in the
/// ring, which the collector drains after it is gone. (An exec still waits: a look at the
/// maps after the exec would be the new program's.)
const YOUNG_CHILD_NS: u64 = 20_000_000;

fn young_child(ag: &Agent) -> bool {
    ag.origin == origin::FORK as u32 && sys::now().saturating_sub(ag.start_mono) < YOUNG_CHILD_NS
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// The constructor: sets everything up and starts the collector. Runs before main.
pub fn init() {
    // setuid/setgid or other secure-execution: stay completely inert.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return;
    }
    if std::env::var_os("MAPAGENT_OFF").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let _g = tls::Guard::enter();
    let cfg = Config::from_env();
    crate::real::resolve_all();
    let exe = sys::readlink(c"/proc/self/exe").unwrap_or_default();
    images::init(exe.clone());
    crate::collector::find_self();
    unsafe {
        libc_on_exit(at_exit, core::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    if cfg.crash_handlers {
        install_crash_handlers();
    }
    if let Some(sig) = cfg.snapshot_signal {
        install_snapshot_signal(sig);
    }
    start(cfg, origin::START, 0, 0, exe);
    tracing::debug!("agent started");
}

/// Creates the ring, starts the collector on it, sends the baseline (the images loaded now
/// and the kernel's maps, taken by this thread before the application runs on) and starts
/// recording.
fn start(cfg: Config, origin: u8, parent_pid: u32, origin_ts: u64, exe: Vec<u8>) {
    let (ag, fd) = match Agent::new(cfg, origin, parent_pid, origin_ts, exe) {
        Ok(x) => x,
        Err(why) => return agent::disable(why),
    };
    if let Err(why) = crate::collector::spawn(fd, ag.cfg.log.is_some()) {
        ag.dead.store(1, Ordering::Release);
        return agent::disable(why);
    }
    let mut sink = crate::hooks::dl::EventSink {
        ag,
        cause: mapagent_record::records::image_cause::STARTUP,
    };
    if origin == origin::FORK {
        // Never dl_iterate_phdr here: another thread of the parent may have held the
        // loader's lock at fork time, and the child inherits it held.
        images::list_known(&mut sink);
    } else {
        images::list_all(&mut sink);
        // Claim the images present now, so the first dlopen reports only what it loaded.
        images::rescan(&mut NullSink);
    }
    let mut maps = Vec::new();
    let _ = sys::read_file(c"/proc/self/maps", &mut maps);
    let ppid = unsafe { libc::getppid() } as u64;
    ag.push_with(
        Event::new(Kind::Baseline, [ppid, 0, 0, 0, 0, 0, 0, 0]),
        &maps,
    );
    // A fork child does not wait: it would pay for the collector's exec on every fork (a
    // third of a short child's life), and what it maps behind the hooks before the reports
    // start is found by a reconcile, with its window. A new program waits: its start-up is
    // where ld.so and malloc map the most behind the hooks.
    if ag.cfg.kernel_pages > 0 && origin != origin::FORK {
        wait_kernel_ready(ag);
    }
    agent::install(ag);
}

/// Until the collector has opened the kernel's reports on this process (or given up): a VMA
/// made before would be reported to no one. Bounded, and it gives up if the collector dies.
fn wait_kernel_ready(ag: &Agent) {
    let e = sys::errno();
    ag.wake_writer();
    let deadline = sys::now().saturating_add(KERNEL_READY_WAIT_NS);
    while ag.kernel_ready.load(Ordering::Acquire) == 0 && ag.dead.load(Ordering::Acquire) == 0 {
        let now = sys::now();
        if now >= deadline {
            break;
        }
        sys::futex_wait_shared(&ag.kernel_ready, 0, (deadline - now).min(5_000_000));
    }
    sys::set_errno(e);
}

struct NullSink;
impl images::Sink for NullSink {
    fn load(&mut self, _: &images::Seen<'_>) -> bool {
        true
    }
    fn unload(&mut self, _: u64, _: u64) {}
}

extern "C" {
    /// glibc's atexit variant that passes the exit status.
    #[link_name = "on_exit"]
    fn libc_on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

extern "C" fn at_exit(status: c_int, _: *mut c_void) {
    on_exit_now(exit_how::EXIT, status, EXIT_WAIT_NS);
}

/// The process is ending (exit, _exit, fatal signal): final reconcile, Exit record, close.
pub fn exiting(how: u8, code: c_int) {
    on_exit_now(how, code, EXIT_WAIT_NS);
}

fn on_exit_now(how: u8, code: c_int, wait_ns: u64) {
    let Some(ag) = agent::current() else { return };
    // A vfork child shares our memory but is not us.
    if sys::getpid() != ag.ns_pid || tls::is_writer() {
        return;
    }
    if EXITING.swap(true, Ordering::AcqRel) {
        return;
    }
    ag.ctl.exit_how.store(how as u32, Ordering::Release);
    ag.ctl.exit_code.store(code, Ordering::Release);
    if young_child(ag) && how != exit_how::SIGNAL {
        ag.ctl.exit_noted.store(1, Ordering::Release);
        agent::deactivate();
        return;
    }
    let seq = ag.ctl.post(ag, req::EXIT);
    ag.ctl.wait(ag, seq, wait_ns);
    agent::deactivate();
}

/// Before execve and friends: record the exec and make the collector put everything on disk.
pub unsafe fn before_exec(path: *const c_char) {
    let Some(ag) = agent::current() else { return };
    if sys::getpid() != ag.ns_pid || tls::is_writer() {
        return;
    }
    let mut buf = [0u8; 4200];
    let mut w = SlotWriter::new(&mut buf);
    w.cstr(path);
    ag.push_with(Event::new(Kind::Exec, [0; 8]), w.written());
    let seq = ag.ctl.post(ag, req::FLUSH);
    ag.ctl.wait(ag, seq, EXIT_WAIT_NS);
}

/// The exec returned: it failed, and this image carries on recording.
pub fn exec_failed() {
    let Some(ag) = agent::recording() else { return };
    if sys::getpid() != ag.ns_pid {
        return;
    }
    let e = sys::errno();
    ag.push(Event::new(
        Kind::ExecFailed,
        [e as u64, 0, 0, 0, 0, 0, 0, 0],
    ));
    sys::set_errno(e);
}

/// Before fork: no thread of ours may be inside dl_iterate_phdr (glibc's fork does not reset
/// the loader's write lock, so a child would inherit it held), nor hold the arena lock. The
/// loader walk is taken first: a walker allocates from the arena while walking.
extern "C" fn fork_prepare() {
    images::fork_prepare();
    arena::fork_prepare();
}

extern "C" fn fork_parent() {
    arena::fork_release();
    images::fork_release();
}

/// The child of fork(): its own ring, its own collector, its parent noted.
extern "C" fn fork_child() {
    arena::fork_release();
    tls::reset_after_fork();
    images::fork_release();
    EXITING.store(false, Ordering::Release);
    let Some(old) = agent::current() else { return };
    let _g = tls::Guard::enter();
    let ts = sys::now();
    agent::deactivate();
    // Read before the unmap: the parent's identity lives in its ring's header.
    let (parent, exe) = (old.pid as u32, old.ring.exe().to_vec());
    // The parent's ring is the parent's: this process must neither write it nor keep it.
    unsafe { old.ring.unmap() };
    start(old.cfg.clone(), origin::FORK, parent, ts, exe);
}

/// The signals that mean a crash: flushed on, then let through (and never taken over by
/// MAPAGENT_SNAPSHOT_SIGNAL).
pub const CRASH_SIGNALS: [c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The crash signals the agent takes a handler for (over the default only). Not SIGSYS: it
/// is seccomp's, and Chromium's sandbox refuses to install its trap over an existing handler
/// ("Existing signal handler when trying to install SIGSYS"); not SIGTRAP, the debugger's.
/// A process those kill is seen going by the collector (Exit VANISHED, with the signal).
const HANDLED_SIGNALS: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

/// Handlers for crash signals whose disposition is still the default, so a crashing process
/// still gets its last records written. Asynchronous signals (SIGINT, SIGTERM) are left alone:
/// runtimes such as Python install their own only where the default is in place.
/// MAPAGENT_SNAPSHOT_SIGNAL: a snapshot each time it arrives. Installed only over the default
/// disposition; an application that sets its own handler later takes the signal back.
fn install_snapshot_signal(sig: c_int) {
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            crate::log::line(&[
                b"MAPAGENT_SNAPSHOT_SIGNAL: the signal already has a handler; not taking it",
            ]);
            return;
        }
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = crate::api::on_snapshot_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, core::ptr::null_mut());
    }
}

fn install_crash_handlers() {
    for &sig in &HANDLED_SIGNALS {
        unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigfillset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// Flushes, then lets the signal do what it would have done (SA_RESETHAND restored the
/// default): a fault re-occurs when we return; a sent signal is raised again.
extern "C" fn on_fatal(sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let e = sys::errno();
    on_exit_now(exit_how::SIGNAL, sig, CRASH_WAIT_NS);
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    // Returning re-executes a faulting instruction only for these four, when the kernel sent
    // them for a fault; a breakpoint (SIGTRAP), a seccomp trap (SIGSYS) or a signal sent by
    // kill/raise/abort would carry on instead, so raise it again (pending until we return).
    let refaults = matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) && code > 0;
    if !refaults {
        unsafe {
            libc::syscall(libc::SYS_tgkill, sys::getpid(), sys::gettid(), sig);
        }
    }
    sys::set_errno(e);
}
