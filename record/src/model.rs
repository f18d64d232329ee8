//! The address-space model: what the mapping calls did, applied the way the kernel applies
//! them. The agent keeps one to find what the hooks missed; the collector replays records into
//! one to answer "what was mapped at time T".

use crate::region::{vmf, Region, PROT_WRITE};
use std::collections::BTreeMap;

pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
pub const MAP_GROWSDOWN: u32 = 0x100;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_STACK: u32 = 0x20000;
pub const MREMAP_MAYMOVE: u32 = 1;
pub const MREMAP_FIXED: u32 = 2;
pub const MREMAP_DONTUNMAP: u32 = 4;
pub const MAP_FAILED: u64 = u64::MAX;

/// Rounds up to a multiple of `page` (a power of two).
pub fn page_up(x: u64, page: u64) -> u64 {
    x.saturating_add(page - 1) & !(page - 1)
}

#[derive(Clone, Debug)]
pub struct AddressSpace {
    regions: BTreeMap<u64, Region>,
    page: u64,
}

/// A difference between two views of the address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diff {
    Add(Region),
    Remove(Region),
}

impl AddressSpace {
    pub fn new(page_size: u64) -> Self {
        let page = if page_size.is_power_of_two() && page_size >= 4096 {
            page_size
        } else {
            4096
        };
        AddressSpace {
            regions: BTreeMap::new(),
            page,
        }
    }

