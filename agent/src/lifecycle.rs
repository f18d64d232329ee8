//! Start, fork, exec, exit and fatal signals: the moments the agent must (re)start recording or
//! get everything onto disk before the process image goes away.

use crate::agent::{self, req, Agent};
use crate::config::Config;
use crate::event::{Event, Kind};
use crate::pool::SlotWriter;
use crate::{arena, images, sys, tls, writer};
use core::ffi::{c_char, c_int, c_void};
use mapagent_record::records::{exit_how, origin};
use std::sync::atomic::{AtomicBool, Ordering};

/// How long an exiting or exec'ing thread waits for the writer.
const EXIT_WAIT_NS: u64 = 2_000_000_000;
const CRASH_WAIT_NS: u64 = 1_000_000_000;

static EXITING: AtomicBool = AtomicBool::new(false);

/// The constructor: sets everything up and starts the writer. Runs before main.
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
    crate::log::init(cfg.log);
    crate::real::resolve_all();
    let exe = sys::readlink(c"/proc/self/exe").unwrap_or_default();
    images::init(exe.clone());
    // Claim the images present now, so the first dlopen reports only what it loaded.
    images::rescan(&mut NullSink);
    let ag = Agent::new(cfg, origin::START, 0, 0, exe);
    unsafe {
        libc_on_exit(at_exit, core::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    install_crash_handlers();
    if let Some(sig) = ag.cfg.snapshot_signal {
        install_snapshot_signal(sig);
    }
    // Grown later, with threads sharing it, the descriptor table costs an RCU grace period
    // in the kernel (10 ms measured here), which the first dlopen would pay in high_fd.
    sys::grow_fd_table(crate::hooks::dl::HIGH_FD);
    // Opened now, before main can have closed 0 and expect it back from its next open(): the
    // writer starts alongside main and reads these at once.
    let _ = sys::PROC_MAPS.ensure();
    let _ = sys::PROC_STATM.ensure();
    start(ag, true);
    tracing::debug!("agent started");
}

struct NullSink;
impl images::Sink for NullSink {
    fn load(&mut self, _: &images::Seen<'_>) -> bool {
        true
    }
    fn unload(&mut self, _: u64, _: u64) {}
}

/// Starts the writer, then takes the baseline (so the writer's own stack and whatever glibc
/// allocated for it are in it) and starts recording. Runs before the application continues.
fn start(ag: &'static Agent, list_images: bool) {
    if writer::spawn(ag).is_err() {
        agent::disable(b"cannot start the writer thread");
        return;
    }
    ag.hand_over(writer::Baseline::take(ag, list_images));
    agent::install(ag);
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
    // A vfork child shares our memory but is not us; the writer thread is not ours to stop.
    if sys::getpid() != ag.pid || tls::is_writer() {
        return;
    }
    if EXITING.swap(true, Ordering::AcqRel) {
        return;
    }
    ag.ctl.exit_how.store(how as u32, Ordering::Release);
    ag.ctl.exit_code.store(code, Ordering::Release);
    let seq = ag.ctl.post(ag, req::EXIT);
    ag.ctl.wait(seq, wait_ns);
}

/// Before execve and friends: record the exec and make the writer put everything on disk.
pub unsafe fn before_exec(path: *const c_char) {
    let Some(ag) = agent::current() else { return };
    if sys::getpid() != ag.pid || tls::is_writer() {
        return;
    }
    if let Some(slot) = ag.pool.take() {
        SlotWriter::new(ag.pool.bytes(slot)).cstr(path);
        let mut ev = Event::new(Kind::Exec, [0; 8]);
        ev.slot = slot;
        ag.push(ev);
    } else {
        ag.drop_one();
    }
    let seq = ag.ctl.post(ag, req::FLUSH);
    ag.ctl.wait(seq, EXIT_WAIT_NS);
}

/// Runs a credential change (the set*id family, setgroups) with the writer parked. glibc
/// applies such a change to every thread of the process and aborts if they disagree; a
/// program that keeps capabilities on its own thread (PR_SET_KEEPCAPS, capset, as setpriv
/// does) would make the writer's copy fail. So the writer saves its state and ends, the change
/// runs in a single-threaded process, and a new writer thread (with the new credentials) takes
/// over.
pub fn with_writer_parked(change: impl FnOnce() -> c_int) -> c_int {
    let Some(ag) = agent::current() else {
        return change();
    };
    // The writer itself, a vfork child, or this very thread again (a signal handler calling
    // setuid while we are parking): no parking.
    if tls::is_writer() || sys::getpid() != ag.pid || tls::get().flags & tls::FLAG_PARKING != 0 {
        return change();
    }
    tls::get().flags |= tls::FLAG_PARKING;
    while CHANGING.swap(true, Ordering::AcqRel) {
        unsafe { libc::sched_yield() };
    }
    ag.park_cancelled.store(false, Ordering::Release);
    let seq = ag.ctl.post(ag, req::PARK);
    let parked = ag.ctl.wait(seq, EXIT_WAIT_NS);
    if !parked {
        // The writer never got to it: it must not park later with nobody to resume it.
        ag.park_cancelled.store(true, Ordering::Release);
    }
    if parked {
        let th = ag.writer_thread.load(Ordering::Acquire) as libc::pthread_t;
        let deadline = libc::timespec {
            tv_sec: (sys::clock(libc::CLOCK_REALTIME) / 1_000_000_000 + 2) as _,
            tv_nsec: 0,
        };
        unsafe { libc::pthread_timedjoin_np(th, core::ptr::null_mut(), &deadline) };
        // The join returns when the thread cleared its tid, but the kernel removes it from the
        // thread group a little later; unshare(CLONE_NEWUSER) and friends fail with EINVAL
        // until then. Wait for that (bounded: 100 ms).
        let tid = ag.writer_tid.load(Ordering::Acquire) as libc::pid_t;
        for _ in 0..2000 {
            let alive = unsafe { libc::syscall(libc::SYS_tgkill, ag.pid as libc::pid_t, tid, 0) };
            if tid == 0 || (alive != 0 && sys::errno() == libc::ESRCH) {
                break;
            }
            let t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000,
            };
            unsafe { libc::nanosleep(&t, core::ptr::null_mut()) };
        }
    }
    let r = change();
    let e = sys::errno();
    let state = ag.parked.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !state.is_null() && crate::writer::resume(ag, unsafe { Box::from_raw(state) }).is_err() {
        agent::disable(b"cannot restart the writer thread after a credential change");
    }
    CHANGING.store(false, Ordering::Release);
    tls::get().flags &= !tls::FLAG_PARKING;
    sys::set_errno(e);
    r
}

/// One credential or namespace change at a time.
static CHANGING: AtomicBool = AtomicBool::new(false);

/// Before fork: no agent thread may be inside dl_iterate_phdr (glibc's fork does not reset
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

/// The child of fork(): its own record file, its own writer, its parent noted.
extern "C" fn fork_child() {
    arena::fork_release();
    tls::reset_after_fork();
    images::fork_release();
    EXITING.store(false, Ordering::Release);
    CHANGING.store(false, Ordering::Release);
    let Some(old) = agent::current() else { return };
    let _g = tls::Guard::enter();
    let ts = sys::now();
    let fd = old.out_fd.load(Ordering::Acquire);
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    agent::deactivate();
    let ag = Agent::new(
        old.cfg.clone(),
        origin::FORK,
        old.pid as u32,
        ts,
        old.exe.clone(),
    );
    start(ag, false);
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
            sys::stderr_line(&[b"mapagent: MAPAGENT_SNAPSHOT_SIGNAL: the signal already has a handler; not taking it"]);
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
    for &sig in &CRASH_SIGNALS {
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
