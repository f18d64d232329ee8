//! The agent's own allocator. Every Rust allocation in libmapagent.so comes from one private
//! mapping named [anon:mapagent], never from the application's malloc:
//! - no recursion through an allocator that calls the public mmap (jemalloc, tcmalloc);
//! - the agent's memory use never moves the process's heap or creates malloc arenas, which
//!   would show up as changes the hooks cannot explain;
//! - users see exactly what the agent costs, as one line in maps.
//!
//! Size classes with free lists, a bump pointer for fresh memory, a spin lock (only agent
//! threads allocate; the hooked path never does). If the region fills up, allocations fall back
//! to the system allocator rather than fail.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const RESERVE: usize = 64 << 20;
const CLASSES: usize = 17; // 16 B .. 1 MiB
const MIN_SHIFT: usize = 4;
const PAGE: usize = 4096;

pub struct Arena;

static BASE: AtomicUsize = AtomicUsize::new(0);
static LOCK: AtomicBool = AtomicBool::new(false);
/// Bump pointer and free lists; only touched with LOCK held.
static mut TOP: usize = 0;
static mut FREE: [usize; CLASSES] = [0; CLASSES];
/// Freed blocks bigger than the largest class: intrusive list of (next, size).
static mut LARGE: usize = 0;

fn lock() {
    let mut spins = 0u32;
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 64 {
            core::hint::spin_loop();
        } else {
            unsafe { libc::sched_yield() };
        }
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// Held across fork (pthread_atfork prepare) so the child never inherits it locked.
pub fn fork_prepare() {
    lock();
}
pub fn fork_release() {
    unlock();
}

fn base() -> usize {
    let b = BASE.load(Ordering::Acquire);
    if b != 0 {
        return b;
    }
    let p = unsafe {
        crate::sys::mmap(
            core::ptr::null_mut(),
            RESERVE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return usize::MAX;
    }
    // Named so maps and smaps show what is ours (CONFIG_ANON_VMA_NAME; ignored if absent).
    unsafe {
        libc::prctl(
            libc::PR_SET_VMA,
            libc::PR_SET_VMA_ANON_NAME,
            p as usize,
            RESERVE,
            c"mapagent".as_ptr(),
        );
    }
    match BASE.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            unsafe { TOP = p as usize };
            p as usize
        }
        Err(other) => {
            unsafe { crate::sys::munmap(p, RESERVE) };
            other
        }
    }
}

/// The arena's address range (empty before the first allocation).
pub fn range() -> (u64, u64) {
    let b = BASE.load(Ordering::Acquire);
    if b == 0 || b == usize::MAX {
        (0, 0)
    } else {
        (b as u64, (b + RESERVE) as u64)
    }
}

fn class_of(size: usize) -> Option<usize> {
    let s = size.max(1 << MIN_SHIFT).next_power_of_two();
    let c = s.trailing_zeros() as usize - MIN_SHIFT;
    (c < CLASSES).then_some(c)
}

fn owns(p: usize) -> bool {
    let b = BASE.load(Ordering::Relaxed);
    b != 0 && b != usize::MAX && p >= b && p < b + RESERVE
}

unsafe fn bump(size: usize, align: usize) -> *mut u8 {
    let b = base();
    if b == usize::MAX {
        return core::ptr::null_mut();
    }
    let start = (TOP + align - 1) & !(align - 1);
    if start + size > b + RESERVE {
        return core::ptr::null_mut();
    }
    TOP = start + size;
    start as *mut u8
}

unsafe fn alloc_locked(layout: Layout) -> *mut u8 {
    let size = layout.size().max(layout.align());
    match class_of(size) {
        Some(c) => {
            let head = FREE[c];
            if head != 0 {
                FREE[c] = *(head as *const usize);
                return head as *mut u8;
            }
            let bs = 1usize << (c + MIN_SHIFT);
            // Power-of-two blocks aligned to their size (capped at a page) satisfy any layout
            // whose alignment is at most its size.
            bump(bs, bs.min(PAGE))
        }
        None => {
            let size = (size + PAGE - 1) & !(PAGE - 1);
            // First fit among freed large blocks, splitting off the rest.
            let mut prev: *mut usize = core::ptr::addr_of_mut!(LARGE);
            let mut cur = LARGE;
            while cur != 0 {
                let next = *(cur as *const usize);
                let bsize = *((cur + 8) as *const usize);
                if bsize >= size && layout.align() <= PAGE {
                    if bsize - size >= PAGE {
                        let rest = cur + size;
                        *(rest as *mut usize) = next;
                        *((rest + 8) as *mut usize) = bsize - size;
                        *prev = rest;
                    } else {
                        *prev = next;
                    }
                    return cur as *mut u8;
                }
                prev = cur as *mut usize;
                cur = next;
            }
            let p = bump(size, layout.align().max(PAGE));
            // A big fresh block is about to be written whole (the event channel, buffers):
            // fault it in with one call instead of one page fault per page.
            if !p.is_null() && size >= POPULATE_MIN {
                libc::madvise(p.cast(), size, MADV_POPULATE_WRITE);
            }
            p
        }
    }
}

const POPULATE_MIN: usize = 128 << 10;
/// Linux 5.14; older kernels return EINVAL and the pages fault in as usual.
const MADV_POPULATE_WRITE: libc::c_int = 23;

unsafe fn free_locked(p: *mut u8, layout: Layout) {
    let size = layout.size().max(layout.align());
    match class_of(size) {
        Some(c) => {
            *(p as *mut usize) = FREE[c];
            FREE[c] = p as usize;
        }
        None => {
            let size = (size + PAGE - 1) & !(PAGE - 1);
            // Give the pages back to the kernel; the range stays reserved and reusable.
            libc::madvise(p.cast(), size, libc::MADV_DONTNEED);
            *(p as *mut usize) = LARGE;
            *((p as usize + 8) as *mut usize) = size;
            LARGE = p as usize;
        }
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        lock();
        let p = alloc_locked(layout);
        unlock();
        if !p.is_null() {
            return p;
        }
        // Arena full or unavailable: the system allocator is better than failing.
        let mut out: *mut libc::c_void = core::ptr::null_mut();
        if libc::posix_memalign(&mut out, layout.align().max(16), layout.size()) != 0 {
            return core::ptr::null_mut();
        }
        out.cast()
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if owns(p as usize) {
            lock();
            free_locked(p, layout);
            unlock();
        } else {
            libc::free(p.cast());
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Growing within the same size class is free.
        if owns(p as usize) {
            let old = layout.size().max(layout.align());
            let new = new_size.max(layout.align());
            if let (Some(a), Some(b)) = (class_of(old), class_of(new)) {
                if a == b {
                    return p;
                }
            }
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let q = self.alloc(new_layout);
        if !q.is_null() {
            core::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }
}
