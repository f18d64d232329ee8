//! How each record changes the address space. The agent applies records to its model with this
//! code as it writes them, and the collector replays files with the same code, so both always
//! agree on the model a Reconcile record was computed against.

use crate::model::{page_up, AddressSpace, MAP_ANONYMOUS, MAP_FAILED, MAP_SHARED, MAP_SHARED_VALIDATE};
use crate::records::{change_op, Reconcile, Record};
use crate::region::Region;
use std::collections::BTreeMap;

pub const SHM_RDONLY: i32 = 0o10000;

#[derive(Clone, Debug)]
pub struct Replayer {
    pub space: AddressSpace,
    /// SysV attachments: address -> length, so shmdt knows what to remove.
    shm: BTreeMap<u64, u64>,
}

/// A reconcile record's changes as model regions: removals, then additions.
pub struct ReconcileChanges {
    pub removes: Vec<Region>,
    pub adds: Vec<Region>,
}

pub fn reconcile_changes(r: &Reconcile<'_>, src: u32) -> ReconcileChanges {
    let mut out = ReconcileChanges { removes: Vec::new(), adds: Vec::new() };
    for c in &r.changes {
        let region = Region::from_rec(&c.region, src);
        match c.op {
            change_op::REMOVE => out.removes.push(region),
            change_op::ADD => out.adds.push(region),
            _ => {}
        }
    }
    out
}

impl Replayer {
    pub fn new(page_size: u64) -> Self {
        Replayer { space: AddressSpace::new(page_size), shm: BTreeMap::new() }
    }

    fn page(&self) -> u64 {
        self.space.page_size()
    }

    /// Applies a mapping record (Mmap, Munmap, Mremap, Mprotect, Shmat, Shmdt); other kinds
    /// do nothing. `src` tags regions this record creates. Returns true if the model changed.
    pub fn apply_event(&mut self, rec: &Record<'_>, src: u32) -> bool {
        let page = self.page();
        match rec {
            Record::Mmap(m) => {
                if m.errno != 0 || m.result == MAP_FAILED {
                    return false;
                }
                let shared = m.flags & 3 == MAP_SHARED || m.flags & 3 == MAP_SHARED_VALIDATE;
                let anon = m.flags & MAP_ANONYMOUS != 0;
                let file = !anon || shared;
                self.space.map(Region {
                    start: m.result,
                    end: m.result.saturating_add(page_up(m.len, page)),
                    prot: (m.prot & 7) as u8,
                    shared,
                    offset: if anon { 0 } else { m.offset },
                    dev_major: if file { m.dev_major } else { 0 },
                    dev_minor: if file { m.dev_minor } else { 0 },
                    ino: if file { m.ino } else { 0 },
                    name: if file { m.path.0.to_vec() } else { Vec::new() },
                    src,
                });
                true
            }
            Record::Munmap(m) => {
                if m.ret != 0 {
                    return false;
                }
                self.space.unmap(m.addr, m.addr.saturating_add(page_up(m.len, page)));
                true
            }
            Record::Mremap(m) => {
                if m.errno != 0 || m.result == MAP_FAILED {
                    return false;
                }
                self.space.remap(m.old_addr, m.old_len, m.new_len, m.flags, m.result);
                true
            }
            Record::Mprotect(m) => {
                if m.ret != 0 {
                    return false;
                }
                self.space.protect(m.addr, m.addr.saturating_add(page_up(m.len, page)), (m.prot & 7) as u8);
                true
            }
            Record::Shmat(s) => {
                if s.errno != 0 || s.result == MAP_FAILED {
                    return false;
                }
                let len = page_up(s.size, page);
                self.shm.insert(s.result, len);
                self.space.map(Region {
                    start: s.result,
                    end: s.result.saturating_add(len),
                    prot: if s.shmflg & SHM_RDONLY != 0 { 1 } else { 3 },
                    shared: true,
                    offset: 0,
                    dev_major: s.dev_major,
                    dev_minor: s.dev_minor,
                    ino: s.shmid as u32 as u64,
                    name: s.name.0.to_vec(),
                    src,
                });
                true
            }
            Record::Shmdt(s) => {
                if s.ret != 0 {
                    return false;
                }
                match self.shm.remove(&s.addr) {
                    Some(len) => {
                        self.space.unmap(s.addr, s.addr + len);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// Applies a reconcile's changes: removals (only regions still looking the same), then
    /// additions.
    pub fn apply_changes(&mut self, c: &ReconcileChanges) {
        for r in &c.removes {
            self.space.remove_matching(r);
        }
        for r in &c.adds {
            self.space.map(r.clone());
        }
    }

    /// Adopts the kernel's view outright (what the agent does after writing a Reconcile).
    pub fn adopt(&mut self, kernel: Vec<Region>) {
        self.space.replace(kernel);
        let space = &self.space;
        self.shm.retain(|&a, _| space.find(a).is_some_and(|r| r.name.starts_with(b"/SYSV")));
    }
}
