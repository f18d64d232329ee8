//! Vectors of millions of entries (a record per mmap of a busy process) on transparent huge
//! pages. Faulting in hundreds of megabytes 4 KiB at a time cost a quarter of `mapagent perf`'s
//! run; with THP in "madvise" mode (Debian's default) the kernel needs the hint.

const HUGE: usize = 2 << 20;

/// A vector with room for `n` entries, its memory advised for huge pages when large.
pub fn with_capacity<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise(&mut v);
    v
}

/// Reserves room for `more` entries and advises the memory for huge pages.
pub fn reserve<T>(v: &mut Vec<T>, more: usize) {
    let before = v.capacity();
    v.reserve(more);
    if v.capacity() != before {
        advise(v);
    }
}

fn advise<T>(v: &mut Vec<T>) {
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes < 2 * HUGE {
        return;
    }
    // Only whole 2 MiB blocks inside the allocation can be huge pages.
    let start = (v.as_mut_ptr() as usize).next_multiple_of(HUGE);
    let end = (v.as_mut_ptr() as usize + bytes) & !(HUGE - 1);
    if end > start {
        // SAFETY: an advice on memory this vector owns; it changes no contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}
