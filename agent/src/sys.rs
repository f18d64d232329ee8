//! Raw system calls. The mapping calls go straight to the kernel (no dlsym(RTLD_NEXT), which
//! can call calloc before the agent is ready); everything here is async-signal-safe and
//! allocation-free.

use core::ffi::{c_int, c_long, c_void};

#[inline]
pub fn errno() -> c_int {
    unsafe { *libc::__errno_location() }
}

#[inline]
pub fn set_errno(e: c_int) {
    unsafe { *libc::__errno_location() = e }
}

/// CLOCK_MONOTONIC in nanoseconds, through the vDSO.
#[inline]
pub fn now() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

#[inline]
pub fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[inline]
pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    libc::syscall(
        libc::SYS_mmap,
        addr,
        len,
        prot as c_long,
        flags as c_long,
        fd as c_long,
        off,
    ) as *mut c_void
}

#[inline]
pub unsafe fn munmap(addr: *mut c_void, len: usize) -> c_int {
    libc::syscall(libc::SYS_munmap, addr, len) as c_int
}

#[inline]
pub unsafe fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    libc::syscall(
        libc::SYS_mremap,
        old,
        old_len,
        new_len,
        flags as c_long,
        new_addr,
    ) as *mut c_void
}

#[inline]
pub unsafe fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int {
    libc::syscall(libc::SYS_mprotect, addr, len, prot as c_long) as c_int
}

#[inline]
pub unsafe fn memfd_create(name: *const libc::c_char, flags: libc::c_uint) -> c_int {
    libc::syscall(libc::SYS_memfd_create, name, flags as c_long) as c_int
}

#[inline]
pub unsafe fn shmat(id: c_int, addr: *const c_void, flg: c_int) -> *mut c_void {
    libc::syscall(libc::SYS_shmat, id as c_long, addr, flg as c_long) as *mut c_void
}

#[inline]
pub unsafe fn shmdt(addr: *const c_void) -> c_int {
    libc::syscall(libc::SYS_shmdt, addr) as c_int
}

pub fn gettid() -> i32 {
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

pub fn getpid() -> i32 {
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// Device and inode of an open file, without blocking on a network filesystem
/// (AT_STATX_DONT_SYNC uses cached attributes).
pub fn fd_identity(fd: c_int) -> Option<(u32, u32, u64)> {
    let mut stx: libc::statx = unsafe { core::mem::zeroed() };
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd as c_long,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC) as c_long,
            libc::STATX_INO as c_long,
            &mut stx as *mut libc::statx,
        )
    };
    (r == 0).then_some((stx.stx_dev_major, stx.stx_dev_minor, stx.stx_ino))
}

/// Device and inode of a path (no blocking revalidation on network filesystems).
pub fn path_identity(path: &core::ffi::CStr) -> Option<(u32, u32, u64)> {
    let mut stx: libc::statx = unsafe { core::mem::zeroed() };
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD as c_long,
            path.as_ptr(),
            libc::AT_STATX_DONT_SYNC as c_long,
            libc::STATX_INO as c_long,
            &mut stx as *mut libc::statx,
        )
    };
    (r == 0).then_some((stx.stx_dev_major, stx.stx_dev_minor, stx.stx_ino))
}

/// write(2) until done or an error; returns false on error.
pub fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(libc::ENOSPC);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// The same on a word in memory shared with another process (the ring).
pub fn futex_wait_shared(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as _,
        tv_nsec: (timeout_ns % 1_000_000_000) as _,
    };
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