    pub fn page_size(&self) -> u64 {
        self.page
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    pub fn regions(&self) -> Vec<Region> {
        self.regions.values().cloned().collect()
    }

    /// The region containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Region> {
        self.regions
            .range(..=addr)
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| addr < r.end)
    }

    /// The key to scan from for regions overlapping `start`: the region before it (which may
    /// straddle it), or `start` itself.
    fn first_key(&self, start: u64) -> u64 {
        self.regions
            .range(..start)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(start)
    }

    /// Regions overlapping [start, end), clipped to it, in address order.
    pub fn clipped(&self, start: u64, end: u64) -> Vec<Region> {
        let mut out = Vec::new();
        let first = self.first_key(start);
        for (_, r) in self.regions.range(first..end) {
            if r.end > start {
                out.push(r.clip(start, end));
            }
        }
        out
    }

    /// Replaces everything with `regions` (a reconcile adopting the kernel's view), line for
    /// line.
    pub fn replace(&mut self, regions: Vec<Region>) {
        self.regions.clear();
        for r in regions {
            if !r.is_empty() {
                self.regions.insert(r.start, r);
            }
        }
    }

    /// Places `r` exactly as given, over whatever was there, merged with nothing: a VMA the
    /// kernel reported (a line of maps).
    pub fn place_exact(&mut self, r: Region) {
        if r.is_empty() {
            return;
        }
        self.unmap(r.start, r.end);
        self.regions.insert(r.start, r);
    }

    /// Tags the regions starting in [start, end) with `src` (the call a kernel report was
    /// about: its record says more than the report's).
    pub fn retag(&mut self, start: u64, end: u64, src: u64) {
        for (_, r) in self.regions.range_mut(start..end) {
            r.src = src;
        }
    }

    /// Marks the mappings of file `ino` in [start, end) shared (what a report that could not
    /// say so left private: see the writer's kernel timeline).
    pub fn mark_shared(&mut self, start: u64, end: u64, ino: u64) {
        let first = self.first_key(start);
        for (_, r) in self.regions.range_mut(first..end) {
            if r.end > start && r.ino == ino && r.is_file() {
                r.shared = true;
            }
        }
    }

    /// munmap: removes [start, end), splitting regions that straddle the edges.
    pub fn unmap(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        for r in self.take_overlapping(start, end) {
            if r.start < start {
                let left = r.clip(r.start, start);
                self.regions.insert(left.start, left);
            }
            if r.end > end {
                let right = r.clip(end, r.end);
                self.regions.insert(right.start, right);
            }
        }
    }

    /// mmap (and anything else that places a whole new region, replacing what was there) of a
    /// call the model saw: its hidden flags are known (`r.vmf` may carry NORESERVE and the
    /// like; ACCOUNT follows from the protection), so it merges where the kernel's would.
    pub fn map(&mut self, mut r: Region) {
        if r.is_empty() {
            return;
        }
        r.vmf |= vmf::KNOWN;
        if accountable(&r, r.prot) {
            r.vmf |= vmf::ACCOUNT;
        }
        let (s, e) = (r.start, r.end);
        self.unmap(s, e);
        self.regions.insert(s, r);
        self.merge_around(s, e);
    }

    /// mprotect: changes the protection of every mapped page in [start, end).
    pub fn protect(&mut self, start: u64, end: u64, prot: u8) {
        if end <= start {
            return;
        }
        for r in self.take_overlapping(start, end) {
            if r.start < start {
                let left = r.clip(r.start, start);
                self.regions.insert(left.start, left);
            }
            let mut mid = r.clip(start, end);
            // mprotect_fixup charges a private mapping made writable, and never uncharges.
            if mid.vmf & vmf::KNOWN != 0 && accountable(&mid, prot) {
                mid.vmf |= vmf::ACCOUNT;
            }
            mid.prot = prot;
            self.regions.insert(mid.start, mid);
            if r.end > end {
                let right = r.clip(end, r.end);
                self.regions.insert(right.start, right);
            }
        }
        self.merge_around(start, end);
    }

    /// mremap that returned `result`.
    pub fn remap(&mut self, old: u64, old_len: u64, new_len: u64, flags: u32, result: u64) {
        if result == MAP_FAILED {
            return;
        }
        let old_len = page_up(old_len, self.page);
        let new_len = page_up(new_len, self.page);
        let old_end = old.saturating_add(old_len);
        if old_len == 0 {
            // Duplicates a shared mapping: the old one stays.
            if let Some(t) = self.find(old).cloned() {
                let mut r = t.clip(old, t.end);
                r.start = result;
                r.end = result.saturating_add(new_len);
                self.map(r);
            }
            return;
        }
        let pieces = self.clipped(old, old_end);
        if result == old {
            if new_len < old_len {
                self.unmap(old.saturating_add(new_len), old_end);
            } else if new_len > old_len {
                // The last VMA grows in place (vma_expand): same VMA, same flags.
                let new_end = old.saturating_add(new_len);
                self.unmap(old_end, new_end);
                match self.find(old_end.wrapping_sub(1)).map(|r| r.start) {
                    Some(k) if old_end > old => {
                        if let Some(r) = self.regions.get_mut(&k) {
                            r.end = new_end;
                        }
                        self.merge_around(k, new_end);
                    }
                    _ => self.place_exact(Region {
                        start: old_end,
                        end: new_end,
                        prot: 3,
                        ..Default::default()
                    }),
                }
            }
            return;
        }
        if flags & MREMAP_DONTUNMAP == 0 {
            self.unmap(old, old_end);
        }
        let new_end = result.saturating_add(new_len);
        self.unmap(result, new_end);
        if pieces.is_empty() {
            // The model never saw the source (mapped behind the hooks' back): keep the new
            // range as anonymous memory; the next reconcile corrects it if needed.
            self.place_exact(Region {
                start: result,
                end: new_end,
                prot: 3,
                ..Default::default()
            });
            return;
        }
        let n = pieces.len();
        for (i, p) in pieces.into_iter().enumerate() {
            let mut r = p.clone();
            r.start = result.saturating_add(p.start - old);
            r.end = if i + 1 == n {
                new_end
            } else {
                result.saturating_add(p.end - old)
            };
            if r.start >= new_end {
                break;
            }
            r.end = r.end.min(new_end);
            let (s, e) = (r.start, r.end);
            self.regions.insert(s, r);
            self.merge_around(s, e);
        }
    }

    /// Removes and returns every region overlapping [start, end).
    fn take_overlapping(&mut self, start: u64, end: u64) -> Vec<Region> {
        let first = self.first_key(start);
        let keys: Vec<u64> = self
            .regions
            .range(first..end)
            .filter(|(_, r)| r.end > start)
            .map(|(&k, _)| k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.regions.remove(&k))
            .collect()
    }

    /// Merges mergeable neighbours in and around [start, end), as the kernel's vma_merge does.
    fn merge_around(&mut self, start: u64, end: u64) {
        let from = self.first_key(start);
        let to = self
            .regions
            .range(end..)
            .next()
            .map(|(&k, _)| k)
            .unwrap_or(end);
        let keys: Vec<u64> = self.regions.range(from..=to).map(|(&k, _)| k).collect();
        let mut cur: Option<u64> = None;
        for k in keys {
            if let Some(c) = cur {
                let mergeable = match (self.regions.get(&c), self.regions.get(&k)) {
                    (Some(a), Some(b)) => a.merges_with(b),
                    _ => false,
                };
                if mergeable {
                    let b = self.regions.remove(&k).expect("key listed above");
                    if let Some(a) = self.regions.get_mut(&c) {
                        a.end = b.end;
                    }
                    continue;
                }
            }
            cur = Some(k);
        }
    }

    /// What differs between this view and `kernel`, line for line: regions only the kernel
    /// has are `Add`, regions only this view has are `Remove`.
    pub fn diff(&self, kernel: &[Region]) -> Vec<Diff> {
        let mine: Vec<&Region> = self.regions.values().collect();
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < mine.len() || j < kernel.len() {
            match (mine.get(i), kernel.get(j)) {
                (Some(a), Some(b)) if **a == *b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) => {
                    if a.start < b.start || (a.start == b.start && a.end <= b.end) {
                        out.push(Diff::Remove((*a).clone()));
                        i += 1;
                    } else {
                        out.push(Diff::Add(b.clone()));
                        j += 1;
                    }
                }
                (Some(a), None) => {
                    out.push(Diff::Remove((*a).clone()));
                    i += 1;
                }
                (None, Some(b)) => {
                    out.push(Diff::Add(b.clone()));
                    j += 1;
                }
                (None, None) => break,
            }
        }
        // Removes first, then adds: applying them in that order turns this view into `kernel`.
        out.sort_by_key(|d| matches!(d, Diff::Add(_)));
        out
    }

    /// Removes what a reconcile found gone: the parts of [r.start, r.end) still mapped with
    /// r's identity, and the rest of each VMA they belong to. When the agent wrote the
    /// removal its model held exactly `r`; a view replayed to an earlier moment may still hold
    /// the whole VMA `r` was part of (the rest was overlaid later by a call with its own
    /// record), and that rest went with it.
    pub fn remove_matching(&mut self, r: &Region) {
        for piece in self.clipped(r.start, r.end) {
            if !piece.same_identity(r) {
                continue;
            }
            let whole = self
                .find(piece.start)
                .filter(|w| {
                    !w.is_file() || w.offset.wrapping_sub(w.start) == r.offset.wrapping_sub(r.start)
                })
                .map(|w| (w.start, w.end));
            match whole {
                Some((s, e)) => self.unmap(s, e),
                None => self.unmap(piece.start, piece.end),
            }
        }
    }

    /// Applies one reconcile change.
    pub fn apply(&mut self, d: &Diff) {
        match d {
            Diff::Remove(r) => {
                // Remove exactly the region that was there (if it still is).
                if self.regions.get(&r.start).is_some_and(|x| x == r) {
                    self.regions.remove(&r.start);
                } else {
                    self.unmap(r.start, r.end);
                }
            }
            Diff::Add(r) => self.place_exact(r.clone()),
        }
    }
}

