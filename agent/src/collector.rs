//! The collector: a process of its own that drains a ring and writes the record file. It is
//! libmapagent.so itself, executed (the library has an entry point and an interpreter, as
//! libc.so.6 does): a fresh address space, so nothing of the application is shared with it
//! but the ring, and no thread of the agent ever runs in the application.
//!
//! The application starts it with a double vfork (clone(CLONE_VM|CLONE_VFORK), no exit
//! signal): the middle process starts the collector and exits at once, so the collector is
//! never the application's child (no SIGCHLD, wait() never returns it), and setsid() puts it
//! outside the application's process group and session. The ring's descriptor is its fd 3.

use crate::agent::{self, Agent};
use crate::{sys, tls};
use core::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// This library's own path, found once at start.
static SELF_PATH: AtomicPtr<std::ffi::CString> = AtomicPtr::new(core::ptr::null_mut());

pub fn find_self() {
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let f = find_self as *const c_void;
    if unsafe { libc::dladdr(f, &mut info) } == 0 || info.dli_fname.is_null() {
        return;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_owned();
    SELF_PATH.store(Box::into_raw(Box::new(name)), Ordering::Release);
}

struct SpawnArgs {
    path: *const c_char,
    ring_fd: c_int,
    stack: *mut u8,
    stack_len: usize,
    /// Set by the collector's process if its exec failed (memory shared until exec).
    exec_errno: c_int,
    /// MAPAGENT_LOG is set: the collector keeps the application's stderr.
    keep_stderr: bool,
    /// The collector's pid, set by the middle process.
    collector: c_int,
}

const STACK: usize = 64 << 10;

/// Starts the collector for `ag` on the ring descriptor `ring_fd` (closed here). Runs in the
/// constructor or a fork child's handler: one thread, before the application continues.
pub fn spawn(ring_fd: c_int, keep_stderr: bool) -> Result<(), &'static [u8]> {
    let path = SELF_PATH.load(Ordering::Acquire);
    if path.is_null() {
        unsafe { libc::close(ring_fd) };
        return Err(b"cannot find libmapagent.so's own path");
    }
    let stack = unsafe {
        sys::mmap(
            core::ptr::null_mut(),
            2 * STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        unsafe { libc::close(ring_fd) };
        return Err(b"no memory for the collector's start");
    }
    let mut args = SpawnArgs {
        path: unsafe { (*path).as_ptr() },
        ring_fd,
        stack: stack.cast(),
        stack_len: STACK,
        exec_errno: 0,
        keep_stderr,
        collector: 0,
    };
    let e = sys::errno();
    let mid = unsafe {
        libc::clone(
            middle,
            (stack as *mut u8).add(STACK) as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK,
            &mut args as *mut SpawnArgs as *mut c_void,
        )
    };
    if mid > 0 {
        let mut st = 0;
        unsafe { libc::waitpid(mid, &mut st, libc::__WCLONE) };
    }
    unsafe {
        libc::close(ring_fd);
        sys::munmap(stack, 2 * STACK);
    }
    sys::set_errno(e);
    if mid <= 0 {
        return Err(b"cannot start the collector process (clone failed)");
    }
    if args.exec_errno != 0 {
        return Err(b"cannot execute libmapagent.so as the collector");
    }
    // Under Yama ptrace_scope=1 only ancestors may read a process's pagemap and memory, and
    // the collector is not one: name it. Before main, so an application that names its own
    // reader later (crash reporters do) takes the one slot back. EINVAL without Yama.
    unsafe {
        libc::prctl(
            libc::PR_SET_PTRACER,
            args.collector as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    sys::set_errno(e);
    Ok(())
}

/// The middle process: starts the collector, then exits (the vfork releases the application
/// once the collector has exec'd and this one is gone).
extern "C" fn middle(arg: *mut c_void) -> c_int {
    let a = unsafe { &mut *(arg as *mut SpawnArgs) };
    let top = unsafe { a.stack.add(2 * a.stack_len) } as *mut c_void;
    let r = unsafe { libc::clone(collector_exec, top, libc::CLONE_VM | libc::CLONE_VFORK, arg) };
    if r < 0 {
        a.exec_errno = libc::EAGAIN;
    }
    a.collector = r;
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    0
}

/// The collector's process before exec: its own session, the ring on fd 3, nothing else of
/// the application's (its pipes must not stay open in here), an empty environment.
extern "C" fn collector_exec(arg: *mut c_void) -> c_int {
    let a = unsafe { &mut *(arg as *mut SpawnArgs) };
    unsafe {
        libc::syscall(libc::SYS_setsid);
        // Not the application's directory: holding it would keep its filesystem busy (umount).
        // Every path the collector uses is absolute (MAPAGENT_DIR was made so).
        libc::syscall(libc::SYS_chdir, c"/".as_ptr());
        // The ring first: /dev/null must not take fd 3 and then be replaced by it.
        let ring = if a.ring_fd == 3 {
            3
        } else {
            libc::syscall(libc::SYS_dup3, a.ring_fd, 3, 0) as c_int
        };
        // The memfd was made close-on-exec; this copy of the descriptor table keeps it.
        libc::syscall(libc::SYS_fcntl, 3, libc::F_SETFD, 0);
        let null = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/null".as_ptr(),
            libc::O_RDWR,
        ) as c_int;
        if null >= 0 && ring == 3 {
            // With MAPAGENT_LOG the diagnostics go to the application's stderr, as asked.
            let last = if a.keep_stderr && a.ring_fd != 2 {
                2
            } else {
                3
            };
            for fd in 0..last {
                if fd != null {
                    libc::syscall(libc::SYS_dup3, null, fd, 0);
                }
            }
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
            let mut all: libc::sigset_t = core::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &all as *const libc::sigset_t,
                core::ptr::null_mut::<libc::sigset_t>(),
                8usize,
            );
            let argv = [c"mapagent-collector".as_ptr(), core::ptr::null()];
            let envp = [core::ptr::null::<c_char>()];
            libc::syscall(libc::SYS_execve, a.path, argv.as_ptr(), envp.as_ptr());
        }
        a.exec_errno = libc::ENOEXEC;
        libc::syscall(libc::SYS_exit, 127);
    }
    0
}

// The entry point when libmapagent.so is executed: the stack pointer is the kernel's (argc,
// argv, envp); align it and call into Rust. __libc_start_main never runs, and neither do this
// library's constructors (ld.so leaves the main program's to it), which is what we want.
// The interpreter that loads the library when it is executed (PT_INTERP).
#[cfg(target_arch = "x86_64")]
#[used]
#[link_section = ".interp"]
static INTERP: [u8; 28] = *b"/lib64/ld-linux-x86-64.so.2\0";
#[cfg(target_arch = "aarch64")]
#[used]
#[link_section = ".interp"]
static INTERP: [u8; 27] = *b"/lib/ld-linux-aarch64.so.1\0";

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl mapagent_collector_entry",
    ".type mapagent_collector_entry,@function",
    "mapagent_collector_entry:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym collector_main,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl mapagent_collector_entry",
    ".type mapagent_collector_entry,%function",
    "mapagent_collector_entry:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, sp",
    "bl {main}",
    "brk #0",
    main = sym collector_main,
);

