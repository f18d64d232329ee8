//! The state of a mapping's pages, read without touching them (nothing here faults a page in):
//! - PAGEMAP_SCAN (Linux 6.7+) walks only populated page tables and returns the runs of
//!   present or swapped pages with their categories (file, huge);
//! - /proc/self/pagemap gives per-page bits, including "mapped only here" (bit 56), which
//!   PAGEMAP_SCAN has no category for; read only for the present runs of private file
//!   mappings, where copy-on-write is the question, or for everything on older kernels;
//! - mincore gives residency: for private anonymous memory with no swap configured that is
//!   exactly "present", at a tenth of pagemap's cost on dense memory; for a file mapping it is
//!   page-cache residency, used only where the kernel reports it truthfully.
//!
//! Results are runs of equal state, never a byte per page kept around.
//! (Slices are taken with `get`: every panic site is a relocated location record, and the
//! agent's relocated data is private dirty memory in every process it is loaded into.)

use core::ffi::{c_int, c_ulong};
use mapagent_record::records::{page, scan_method, Run};
use mapagent_record::region::Region;
use mapagent_record::runs::Runs;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// _IOWR('f', 16, struct pm_scan_arg)
const PAGEMAP_SCAN: c_ulong = (3 << 30)
    | ((core::mem::size_of::<PmScanArg>() as c_ulong) << 16)
    | ((b'f' as c_ulong) << 8)
    | 16;
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_HUGE: u64 = 1 << 6;

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
const PM_EXCLUSIVE: u64 = 1 << 56;

/// Pages read per pagemap or mincore call: bounded buffers however large the mapping.
const CHUNK: usize = 1 << 16;
/// Runs asked of PAGEMAP_SCAN per call.
const SCAN_VEC: usize = 2048;

/// What one mapping's scan found.
pub struct Scanned {
    pub runs: Vec<Run>,
    /// `page` bits that were read.
    pub known: u8,
    pub method: u8,
    pub present: u64,
}

pub struct Scanner {
    pagemap: c_int,
    /// None until tried; false on kernels without PAGEMAP_SCAN.
    scan_works: Option<bool>,
    regions: Vec<PageRegion>,
    entries: Vec<u64>,
    page: u64,
}

impl Drop for Scanner {
    fn drop(&mut self) {
        unsafe { libc::close(self.pagemap) };
    }
}

impl Scanner {
    pub fn open(page: u64) -> Option<Scanner> {
        let fd = crate::sys::open_read(&crate::sys::proc_path("pagemap"));
        (fd >= 0).then(|| Scanner {
            pagemap: fd,
            scan_works: None,
            regions: vec![PageRegion::default(); SCAN_VEC],
            entries: Vec::new(),
            page,
        })
    }

    /// Reads the state of every page of `r`. `swap`: whether swap is configured (without it a
    /// private anonymous page is present exactly when resident). `cache_truthful`: whether
    /// mincore tells page-cache residency for this file mapping.
    pub fn scan(&mut self, r: &Region, swap: bool, cache_truthful: bool) -> Scanned {
        // mincore answers for the caller's own address space only, so from the collector
        // pagemap tells residency, and page-cache residency of file pages (CACHED) is not
        // reported: that would take mapping each file here and asking mincore (fincore).
        let _ = (swap, cache_truthful);
        let pages = r.len() / self.page;
        let detail = r.is_file() && !r.shared;
        match self.by_scan(r.start, pages, detail) {
            Some(s) => s,
            None => self.by_pagemap(r.start, pages),
        }
    }

    fn unknown(pages: u64, method: u8) -> Scanned {
        let mut runs = Runs(Vec::new());
        runs.push(pages, 0);
        Scanned {
            runs: runs.0,
            known: 0,
            method,
            present: 0,
        }
    }

