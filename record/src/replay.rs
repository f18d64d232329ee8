//! How each record changes the address space. The agent applies records to its model with this
//! code as it writes them, and the collector replays files with the same code, so both always
//! agree on the model a Reconcile record was computed against.

use crate::model::{
    page_up, AddressSpace, MAP_ANONYMOUS, MAP_FAILED, MAP_GROWSDOWN, MAP_NORESERVE, MAP_SHARED,
    MAP_SHARED_VALIDATE, MAP_STACK,
};
use crate::records::{change_op, image_cause, ktimeline, Phdr, Reconcile, Record};
use crate::region::{vmf, Region};
use std::collections::BTreeMap;

pub const SHM_RDONLY: i32 = 0o10000;

#[derive(Clone, Debug)]
pub struct Replayer {
    pub space: AddressSpace,
    /// SysV attachments: address -> length, so shmdt knows what to remove.
    shm: BTreeMap<u64, u64>,
    /// dlopen'ed images by id, so an unload knows its extent.
    images: BTreeMap<u64, (u64, Vec<Phdr>)>,
    /// The kernel reports every VMA it creates or changes (KernelMap records): the layout
    /// of mmap, mprotect, shmat and dlopen comes from those, exactly, and the hooks' records
    /// of these calls place nothing. What the kernel does not report (munmap, mremap, shmdt,
    /// dlclose) still comes from the hooks.
    pub kernel_timeline: bool,
}

/// Changes of a reconcile record that take effect at the same moment: removals, then
/// additions.
#[derive(Default)]
pub struct ReconcileChanges {
    pub at: u64,
    pub removes: Vec<Region>,
    pub adds: Vec<Region>,
}

/// A reconcile record's changes grouped by the moment each takes effect, earliest first.
pub fn reconcile_changes(r: &Reconcile<'_>, src: u64) -> Vec<ReconcileChanges> {
    let mut groups: BTreeMap<u64, ReconcileChanges> = BTreeMap::new();
    for c in &r.changes {
        let at = if c.at == 0 { r.ts } else { c.at };
        let g = groups.entry(at).or_insert_with(|| ReconcileChanges {
            at,
            ..Default::default()
        });
        let region = Region::from_rec(&c.region, src);
        if region.is_empty() {
            continue; // an inverted or empty range from a damaged file
        }
        match c.op {
            change_op::REMOVE => g.removes.push(region),
            change_op::ADD => g.adds.push(region),
            _ => {}
        }
    }
    groups.into_values().collect()
}

impl Replayer {
    pub fn new(page_size: u64) -> Self {
        Replayer {
            space: AddressSpace::new(page_size),
            shm: BTreeMap::new(),
            images: BTreeMap::new(),
            kernel_timeline: false,
        }
    }

    fn page(&self) -> u64 {
        self.space.page_size()
    }

    /// Applies a mapping record (Mmap, Munmap, Mremap, Mprotect, Shmat, Shmdt, and Image /
    /// ImageUnload from dlopen/dlclose); other kinds do nothing. `src` tags regions this record creates. Returns true if the model changed.
    pub fn apply_event(&mut self, rec: &Record<'_>, src: u64) -> bool {
        let page = self.page();
        match rec {
            Record::KernelTimeline(k) => {
                match k.state {
                    ktimeline::ON => self.kernel_timeline = true,
                    ktimeline::OFF => self.kernel_timeline = false,
                    _ => {}
                }
                false
            }
            Record::KernelMap(k) => {
                let r = Region::from_rec(&k.region, src);
                if r.is_empty() {
                    return false;
                }
                self.space.place_exact(r);
                true
            }
            Record::Mmap(m) => {
                if m.errno != 0 || m.result == MAP_FAILED {
                    return false;
                }
                let shared = m.flags & 3 == MAP_SHARED || m.flags & 3 == MAP_SHARED_VALIDATE;
                let anon = m.flags & MAP_ANONYMOUS != 0;
                if self.kernel_timeline {
                    // Placed by its KernelMap already, except that the kernel reports a
                    // shared mapping of a file opened read-only as private.
                    let end = m.result.saturating_add(page_up(m.len, page));
                    self.space.retag(m.result, end, src);
                    if shared && !anon && m.prot & 2 == 0 {
                        self.space.mark_shared(m.result, end, m.ino);
                    }
                    return true;
                }
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
                    vmf: mmap_vmf(m.flags),
                });
                true
            }
            Record::Munmap(m) => {
                if m.ret != 0 {
                    return false;
                }
                self.space
                    .unmap(m.addr, m.addr.saturating_add(page_up(m.len, page)));
                true
            }
            Record::Mremap(m) => {
                if m.errno != 0 || m.result == MAP_FAILED {
                    return false;
                }
                self.space
                    .remap(m.old_addr, m.old_len, m.new_len, m.flags, m.result);
                true
            }
            Record::Mprotect(m) => {
                if m.ret != 0 || self.kernel_timeline {
                    return false;
                }
                self.space.protect(
                    m.addr,
                    m.addr.saturating_add(page_up(m.len, page)),
                    (m.prot & 7) as u8,
                );
                true
            }
            Record::Shmat(s) => {
                if s.errno != 0 || s.result == MAP_FAILED {
                    return false;
                }
                let len = page_up(s.size, page);
                self.shm.insert(s.result, len);
                if self.kernel_timeline {
                    self.space
                        .retag(s.result, s.result.saturating_add(len), src);
                    return true;
                }
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
                    vmf: 0,
                });
                true
            }
            // Images loaded after the start are placed when seen, as ld.so lays them out;
            // images present at start are already in the baseline and only remembered.
            Record::Image(im) => {
                self.images.insert(im.id, (im.bias, im.phdrs.clone()));
                if im.cause == image_cause::STARTUP || self.kernel_timeline {
                    return false;
                }
                for r in image_regions(
                    im.bias,
                    &im.phdrs,
                    im.path.0,
                    (im.dev_major, im.dev_minor),
                    im.ino,
                    page,
                    src,
                ) {
                    self.space.map(r);
                }
                true
            }
            Record::ImageUnload(u) => match self.images.remove(&u.id) {
                Some((bias, phdrs)) => {
                    if let Some((s, e)) = image_extent(bias, &phdrs, page) {
                        self.space.unmap(s, e);
                    }
                    true
                }
                None => false,
            },
            Record::Shmdt(s) => {
                if s.ret != 0 {
                    return false;
                }
                match self.shm.remove(&s.addr) {
                    Some(len) => {
                        self.space.unmap(s.addr, s.addr.saturating_add(len));
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
            self.space.place_exact(r.clone());
        }
    }

    /// Adopts the kernel's view outright (what the agent does after writing a Reconcile).
    pub fn adopt(&mut self, kernel: Vec<Region>) {
        self.space.replace(kernel);
        let space = &self.space;
        self.shm
            .retain(|&a, _| space.find(a).is_some_and(|r| r.name.starts_with(b"/SYSV")));
    }
}

