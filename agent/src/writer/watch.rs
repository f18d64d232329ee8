//! Watched globals (MAPAGENT_WATCH): each resolved by symbol with dlsym once it is loaded
//! (again whenever images appear), then sampled on the writer thread with every snapshot,
//! every MAPAGENT_WATCH_MS, and when mapagent_watch_sample() asks. Reads go through
//! process_vm_readv on this very process: an address that is not mapped (or a `str` pointing
//! nowhere) gives EFAULT, never a fault in the application.

use super::Writer;
use crate::sys;
use mapagent_record::records::{self as rec, watch_status, watch_type, Record};
use mapagent_record::Bytes;

/// Most bytes read for a `str` or `chars` value.
const TEXT_MAX: usize = 256;

#[derive(Default)]
pub(super) struct Watches {
    /// Address per configured watch, once resolved.
    addr: Vec<Option<u64>>,
    /// The last value written per watch (status, bytes), to write only changes.
    last: Vec<Option<(u8, Vec<u8>)>>,
    pub(super) last_sample: u64,
    /// How many images were loaded at the last lookup: look again when that changes.
    images_seen: usize,
}

impl Writer {
    /// Looks up every watch not resolved yet (cheap when none is left).
    pub(super) fn resolve_watches(&mut self, announce_missing: bool) {
        let n = self.ag.cfg.watch.len();
        if n == 0 {
            return;
        }
        if self.watches.addr.len() != n {
            self.watches.addr = vec![None; n];
            self.watches.last = vec![None; n];
        }
        if self.loader_busy() {
            return; // looked up on a later, quiet cycle (images_seen is left as it was)
        }
        self.watches.images_seen = self.loaded.len();
        for i in 0..n {
            if self.watches.addr.get(i).copied().flatten().is_some() {
                continue;
            }
            let Some((name, ty)) = self.ag.cfg.watch.get(i) else {
                continue;
            };
            let mut c = name.clone();
            c.push(0);
            // SAFETY: a NUL-terminated name; dlsym only reads it.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr().cast()) } as u64;
            if p == 0 && !announce_missing {
                continue;
            }
            if let Some(a) = self.watches.addr.get_mut(i) {
                *a = (p != 0).then_some(p);
            }
            self.out.put(&Record::WatchDef(rec::WatchDef {
                ts: sys::now(),
                index: i as u32,
                ty: *ty,
                addr: p,
                name: Bytes(name),
            }));
        }
    }

    /// Looks again for watches not found yet when images came or went (a dlopen'ed plugin
    /// may define them).
    pub(super) fn retry_watches(&mut self) {
        if self.watches.images_seen == self.loaded.len()
            || !self.watches.addr.iter().any(|a| a.is_none())
        {
            return;
        }
        self.resolve_watches(false);
    }

    /// Whether a dlopen or dlclose is under way: dlsym would wait for the loader's lock, and
    /// a constructor in that dlopen may be waiting for this thread (mapagent_snapshot).
    fn loader_busy(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.ag.slow_started.load(Ordering::SeqCst) != self.ag.slow_finished.load(Ordering::SeqCst)
    }

    /// Samples every resolved watch; `all`: write even unchanged values.
    pub(super) fn sample_watches(&mut self, tid: u32, all: bool) {
        let n = self.ag.cfg.watch.len();
        let ts = sys::now();
        self.watches.last_sample = ts;
        for i in 0..n {
            let (Some(Some(addr)), Some(&(_, ty))) =
                (self.watches.addr.get(i).copied(), self.ag.cfg.watch.get(i))
            else {
                continue;
            };
            let (status, value) = read_value(addr, ty);
            let same = self
                .watches
                .last
                .get(i)
                .and_then(|l| l.as_ref())
                .is_some_and(|(s, v)| *s == status && *v == value);
            if same && !all {
                continue;
            }
            self.out.put(&Record::WatchValue(rec::WatchValue {
                ts,
                tid,
                index: i as u32,
                status,
                value: Bytes(&value),
            }));
            if let Some(l) = self.watches.last.get_mut(i) {
                *l = Some((status, value));
            }
        }
    }
}

fn width(ty: u8) -> usize {
    match ty {
        watch_type::U8 | watch_type::I8 => 1,
        watch_type::U16 | watch_type::I16 => 2,
        watch_type::U32 | watch_type::I32 => 4,
        _ => 8,
    }
}

fn read_value(addr: u64, ty: u8) -> (u8, Vec<u8>) {
    match ty {
        watch_type::STR => {
            let mut p = [0u8; 8];
            if read(addr, &mut p) != 8 {
                return (watch_status::UNREADABLE, Vec::new());
            }
            let target = u64::from_le_bytes(p);
            if target == 0 {
                return (watch_status::NULL, Vec::new());
            }
            text(target)
        }
        watch_type::CHARS => text(addr),
        _ => {
            let mut b = vec![0u8; width(ty)];
            if read(addr, &mut b) == b.len() {
                (watch_status::OK, b)
            } else {
                (watch_status::UNREADABLE, Vec::new())
            }
        }
    }
}

/// Up to TEXT_MAX bytes at `addr`, cut at the first NUL; a string running into an unmapped
/// page keeps what came before it.
fn text(addr: u64) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; TEXT_MAX];
    let got = read(addr, &mut b);
    if got == 0 {
        return (watch_status::UNREADABLE, Vec::new());
    }
    b.truncate(got);
    if let Some(end) = b.iter().position(|&c| c == 0) {
        b.truncate(end);
    }
    (watch_status::OK, b)
}

/// Copies from this process's memory without faulting: process_vm_readv, split at the page
/// boundary so that a readable first part is kept when the second page is not mapped.
fn read(addr: u64, buf: &mut [u8]) -> usize {
    let page = 4096u64;
    let first = ((page - addr % page) as usize).min(buf.len());
    let (a, b) = buf.split_at_mut(first);
    let local = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    let remote = [
        libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: addr.wrapping_add(first as u64) as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    let parts = if b.is_empty() { 1 } else { 2 };
    // SAFETY: local buffers we own; the remote side is checked by the kernel (EFAULT).
    let n = unsafe {
        libc::process_vm_readv(
            libc::getpid(),
            local.as_ptr(),
            parts,
            remote.as_ptr(),
            parts,
            0,
        )
    };
    n.max(0) as usize
}
