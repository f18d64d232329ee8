//! What a hook hands to the writer: a fixed-size, Copy event. Variable-size payloads (paths,
//! names, image headers) travel in a preallocated pool slot named by `slot`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// a = [addr, len, prot | flags << 32, fd, offset, result, dev_major << 32 | dev_minor, ino];
    /// slot (optional): the file's path, read at call time
    Mmap,
    /// a = [addr, len, ret]
    Munmap,
    /// a = [old, old_len, new_len, flags, new_addr, result]
    Mremap,
    /// a = [addr, len, prot, ret]
    Mprotect,
    /// slot: name; a = [flags, fd]
    MemfdCreate,
    /// a = [shmid, addr, shmflg, result]
    Shmat,
    /// a = [addr, ret]
    Shmdt,
    /// slot: filename, resolved; a = [ts_start, flags, lmid, handle]
    Dlopen,
    /// a = [handle, ret, ts_start]
    Dlclose,
    /// slot: image; a = [cause, fd + 1 (an open descriptor of the file, 0 if none)]
    ImageLoad,
    /// a = [id, bias, cause]
    ImageUnload,
    /// a = [pthread_t, ret, ts_start]
    Thread,
    /// slot: path
    Exec,
    /// slot: label (mapagent_snapshot)
    Snapshot,
}

pub const NO_SLOT: u16 = u16::MAX;

#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Event {
    pub ts: u64,
    pub tid: u32,
    pub kind: Kind,
    pub slot: u16,
    pub err: i32,
    pub a: [u64; 8],
}

impl Event {
    #[inline]
    pub fn new(kind: Kind, a: [u64; 8]) -> Event {
        Event {
            ts: crate::sys::now(),
            tid: crate::tls::tid(),
            kind,
            slot: NO_SLOT,
            err: 0,
            a,
        }
    }
}
