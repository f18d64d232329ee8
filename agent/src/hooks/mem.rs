//! mmap, mmap64, munmap, mremap, mprotect, memfd_create, shmat, shmdt. The real call is the raw
//! system call; recording adds a vDSO clock read and a lock-free channel push (and, for a file
//! mapping only, one statx(AT_STATX_DONT_SYNC) to pin the file's identity before the caller can
//! close the descriptor).

use crate::agent::{self, Agent};
use crate::event::{Event, Kind};
use crate::sys;
use core::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::Ordering;

/// Runs `call` and, if the agent is recording, `rec` with its result; errno is preserved.
#[inline(always)]
fn tracked<R: Copy>(call: impl FnOnce() -> R, rec: impl FnOnce(&Agent, R, c_int)) -> R {
    let Some(ag) = agent::recording() else {
        return call();
    };
    ag.started.fetch_add(1, Ordering::Relaxed);
    let r = call();
    let e = sys::errno();
    rec(ag, r, e);
    ag.finished.fetch_add(1, Ordering::Release);
    sys::set_errno(e);
    r
}

#[inline(always)]
fn err_if(failed: bool, e: c_int) -> i32 {
    if failed {
        e
    } else {
        0
    }
}

#[inline(always)]
unsafe fn do_mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    tracked(
        || sys::mmap(addr, len, prot, flags, fd, off),
        |ag, r, e| {
            let failed = r == libc::MAP_FAILED;
            let mut id = 0u64;
            let mut ino = 0u64;
            // Not zeroed: only the bytes fd_path writes are sent (a memset per mmap would cost
            // more than the rest of the hook).
            let mut pbuf = core::mem::MaybeUninit::<[u8; 4200]>::uninit();
            let mut plen = 0usize;
            if !failed && flags & libc::MAP_ANONYMOUS == 0 && fd >= 0 {
                if let Some((ma, mi, i)) = sys::fd_identity(fd) {
                    id = (ma as u64) << 32 | mi as u64;
                    ino = i;
                    // A file the writer has not named yet: take its path now, the caller may
                    // close the fd and unmap before the writer looks.
                    if !ag.known_contains(crate::agent::file_key(id, ino)) {
                        plen = fd_path(fd, pbuf.as_mut_ptr().cast::<u8>(), 4200);
                    }
                }
            }
            let mut ev = Event::new(
                Kind::Mmap,
                [
                    addr as u64,
                    len as u64,
                    (prot as u32 as u64) | ((flags as u32 as u64) << 32),
                    fd as i64 as u64,
                    off as u64,
                    r as u64,
                    id,
                    ino,
                ],
            );
            ev.err = err_if(failed, e);
            ag.push_with(
                ev,
                core::slice::from_raw_parts(pbuf.as_ptr().cast::<u8>(), plen),
            );
        },
    )
}

/// readlink("/proc/self/fd/N") into `slot` as a length-prefixed string, without allocating;
/// the bytes used (0 if it failed).
unsafe fn fd_path(fd: c_int, slot: *mut u8, cap: usize) -> usize {
    let mut link = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = fd as u32;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        link[14 + i] = digits[n - 1 - i];
    }
    let body = slot.add(4);
    // The raw system call: an interposer of readlink (fakechroot...) must not run in a hook.
    let r = libc::syscall(
        libc::SYS_readlinkat,
        libc::AT_FDCWD,
        link.as_ptr(),
        body,
        cap - 4,
    );
    if r <= 0 {
        return 0;
    }
    core::ptr::copy_nonoverlapping((r as u32).to_le_bytes().as_ptr(), slot, 4);
    4 + r as usize
}

#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    do_mmap(addr, len, prot, flags, fd, off)
}

#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    do_mmap(addr, len, prot, flags, fd, off)
}

#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    tracked(
        || sys::munmap(addr, len),
        |ag, r, e| {
            let mut ev = Event::new(
                Kind::Munmap,
                [addr as u64, len as u64, r as i64 as u64, 0, 0, 0, 0, 0],
            );
            ev.err = err_if(r != 0, e);
            ag.push(ev);
        },
    )
}

/// mremap is variadic in C; on x86_64 and aarch64 the optional fifth argument arrives in the
/// same register as a fixed one, and is only read when MREMAP_FIXED says it was passed.
#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    let new_addr = if flags & libc::MREMAP_FIXED != 0 {
        new_addr
    } else {
        core::ptr::null_mut()
    };
    tracked(
        || sys::mremap(old, old_len, new_len, flags, new_addr),
        |ag, r, e| {
            let mut ev = Event::new(
                Kind::Mremap,
                [
                    old as u64,
                    old_len as u64,
                    new_len as u64,
                    flags as u32 as u64,
                    new_addr as u64,
                    r as u64,
                    0,
                    0,
                ],
            );
            ev.err = err_if(r == libc::MAP_FAILED, e);
            ag.push(ev);
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int {
    tracked(
        || sys::mprotect(addr, len, prot),
        |ag, r, e| {
            let mut ev = Event::new(
                Kind::Mprotect,
                [
                    addr as u64,
                    len as u64,
                    prot as u32 as u64,
                    r as i64 as u64,
                    0,
                    0,
                    0,
                    0,
                ],
            );
            ev.err = err_if(r != 0, e);
            ag.push(ev);
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn memfd_create(name: *const c_char, flags: c_uint) -> c_int {
    let Some(ag) = agent::recording() else {
        return sys::memfd_create(name, flags);
    };
    let fd = sys::memfd_create(name, flags);
    let e = sys::errno();
    let mut buf = [0u8; 512];
    let mut w = crate::payload::SlotWriter::new(&mut buf);
    w.cstr(name);
    let mut ev = Event::new(
        Kind::MemfdCreate,
        [flags as u64, fd as i64 as u64, 0, 0, 0, 0, 0, 0],
    );
    ev.err = err_if(fd < 0, e);
    ag.push_with(ev, w.written());
    sys::set_errno(e);
    fd
}

#[no_mangle]
pub unsafe extern "C" fn shmat(shmid: c_int, addr: *const c_void, flg: c_int) -> *mut c_void {
    tracked(
        || sys::shmat(shmid, addr, flg),
        |ag, r, e| {
            let mut ev = Event::new(
                Kind::Shmat,
                [
                    shmid as i64 as u64,
                    addr as u64,
                    flg as i64 as u64,
                    r as u64,
                    0,
                    0,
                    0,
                    0,
                ],
            );
            ev.err = err_if(r as isize == -1, e);
            ag.push(ev);
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn shmdt(addr: *const c_void) -> c_int {
    tracked(
        || sys::shmdt(addr),
        |ag, r, e| {
            let mut ev = Event::new(
                Kind::Shmdt,
                [addr as u64, r as i64 as u64, 0, 0, 0, 0, 0, 0],
            );
            ev.err = err_if(r != 0, e);
            ag.push(ev);
        },
    )
}
