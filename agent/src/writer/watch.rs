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
    /// Defined data symbols per image (name -> value), read from its file once.
    symbols: std::collections::HashMap<u64, std::collections::HashMap<Vec<u8>, u64>>,
}

/// Defined object and untyped symbols of an ELF file, dynamic ones winning.
fn symbols_of(path: &[u8]) -> std::collections::HashMap<Vec<u8>, u64> {
    use object::{Object, ObjectSymbol};
    let mut out = std::collections::HashMap::new();
    let p = sys::app_path(path);
    use std::os::unix::ffi::OsStrExt;
    let Ok(data) = std::fs::read(std::ffi::OsStr::from_bytes(&p)) else {
        return out;
    };
    let Ok(file) = object::File::parse(&*data) else {
        return out;
    };
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        if let Ok(n) = sym.name_bytes() {
            out.insert(n.to_vec(), sym.address());
        }
    }
    out
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
            let p = self.lookup_symbol(name);
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

    /// The address of a global by name, as RTLD_DEFAULT would find it: the main program
    /// first, then the other images in load order; dynamic symbols, then the symbol table.
    fn lookup_symbol(&mut self, name: &[u8]) -> u64 {
        let mut images: Vec<(bool, u64, u64, Vec<u8>)> = self
            .loaded
            .iter()
            .map(|(&id, i)| (!i.main, i.seq, id, i.path.clone()))
            .collect();
        images.sort();
        for (_, _, id, path) in images {
            let Some(bias) = self.loaded.get(&id).map(|i| i.bias) else {
                continue;
            };
            let syms = self
                .watches
                .symbols
                .entry(id)
                .or_insert_with(|| symbols_of(&path));
            if let Some(&v) = syms.get(name) {
                return bias.wrapping_add(v);
            }
        }
        0
    }

    /// Whether a dlopen or dlclose is under way (the image list is changing).
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
            sys::target_ns(),
            local.as_ptr(),
            parts,
            remote.as_ptr(),
            parts,
            0,
        )
    };
    n.max(0) as usize
}