extern "C" fn collector_main(_sp: *const usize) -> ! {
    let t = tls::get();
    t.depth = 1; // our own calls to the exported mmap & co. pass straight through
    t.flags |= tls::FLAG_WRITER;
    let code = match std::panic::catch_unwind(run) {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 1, // run() said why
        Err(_) => {
            crate::log::line(&[b"collector: internal error"]);
            2
        }
    };
    unsafe { libc::syscall(libc::SYS_exit_group, code) };
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run() -> Result<(), String> {
    unsafe { libc::prctl(libc::PR_SET_NAME, c"mapagent-coll".as_ptr()) };
    crate::log::keep_open();
    let ring = crate::ring::Ring::open(3).map_err(|e| e.to_string())?;
    unsafe { libc::close(3) };
    let ag: &'static Agent = Agent::attach(ring);
    sys::set_target(ag.pid, ag.ns_pid);
    ag.collector.store(sys::getpid(), Ordering::Release);
    let r = crate::writer::collect(ag);
    if let Err(msg) = &r {
        // The line first: an application released below may exit and be looked at at once.
        // Then it carries on unrecorded, and anyone waiting on us is released.
        agent::disable(msg.as_bytes());
        ag.dead.store(1, Ordering::Release);
        ag.ctl.complete(ag.ctl.seq.load(Ordering::Acquire));
    }
    r
}
