//! Per-thread state (initial-exec TLS from csrc/tls.c) and the re-entrancy guard.

use crate::sys;

#[repr(C)]
pub struct Tls {
    pub depth: u32,
    pub tid: i32,
    pub flags: u32,
    pad: u32,
}

pub const FLAG_WRITER: u32 = 1;
/// This thread is parking the writer for a credential change.
pub const FLAG_PARKING: u32 = 2;

extern "C" {
    fn mapagent_tls_get() -> *mut Tls;
}

#[inline(always)]
pub fn get() -> &'static mut Tls {
    // Never null: the block is part of every thread's static TLS.
    unsafe { &mut *mapagent_tls_get() }
}

/// The calling thread's kernel tid, cached after the first call on each thread.
#[inline]
pub fn tid() -> u32 {
    let t = get();
    if t.tid == 0 {
        t.tid = sys::gettid();
    }
    t.tid as u32
}

/// After fork the child's only thread still carries the parent's tid.
pub fn reset_after_fork() {
    let t = get();
    t.tid = 0;
    t.depth = 0;
    t.flags &= !FLAG_PARKING;
}

pub fn is_writer() -> bool {
    get().flags & FLAG_WRITER != 0
}

/// Marks agent code running on this thread: hooks entered meanwhile (our own dlopen of
/// nothing, an allocator calling mmap under us) pass straight through.
pub struct Guard(());

impl Guard {
    /// None if the thread is already inside the agent.
    #[inline]
    pub fn enter() -> Option<Guard> {
        let t = get();
        if t.depth != 0 {
            return None;
        }
        t.depth = 1;
        Some(Guard(()))
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        get().depth = 0;
    }
}