/// Whether the kernel charges `r` with protection `prot` (accountable_mapping).
fn accountable(r: &Region, prot: u8) -> bool {
    !r.shared && prot & PROT_WRITE != 0 && r.vmf & vmf::NORESERVE == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::parse_maps;

    fn anon(s: u64, e: u64, prot: u8) -> Region {
        Region {
            start: s,
            end: e,
            prot,
            ..Default::default()
        }
    }
    fn file(s: u64, e: u64, prot: u8, off: u64) -> Region {
        Region {
            start: s,
            end: e,
            prot,
            offset: off,
            ino: 7,
            name: b"/f".to_vec(),
            dev_major: 8,
            ..Default::default()
        }
    }

    #[test]
    fn map_unmap_split() {
        let mut a = AddressSpace::new(4096);
        a.map(file(0x10000, 0x20000, 1, 0));
        a.unmap(0x14000, 0x15000);
        let r = a.regions();
        assert_eq!(r.len(), 2);
        assert_eq!((r[1].start, r[1].offset), (0x15000, 0x5000));
        a.map(anon(0x20000, 0x21000, 3));
        a.map(anon(0x21000, 0x22000, 3));
        assert_eq!(a.len(), 3, "adjacent anon merged");
    }

    #[test]
    fn mprotect_splits_and_remerges() {
        let mut a = AddressSpace::new(4096);
        a.map(anon(0x1000, 0x9000, 3));
        a.protect(0x3000, 0x4000, 0);
        assert_eq!(a.len(), 3);
        assert_eq!(a.find(0x3000).unwrap().prot, 0);
        a.protect(0x3000, 0x4000, 3);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn mremap_grow_in_place_and_move() {
        let mut a = AddressSpace::new(4096);
        a.map(file(0x10000, 0x12000, 1, 0x1000));
        a.remap(0x10000, 0x2000, 0x4000, MREMAP_MAYMOVE, 0x10000);
        assert_eq!(a.regions(), vec![file(0x10000, 0x14000, 1, 0x1000)]);
        a.remap(0x10000, 0x4000, 0x8000, MREMAP_MAYMOVE, 0x40000);
        assert_eq!(a.regions(), vec![file(0x40000, 0x48000, 1, 0x1000)]);
        a.remap(0x40000, 0x8000, 0x1000, 0, 0x40000);
        assert_eq!(a.regions(), vec![file(0x40000, 0x41000, 1, 0x1000)]);
    }

    #[test]
    fn hostile_values_do_not_overflow() {
        // Found by fuzz/replay: ranges at the top of the address space.
        let mut a = AddressSpace::new(4096);
        a.map(anon(u64::MAX - 0x3000, u64::MAX - 0x1000, 3));
        a.remap(
            u64::MAX - 0x3000,
            0x2000,
            u64::MAX,
            MREMAP_MAYMOVE,
            u64::MAX - 0x3000,
        );
        a.remap(
            u64::MAX - 0x3000,
            0x2000,
            0x10000,
            MREMAP_MAYMOVE,
            u64::MAX - 0x2000,
        );
        a.protect(u64::MAX - 0x1000, u64::MAX, 1);
        a.unmap(0, u64::MAX);
        assert!(a.is_empty());
    }

    #[test]
    fn diff_then_apply_reaches_kernel_view() {
        let mut a = AddressSpace::new(4096);
        a.map(anon(0x1000, 0x3000, 3));
        a.map(file(0x10000, 0x12000, 5, 0));
        let kernel = parse_maps(
            b"1000-2000 rw-p 00000000 00:00 0\n\
              10000-12000 r-xp 00000000 08:00 7 /f\n\
              20000-21000 rw-p 00000000 00:00 0 [heap]\n",
        )
        .unwrap();
        let d = a.diff(&kernel);
        assert_eq!(d.len(), 3, "{d:?}");
        for x in &d {
            a.apply(x);
        }
        assert!(a.diff(&kernel).is_empty());
        assert_eq!(a.regions(), kernel);
    }

    #[test]
    fn kernel_lines_stay_apart() {
        // Two adjacent anonymous lines of maps may differ in flags maps does not print (a
        // thread stack beside a heap arena): the model keeps both, and a call that touches
        // one does not merge it into the other.
        let kernel = parse_maps(
            b"1000-3000 rw-p 00000000 00:00 0\n\
              3000-5000 rw-p 00000000 00:00 0\n",
        )
        .unwrap();
        let mut a = AddressSpace::new(4096);
        a.replace(kernel.clone());
        assert_eq!(a.regions(), kernel);
        a.protect(0x3000, 0x4000, 1);
        a.protect(0x3000, 0x4000, 3);
        assert_eq!(
            a.len(),
            3,
            "pieces of an unknown VMA are not re-merged on a guess"
        );
        assert!(a.diff(&kernel).len() == 3);
    }

    #[test]
    fn relro_stays_apart_from_rodata() {
        let mut a = AddressSpace::new(4096);
        a.map(file(0x10000, 0x20000, 1, 0));
        a.map(file(0x14000, 0x20000, 3, 0x4000)); // the RW segment, MAP_FIXED
        a.protect(0x14000, 0x18000, 1); // RELRO
        let r = a.regions();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!((r[1].start, r[1].end, r[1].prot), (0x14000, 0x18000, 1));
        // Written-then-protected stays apart; a read-only neighbour made read-only again
        // merges back.
        a.protect(0x10000, 0x12000, 0);
        a.protect(0x10000, 0x12000, 1);
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn place_exact_merges_nothing() {
        let mut a = AddressSpace::new(4096);
        a.map(anon(0x1000, 0x2000, 3));
        a.place_exact(anon(0x2000, 0x3000, 3));
        a.map(anon(0x3000, 0x4000, 3));
        assert_eq!(a.len(), 3, "the exact line merges with neither neighbour");
    }
}