pub fn futex_wake_shared(word: &core::sync::atomic::AtomicU32) {
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// open(2) read-only for the agent's own reads. The collector owns its descriptor table, so
/// the numbers need no care; the application opens only at start, and closes at once.
pub fn open_read(path: &core::ffi::CStr) -> c_int {
    unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
}

/// The process the collector records (its own pid in the application, which never reads
/// /proc through this).
static TARGET: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

static TARGET_NS: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

/// `pid` as /proc names the process, `ns_pid` as syscalls from here name it.
pub fn set_target(pid: i32, ns_pid: i32) {
    TARGET.store(pid, core::sync::atomic::Ordering::Release);
    TARGET_NS.store(ns_pid, core::sync::atomic::Ordering::Release);
}

/// The recorded process for pidfd_open and process_vm_readv.
pub fn target_ns() -> i32 {
    match TARGET_NS.load(core::sync::atomic::Ordering::Acquire) {
        0 => getpid(),
        p => p,
    }
}

/// This process's pid as the mounted /proc names it (readlink /proc/self): inside a pid
/// namespace whose /proc is still the host's, the host's pid, not getpid()'s.
pub fn proc_pid() -> Option<i32> {
    let l = readlink(c"/proc/self")?;
    std::str::from_utf8(&l).ok()?.parse().ok()
}

pub fn target() -> i32 {
    match TARGET.load(core::sync::atomic::Ordering::Acquire) {
        0 => getpid(),
        p => p,
    }
}

/// "/proc/PID/<rest>" of the recorded process.
pub fn proc_path(rest: &str) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/{}/{rest}", target())).unwrap_or_default()
}

/// A path the application named relative to itself (/proc/self/fd/N, /proc/self/exe), as the
/// collector must open it.
pub fn app_path(p: &[u8]) -> Vec<u8> {
    for prefix in [&b"/proc/self/"[..], b"/proc/thread-self/"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            let mut out = format!("/proc/{}/", target()).into_bytes();
            out.extend_from_slice(rest);
            return out;
        }
    }
    p.to_vec()
}

/// A /proc/PID file of the recorded process the collector reads again and again (maps,
/// statm), kept open.
pub struct ProcFile {
    name: &'static str,
    fd: core::sync::atomic::AtomicI32,
}

pub static PROC_MAPS: ProcFile = ProcFile::new("maps");
pub static PROC_STATM: ProcFile = ProcFile::new("statm");

impl ProcFile {
    pub const fn new(name: &'static str) -> ProcFile {
        ProcFile {
            name,
            fd: core::sync::atomic::AtomicI32::new(-1),
        }
    }

    pub fn ensure(&self) -> Result<c_int, c_int> {
        use core::sync::atomic::Ordering::{Acquire, Release};
        let fd = self.fd.load(Acquire);
        if fd >= 0 {
            return Ok(fd);
        }
        let new = open_read(&proc_path(self.name));
        if new < 0 {
            return Err(errno());
        }
        self.fd.store(new, Release);
        Ok(new)
    }

    /// The current contents into `buf` (pread from 0: seq_file regenerates them).
    pub fn read(&self, buf: &mut Vec<u8>) -> Result<(), c_int> {
        pread_all(self.ensure()?, buf)
    }
}

/// Copies `len` bytes at `addr` of the recorded process (or of this one) without faulting.
pub fn read_mem(addr: u64, out: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: out.len(),
    };
    let n = unsafe { libc::process_vm_readv(target_ns(), &local, 1, &remote, 1, 0) };
    n == out.len() as isize
}

/// Reads a whole (small, /proc) file into `buf`, reusing its capacity.
pub fn read_file(path: &core::ffi::CStr, buf: &mut Vec<u8>) -> Result<(), c_int> {
    let fd = open_read(path);
    if fd < 0 {
        return Err(errno());
    }
    let res = pread_all(fd, buf);
    unsafe { libc::close(fd) };
    res
}

/// Everything from offset 0 to the end of `fd` into `buf` (cleared first).
pub fn pread_all(fd: c_int, buf: &mut Vec<u8>) -> Result<(), c_int> {
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(16384));
        }
        let spare = buf.capacity() - buf.len();
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr().add(buf.len()).cast(),
                spare,
                buf.len() as libc::off_t,
            )
        };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        unsafe { buf.set_len(buf.len() + n as usize) };
    }
}

/// readlink into a Vec (no NUL).
pub fn readlink(path: &core::ffi::CStr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