/// The hidden VMA flags an mmap's flags set.
fn mmap_vmf(flags: u32) -> u8 {
    let mut f = 0;
    if flags & MAP_NORESERVE != 0 {
        f |= vmf::NORESERVE;
    }
    if flags & MAP_STACK != 0 {
        f |= vmf::NOHUGEPAGE;
    }
    if flags & MAP_GROWSDOWN != 0 {
        f |= vmf::GROWSDOWN;
    }
    f
}

/// The mappings ld.so creates for an ELF image loaded at `bias` (glibc's _dl_map_segments):
/// each PT_LOAD's file pages with its protection, the holes between segments PROT_NONE (still
/// file-backed), the bss past the file as anonymous memory, and PT_GNU_RELRO made read-only
/// after relocation. Used to place a dlopen'ed image at the moment it was loaded, not at the
/// next reconcile.
pub fn image_regions(
    bias: u64,
    phdrs: &[crate::records::Phdr],
    path: &[u8],
    dev: (u32, u32),
    ino: u64,
    page: u64,
    src: u64,
) -> Vec<Region> {
    const PT_LOAD: u32 = 1;
    const PT_GNU_RELRO: u32 = 0x6474_e552;
    let trunc = |x: u64| x & !(page - 1);
    let round = |x: u64| page_up(x, page);
    let prot_of =
        |f: u32| ((f & 4 != 0) as u8) | (((f & 2 != 0) as u8) << 1) | (((f & 1 != 0) as u8) << 2);
    let loads: Vec<&crate::records::Phdr> = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.memsz > 0)
        .collect();
    let Some(first) = loads.first() else {
        return Vec::new();
    };
    let mut space = AddressSpace::new(page);
    let file = |start: u64, end: u64, prot: u8, offset: u64| Region {
        start,
        end,
        prot,
        shared: false,
        offset,
        dev_major: dev.0,
        dev_minor: dev.1,
        ino,
        name: path.to_vec(),
        src,
        vmf: 0,
    };
    let base_off = trunc(first.offset);
    let base_addr = bias.wrapping_add(trunc(first.vaddr));
    // The whole extent is reserved first with the first segment's mapping; holes end up
    // PROT_NONE.
    let last_end = loads
        .iter()
        .map(|p| bias.wrapping_add(round(p.vaddr.saturating_add(p.memsz))))
        .max()
        .unwrap_or(base_addr);
    space.map(file(base_addr, last_end, 0, base_off));
    for p in &loads {
        let start = bias.wrapping_add(trunc(p.vaddr));
        let file_end = bias.wrapping_add(round(p.vaddr.saturating_add(p.filesz)));
        let alloc_end = bias.wrapping_add(round(p.vaddr.saturating_add(p.memsz)));
        if file_end > start {
            space.map(file(start, file_end, prot_of(p.p_flags), trunc(p.offset)));
        }
        if alloc_end > file_end {
            space.map(Region {
                start: file_end.max(start),
                end: alloc_end,
                prot: prot_of(p.p_flags),
                src,
                ..Default::default()
            });
        }
    }
    if let Some(r) = phdrs.iter().find(|p| p.p_type == PT_GNU_RELRO) {
        let (s, e) = (
            bias.wrapping_add(trunc(r.vaddr)),
            bias.wrapping_add(trunc(r.vaddr.saturating_add(r.memsz))),
        );
        if e > s {
            space.protect(s, e, 1);
        }
    }
    space.regions()
}

/// The address range an image occupies (what dlclose unmaps).
pub fn image_extent(bias: u64, phdrs: &[crate::records::Phdr], page: u64) -> Option<(u64, u64)> {
    let loads = phdrs.iter().filter(|p| p.p_type == 1 && p.memsz > 0);
    let lo = loads.clone().map(|p| p.vaddr & !(page - 1)).min()?;
    let hi = loads
        .map(|p| page_up(p.vaddr.saturating_add(p.memsz), page))
        .max()?;
    Some((bias.wrapping_add(lo), bias.wrapping_add(hi)))
}
