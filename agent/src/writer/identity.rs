//! Names the file behind a file mapping. The hook captured (device, inode) at call time; the
//! path is taken from the kernel's own view of the mapping (/proc/self/maps, read at most once
//! per batch), from a cache of every file seen mapped, or from /proc/self/fd/N when that fd
//! still refers to the same file.

use crate::sys;
use mapagent_record::region::{parse_maps, Region};
use std::collections::HashMap;

pub type FileKey = (u32, u32, u64);

#[derive(Default)]
pub struct Identities {
    names: HashMap<FileKey, Vec<u8>>,
    /// The kernel's view, read for the batch being processed.
    snapshot: Option<Vec<Region>>,
    buf: Vec<u8>,
}

/// What the writer knows about a mapped file.
pub struct Ident {
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    pub path: Vec<u8>,
}

impl Identities {
    /// Forgets the per-batch view (the next lookup reads maps again).
    pub fn end_batch(&mut self) {
        self.snapshot = None;
    }

    /// Reads /proc/self/maps for this batch if not done yet.
    pub fn snapshot(&mut self) -> &[Region] {
        if self.snapshot.is_none() {
            let regions = match sys::PROC_MAPS.read(&mut self.buf) {
                Ok(()) => parse_maps(&self.buf).unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            self.learn(&regions);
            self.snapshot = Some(regions);
        }
        self.snapshot.as_deref().unwrap_or(&[])
    }

    /// Records the names of all file regions in a kernel view.
    pub fn learn(&mut self, regions: &[Region]) {
        for r in regions.iter().filter(|r| r.ino != 0 && !r.name.is_empty()) {
            self.name((r.dev_major, r.dev_minor, r.ino), r.name.clone());
        }
    }

    /// Remembers a file's name and tells the hooks they need not look it up again. Names the
    /// hooks were told about are never forgotten.
    pub fn name(&mut self, k: FileKey, path: Vec<u8>) {
        if let Some(old) = self.names.get_mut(&k) {
            // The kernel's current spelling wins (" (deleted)" appears once a file is removed).
            *old = path;
            return;
        }
        if self.names.len() >= 1 << 16 {
            return;
        }
        if let Some(ag) = crate::agent::current() {
            ag.known_insert(crate::agent::file_key((k.0 as u64) << 32 | k.1 as u64, k.2));
        }
        self.names.insert(k, path);
    }

    /// The region of the kernel's current view containing `addr`.
    pub fn region_at(&mut self, addr: u64) -> Option<Region> {
        let snap = self.snapshot();
        let i = snap.partition_point(|r| r.end <= addr);
        snap.get(i).filter(|r| r.start <= addr).cloned()
    }

    /// Identity of the file mapped at `addr` by fd `fd`, whose (dev, ino) the hook saw.
    pub fn file(&mut self, addr: u64, key: Option<FileKey>, fd: i32) -> Ident {
        if let Some(k) = key {
            if let Some(p) = self.names.get(&k) {
                return Ident {
                    dev_major: k.0,
                    dev_minor: k.1,
                    ino: k.2,
                    path: p.clone(),
                };
            }
        }
        if let Some(r) = self.region_at(addr) {
            let rk = (r.dev_major, r.dev_minor, r.ino);
            if r.is_file() && key.is_none_or(|k| k == rk) {
                return Ident {
                    dev_major: rk.0,
                    dev_minor: rk.1,
                    ino: rk.2,
                    path: r.name,
                };
            }
        }
        if let Some(k) = key {
            if let Some(p) = self.names.get(&k) {
                return Ident {
                    dev_major: k.0,
                    dev_minor: k.1,
                    ino: k.2,
                    path: p.clone(),
                };
            }
            if fd >= 0 && super::keep::app_fd_identity(fd) == Some(k) {
                if let Some(p) = sys::readlink(&sys::proc_path(&format!("fd/{fd}"))) {
                    self.name(k, p.clone());
                    return Ident {
                        dev_major: k.0,
                        dev_minor: k.1,
                        ino: k.2,
                        path: p,
                    };
                }
            }
            return Ident {
                dev_major: k.0,
                dev_minor: k.1,
                ino: k.2,
                path: Vec::new(),
            };
        }
        Ident {
            dev_major: 0,
            dev_minor: 0,
            ino: 0,
            path: Vec::new(),
        }
    }
}
