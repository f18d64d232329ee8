//! What a hook hands to the collector: a fixed-size, Copy event, followed in its ring frame by
//! a variable-size payload (paths, names, image headers). On the collector side `slot` indexes
//! the payloads of the batch being processed.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// a = [addr, len, prot | flags << 32, fd, offset, result, dev_major << 32 | dev_minor, ino];
    /// payload (optional): the file's path, read at call time
    Mmap,
    /// a = [addr, len, ret]
    Munmap,
    /// a = [old, old_len, new_len, flags, new_addr, result]
    Mremap,
    /// a = [addr, len, prot, ret]
    Mprotect,
    /// payload: name; a = [flags, fd]
    MemfdCreate,
    /// a = [shmid, addr, shmflg, result]
    Shmat,
    /// a = [addr, ret]
    Shmdt,
    /// payload: filename, resolved; a = [ts_start, flags, lmid, handle]
    Dlopen,
    /// a = [handle, ret, ts_start]
    Dlclose,
    /// payload: image; a = [cause]
    ImageLoad,
    /// a = [id, bias, cause]
    ImageUnload,
    /// a = [pthread_t, ret, ts_start]
    Thread,
    /// payload: path
    Exec,
    /// payload: label (mapagent_snapshot)
    Snapshot,
    /// payload: /proc/self/maps as read by the starting thread; the images before it are the
    /// ones loaded at start. a = [ppid]
    Baseline,
    /// An exec that the Exec before it announced failed: this image carries on. a = [errno]
    ExecFailed,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        const ALL: [Kind; 16] = [
            Mmap,
            Munmap,
            Mremap,
            Mprotect,
            MemfdCreate,
            Shmat,
            Shmdt,
            Dlopen,
            Dlclose,
            ImageLoad,
            ImageUnload,
            Thread,
            Exec,
            Snapshot,
            Baseline,
            ExecFailed,
        ];
        ALL.get(v as usize).copied()
    }
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

    /// Decodes an event copied out of the ring (which the application could have scribbled
    /// on): None for a kind this build does not know.
    pub fn from_bytes(b: &[u8; core::mem::size_of::<Event>()]) -> Option<Event> {
        use core::mem::offset_of;
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let kind = Kind::from_u8(b[offset_of!(Event, kind)])?;
        let mut a = [0u64; 8];
        for (i, v) in a.iter_mut().enumerate() {
            *v = u64_at(offset_of!(Event, a) + 8 * i);
        }
        Some(Event {
            ts: u64_at(offset_of!(Event, ts)),
            tid: u32_at(offset_of!(Event, tid)),
            kind,
            slot: NO_SLOT,
            err: u32_at(offset_of!(Event, err)) as i32,
            a,
        })
    }
}