    /// PAGEMAP_SCAN for the present and swapped runs; with `detail`, pagemap for their
    /// per-page bits. None if the kernel has no PAGEMAP_SCAN.
    fn by_scan(&mut self, start: u64, pages: u64, detail: bool) -> Option<Scanned> {
        if self.scan_works == Some(false) {
            return None;
        }
        let end = start + pages * self.page;
        let mut runs = Runs(Vec::new());
        let mut present = 0u64;
        let mut at = start;
        while at < end {
            let mut arg = PmScanArg {
                size: core::mem::size_of::<PmScanArg>() as u64,
                start: at,
                end,
                vec: self.regions.as_mut_ptr() as u64,
                vec_len: self.regions.len() as u64,
                category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_HUGE,
                ..Default::default()
            };
            let n = unsafe { libc::ioctl(self.pagemap, PAGEMAP_SCAN, &mut arg as *mut PmScanArg) };
            if n < 0 {
                let e = crate::sys::errno();
                if self.scan_works.is_none() && (e == libc::ENOTTY || e == libc::EINVAL) {
                    self.scan_works = Some(false);
                    return None;
                }
                return Some(Self::unknown(pages, scan_method::PAGEMAP_SCAN));
            }
            self.scan_works = Some(true);
            let found = self.regions.get(..n as usize).unwrap_or(&[]).to_vec();
            for pr in found {
                let (s, e) = (pr.start.max(at), pr.end.min(end));
                if s > at {
                    runs.push((s - at) / self.page, 0);
                }
                let count = (e - s) / self.page;
                if detail {
                    if !self.pagemap_runs(s, count, &mut runs) {
                        return Some(Self::unknown(pages, scan_method::PAGEMAP_SCAN));
                    }
                } else {
                    runs.push(count, categories_state(pr.categories));
                }
                if pr.categories & PAGE_IS_PRESENT != 0 {
                    present += count;
                }
                at = e;
            }
            // The walk covered [.., walk_end): what it did not return there is neither present
            // nor swapped. It stops early only when the vector filled up.
            let walk_end = arg.walk_end.clamp(at, end);
            if walk_end > at {
                runs.push((walk_end - at) / self.page, 0);
                at = walk_end;
            } else if n == 0 {
                break;
            }
        }
        if at < end {
            runs.push((end - at) / self.page, 0);
        }
        let known = page::PRESENT
            | page::SWAPPED
            | page::FILE
            | page::HUGE
            | if detail { page::EXCLUSIVE } else { 0 };
        Some(Scanned {
            runs: runs.0,
            known,
            method: scan_method::PAGEMAP_SCAN,
            present,
        })
    }

    /// Every page from pagemap (kernels without PAGEMAP_SCAN).
    fn by_pagemap(&mut self, start: u64, pages: u64) -> Scanned {
        let mut runs = Runs(Vec::new());
        if !self.pagemap_runs(start, pages, &mut runs) {
            return Self::unknown(pages, scan_method::PAGEMAP);
        }
        let present = runs
            .0
            .iter()
            .filter(|r| r.state & page::PRESENT != 0)
            .map(|r| r.pages as u64)
            .sum();
        Scanned {
            runs: runs.0,
            known: page::PRESENT | page::SWAPPED | page::FILE | page::EXCLUSIVE,
            method: scan_method::PAGEMAP,
            present,
        }
    }

    /// Appends the pagemap state of `count` pages from `start`.
    fn pagemap_runs(&mut self, start: u64, count: u64, runs: &mut Runs) -> bool {
        if self.entries.len() < CHUNK {
            self.entries.resize(CHUNK, 0);
        }
        let mut done = 0u64;
        while done < count {
            let n = (count - done).min(CHUNK as u64) as usize;
            let off = (start / self.page + done) * 8;
            let want = n * 8;
            let got = unsafe {
                libc::pread(
                    self.pagemap,
                    self.entries.as_mut_ptr().cast(),
                    want,
                    off as libc::off_t,
                )
            };
            if got != want as isize {
                return false;
            }
            // Runs counted here: one push per run, not per page.
            let mut it = self.entries.get(..n).unwrap_or(&[]).iter();
            if let Some(&e) = it.next() {
                let (mut state, mut count) = (pagemap_state(e), 1u64);
                for &e in it {
                    let s = pagemap_state(e);
                    if s == state {
                        count += 1;
                    } else {
                        runs.push(count, state);
                        (state, count) = (s, 1);
                    }
                }
                runs.push(count, state);
            }
            done += n as u64;
        }
        true
    }
}

fn pagemap_state(e: u64) -> u8 {
    let mut s = 0;
    if e & PM_PRESENT != 0 {
        s |= page::PRESENT;
    }
    if e & PM_SWAPPED != 0 {
        s |= page::SWAPPED;
    }
    if e & PM_FILE != 0 {
        s |= page::FILE;
    }
    if e & PM_EXCLUSIVE != 0 {
        s |= page::EXCLUSIVE;
    }
    s
}

fn categories_state(c: u64) -> u8 {
    let mut s = 0;
    if c & PAGE_IS_PRESENT != 0 {
        s |= page::PRESENT;
    }
    if c & PAGE_IS_SWAPPED != 0 {
        s |= page::SWAPPED;
    }
    if c & PAGE_IS_FILE != 0 {
        s |= page::FILE;
    }
    if c & PAGE_IS_HUGE != 0 {
        s |= page::HUGE;
    }
    s
}

/// Whether swap is configured (SwapTotal in /proc/meminfo is not 0).
pub fn swap_configured() -> bool {
    let mut buf = Vec::new();
    if crate::sys::read_file(c"/proc/meminfo", &mut buf).is_err() {
        return true;
    }
    buf.split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(b"SwapTotal:"))
        .map(|v| v.iter().any(|&c| (b'1'..=b'9').contains(&c)))
        .unwrap_or(true)
}
