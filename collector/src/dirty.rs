//! Which symbols of which image sit on private dirty pages, and the relocations that dirtied
//! them. The pages come from a snapshot the agent took inside the process (pagemap: a present
//! page of a private file mapping that is not the page-cache page was copied on write); the
//! symbols, sections and relocations from the image's ELF file (or the copy the agent kept,
//! or a debug file found by build-id).
//!
//! Counting: an image's `dirty_pages` are its copied-on-write file pages (what pmap and smaps
//! call private dirty for the library's mappings); touched pages of its .bss beyond the file
//! are anonymous memory and counted apart (`bss_pages`). A symbol's `dirty_pages` are the
//! pages it overlaps that are either. Bytes of dirty pages that no symbol covers are given to
//! their section ("[.got]") or, between sections, to "[padding]".

use crate::derive::FileView;
use crate::elfimage::{ElfInfo, ImageFile, RelKind, Reloc, Section};
use crate::error::{Error, Result};
use crate::snapshot::{PageKind, PageMap, SnapshotInfo, Which};
use crate::timeline::{ImageSpan, Timeline};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Copy, Default, Debug, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Copied on write: private dirty file pages.
    pub dirty: u64,
    /// Present and still shared with the page cache.
    pub clean: u64,
    /// Not present (never touched here).
    pub absent: u64,
    /// Touched anonymous pages (an image's .bss past its file).
    pub bss: u64,
    /// Not mapped at the snapshot, or unreadable.
    pub unknown: u64,
}

impl Counts {
    fn add(&mut self, k: PageKind) {
        match k {
            PageKind::Cow => self.dirty += 1,
            PageKind::Clean => self.clean += 1,
            PageKind::Absent => self.absent += 1,
            PageKind::Anon => self.bss += 1,
            PageKind::Unknown => self.unknown += 1,
        }
    }
    pub fn total(&self) -> u64 {
        self.dirty + self.clean + self.absent + self.bss + self.unknown
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    pub perms: String,
    /// Runtime address of its first page.
    pub addr: u64,
    pub pages: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Clone, Debug, Serialize)]
pub struct SectionReport {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub pages: u64,
    pub dirty_pages: u64,
    pub clean_pages: u64,
    pub absent_pages: u64,
    pub bss_pages: u64,
    pub relocations: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SymbolReport {
    /// Demangled.
    pub name: String,
    /// As in the file, when demangling changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mangled: Option<String>,
    /// "symbol", "section" (bytes no symbol covers) or "padding".
    pub kind: &'static str,
    pub section: String,
    pub addr: u64,
    pub size: u64,
    pub pages: u64,
    pub dirty_pages: u64,
    pub dirty_bytes: u64,
    pub relocations: u64,
    pub relocation_types: BTreeMap<String, u64>,
    /// Runtime addresses of its dirty pages, and of the pages its relocations write.
    pub dirty_page_addrs: Vec<u64>,
    pub relocation_pages: Vec<u64>,
    pub verdict: String,
    /// Its byte ranges at run time (several for a group of unnamed objects; none for bytes
    /// given to their section), for the page map.
    #[serde(skip)]
    pub pieces: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageReport {
    pub path: String,
    /// What was read for sections, symbols and relocations (the path, the kept copy...).
    pub file: Option<String>,
    pub symbols_from: Option<String>,
    pub build_id: String,
    pub load_bias: u64,
    pub dirty_pages: u64,
    pub clean_pages: u64,
    pub absent_pages: u64,
    pub bss_pages: u64,
    pub relocations: u64,
    pub segments: Vec<SegmentReport>,
    pub sections: Vec<SectionReport>,
    pub symbols: Vec<SymbolReport>,
    pub warnings: Vec<String>,
    /// Every page of every PT_LOAD and what it is, by address (for the page map).
    #[serde(skip)]
    pub page_kinds: Vec<(u64, PageKind)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub pid: u32,
    pub exe: String,
    pub file: String,
    pub snapshot: SnapshotInfo,
    pub page_size: u64,
    pub images: Vec<ImageReport>,
}

/// What to analyse.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only images whose path contains this.
    pub image: Option<String>,
    /// Every sized symbol, not only those on dirty pages or holding relocations.
    pub all: bool,
}

pub fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        // Without the hash suffix ("::h0123...").
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(s) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = s.demangle() {
                return d;
            }
        }
    }
    name.to_string()
}

/// The report for one recorded process at one snapshot.
pub fn analyse(t: &Timeline<'_>, which: &Which, opts: &Options) -> Result<Report> {
    let snap = crate::snapshot::choose(t, which)?;
    let pm = PageMap::load(t, snap);
    let mut images = Vec::new();
    for im in t.images.iter().filter(|i| i.live_at(snap.ts)) {
        if im.is_vdso() || im.path.is_empty() {
            continue;
        }
        if let Some(f) = &opts.image {
            if !im.path.contains(f.as_str()) {
                continue;
            }
        }
        images.push(image_report(t, im, &pm, opts));
    }
    if let Some(f) = &opts.image {
        if images.is_empty() {
            return Err(Error::input(format!(
                "{}: no image matching '{f}' was loaded at snapshot '{}'",
                t.file.display(),
                snap.label
            )));
        }
    }
    let mut report = Report {
        pid: t.pid(),
        exe: t.process.exe.lossy().into_owned(),
        file: t.file.display().to_string(),
        snapshot: snap.clone(),
        page_size: pm.page,
        images,
    };
    if !pm.complete() {
        for im in &mut report.images {
            im.warnings.push(
                "the record file ends inside this snapshot: some mappings are missing".into(),
            );
        }
    }
    Ok(report)
}

/// The file to read for an image: the kept copy if the agent made one, else its path if the
/// file there is still the one that was loaded.
fn open_image(t: &Timeline<'_>, im: &ImageSpan, warnings: &mut Vec<String>) -> Option<ImageFile> {
    let bid = hex_decode(&im.build_id);
    let candidates = t
        .kept_file(im)
        .into_iter()
        .chain(std::iter::once(PathBuf::from(&im.path)));
    for p in candidates {
        let Ok(f) = ImageFile::open(&p) else { continue };
        match f.build_id() {
            Some(b) if !bid.is_empty() && b != bid => {
                warnings.push(format!(
                    "{} is not the file that was loaded (build-id differs); not used",
                    p.display()
                ));
                continue;
            }
            _ => return Some(f.with_debug(&bid)),
        }
    }
    warnings.push(format!(
        "cannot read {} (nor a kept copy): pages only, no symbols",
        im.path
    ));
    None
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Page kinds over an image's extent, sorted by address.
struct ImagePages {
    page: u64,
    pages: Vec<(u64, PageKind)>,
}

impl ImagePages {
    /// The pages overlapping [lo, hi).
    fn over(&self, lo: u64, hi: u64) -> &[(u64, PageKind)] {
        let a = lo & !(self.page - 1);
        let s = self.pages.partition_point(|p| p.0 < a);
        let e = self.pages.partition_point(|p| p.0 < hi);
        &self.pages[s..e.max(s)]
    }
}

fn is_dirty(k: PageKind) -> bool {
    matches!(k, PageKind::Cow | PageKind::Anon)
}

/// A PT_LOAD larger than this (1 TiB of 4 KiB pages) comes from a damaged record.
const MAX_SEGMENT_PAGES: u64 = 1 << 28;

fn image_report(t: &Timeline<'_>, im: &ImageSpan, pm: &PageMap, opts: &Options) -> ImageReport {
    let page = pm.page;
    let bias = im.load_bias;
    let mut warnings = Vec::new();
    // Pages of every PT_LOAD, from the recorded program headers (right even with no file).
    let mut pages: Vec<(u64, PageKind)> = Vec::new();
    let mut segments = Vec::new();
    for ph in im.phdrs.iter().filter(|p| p.p_type == 1 && p.memsz > 0) {
        let lo = bias.wrapping_add(ph.vaddr) & !(page - 1);
        let hi = bias
            .wrapping_add(ph.vaddr)
            .saturating_add(ph.memsz)
            .div_ceil(page)
            .saturating_mul(page);
        if hi <= lo || (hi - lo) / page > MAX_SEGMENT_PAGES {
            warnings.push(format!(
                "segment at {:#x} of {:#x} bytes is implausible: skipped",
                ph.vaddr, ph.memsz
            ));
            continue;
        }
        let states = pm.states(lo, hi);
        let mut counts = Counts::default();
        for (i, s) in states.into_iter().enumerate() {
            let addr = lo + i as u64 * page;
            let mut k = pm.classify(addr, s);
            // A page of another file mapped over the image's range is not the image's.
            if let Some(r) = pm.mapping(addr) {
                if r.is_file() && im.inode != 0 && r.ino != im.inode {
                    k = PageKind::Unknown;
                }
            }
            counts.add(k);
            pages.push((addr, k));
        }
        segments.push(SegmentReport {
            perms: format!(
                "{}{}{}",
                if ph.p_flags & 4 != 0 { 'r' } else { '-' },
                if ph.p_flags & 2 != 0 { 'w' } else { '-' },
                if ph.p_flags & 1 != 0 { 'x' } else { '-' }
            ),
            addr: lo,
            pages: (hi - lo) / page,
            counts,
        });
    }
    pages.sort_by_key(|p| p.0);
    pages.dedup_by_key(|p| p.0);
    let ip = ImagePages { page, pages };
    let mut total = Counts::default();
    for &(_, k) in &ip.pages {
        total.add(k);
    }
    let file = open_image(t, im, &mut warnings);
    let info = file.as_ref().and_then(|f| match f.info() {
        Ok(i) => Some(i),
        Err(e) => {
            warnings.push(format!("cannot parse {}: {e}", f.path.display()));
            None
        }
    });
    let (sections, symbols, relocations) = match &info {
        Some(info) => {
            let sections = section_reports(info, bias, &ip);
            let view = FileView {
                data: file.as_ref().map_or(&[][..], |f| f.bytes()),
                segments: &info.segments,
            };
            let symbols = symbol_reports(info, bias, &ip, opts, &view);
            (sections, symbols, info.relocs.len() as u64)
        }
        None => (Vec::new(), Vec::new(), 0),
    };
    ImageReport {
        path: im.path.clone(),
        file: file.as_ref().map(|f| f.path.display().to_string()),
        symbols_from: info.as_ref().map(|i| i.symbol_source.display().to_string()),
        build_id: im.build_id.clone(),
        load_bias: bias,
        dirty_pages: total.dirty,
        clean_pages: total.clean,
        absent_pages: total.absent,
        bss_pages: total.bss,
        relocations,
        segments,
        sections,
        symbols,
        warnings,
        page_kinds: ip.pages,
    }
}

fn section_reports(info: &ElfInfo, bias: u64, ip: &ImagePages) -> Vec<SectionReport> {
    info.sections
        .iter()
        .map(|s| {
            let (lo, hi) = (
                bias.wrapping_add(s.addr),
                bias.wrapping_add(s.addr + s.size),
            );
            let mut c = Counts::default();
            for &(_, k) in ip.over(lo, hi) {
                c.add(k);
            }
            SectionReport {
                name: s.name.clone(),
                addr: lo,
                size: s.size,
                pages: c.total(),
                dirty_pages: c.dirty,
                clean_pages: c.clean,
                absent_pages: c.absent,
                bss_pages: c.bss,
                relocations: relocs_in(&info.relocs, s.addr, s.addr + s.size).len() as u64,
            }
        })
        .collect()
}

fn relocs_in(relocs: &[Reloc], lo: u64, hi: u64) -> &[Reloc] {
    let s = relocs.partition_point(|r| r.addr < lo);
    let e = relocs.partition_point(|r| r.addr < hi);
    &relocs[s..e.max(s)]
}

fn section_of(sections: &[Section], addr: u64) -> Option<&Section> {
    let i = sections.partition_point(|s| s.addr <= addr);
    let s = sections.get(i.checked_sub(1)?)?;
    (addr < s.addr + s.size).then_some(s)
}

fn in_relro(info: &ElfInfo, addr: u64) -> bool {
    info.relro.is_some_and(|(v, m)| addr >= v && addr < v + m)
}

/// What to make of a stretch of bytes on an image's pages.
#[allow(clippy::too_many_arguments)]
fn verdict(
    info: &ElfInfo,
    section: &str,
    addr: u64,
    dirty: u64,
    pages: u64,
    absent: u64,
    relocs: &[Reloc],
    func: bool,
) -> String {
    let n = relocs.len();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if section.starts_with(".got") {
        return format!("GOT: {} resolved at load", plural(n, "address"));
    }
    if section == ".bss" || section == ".tbss" {
        return if dirty > 0 {
            "written at run time (.bss)".into()
        } else {
            "zero, not touched".into()
        };
    }
    if in_relro(info, addr) {
        return match (dirty > 0, n > 0) {
            (true, true) => format!(
                "const data dirtied by {}: it would stay shared if it held no pointers",
                plural(n, "relocation")
            ),
            (true, false) => {
                "const data without pointers, on a page that relocations of its neighbours dirtied"
                    .into()
            }
            (false, true) if absent == pages => {
                format!("{}, but its pages are not present", plural(n, "relocation"))
            }
            (false, true) => format!("{}, pages not copied", plural(n, "relocation")),
            (false, false) => "const data, clean".into(),
        };
    }
    let writable = section_of(&info.sections, addr).is_some_and(|s| s.writable);
    if writable {
        return match (dirty > 0, n > 0) {
            (true, true) => format!(
                "{} relocated at load (and writable at run time)",
                plural(n, "pointer")
            ),
            (true, false) => "written at run time".into(),
            (false, _) if absent == pages => "not touched".into(),
            (false, _) => "not written: still shared".into(),
        };
    }
    if func {
        return "code: read-only, shared".into();
    }
    if dirty > 0 {
        return "read-only data on a copied page (text relocations or mprotect?)".into();
    }
    "read-only, clean".into()
}

fn symbol_reports(
    info: &ElfInfo,
    bias: u64,
    ip: &ImagePages,
    opts: &Options,
    view: &FileView<'_>,
) -> Vec<SymbolReport> {
    // Only symbols inside the loaded segments (not TLS templates or discarded sections).
    let loaded = |a: u64| {
        info.segments
            .iter()
            .any(|s| a >= s.vaddr && a < s.vaddr + s.memsz)
    };
    let mut out = Vec::new();
    let mut covered: Vec<(u64, u64)> = Vec::new();
    for s in info.symbols.iter().filter(|s| loaded(s.addr)) {
        let piece = (s.addr, s.size);
        covered.push((s.addr, s.addr.saturating_add(s.size)));
        // Named after the report is known to be wanted: demangling is the expensive part.
        if let Some(r) = piece_report(
            info,
            bias,
            ip,
            opts,
            String::new(),
            "symbol",
            &[piece],
            s.func,
        ) {
            let name = demangle(&s.name);
            let mangled = (name != s.name).then(|| s.name.clone());
            out.push(SymbolReport { name, mangled, ..r });
        }
    }
    // Relocated data without a symbol, named after what it points to.
    let union = merge(&mut covered);
    let mut gaps = Vec::new();
    for sec in info.sections.iter().filter(|s| {
        s.writable
            && !s.name.starts_with(".got")
            && !matches!(
                s.name.as_str(),
                ".dynamic" | ".bss" | ".init_array" | ".fini_array" | ".relro_padding"
            )
    }) {
        gaps.extend(gaps_in(&union, sec.addr, sec.addr + sec.size));
    }
    for d in crate::derive::derive(info, view, &gaps) {
        covered.extend(d.pieces.iter().map(|&(a, l)| (a, a + l)));
        if let Some(r) = piece_report(info, bias, ip, opts, d.name, "derived", &d.pieces, false) {
            out.push(r);
        }
    }
    let union = merge(&mut covered);
    out.extend(unattributed(info, bias, ip, &union));
    // Padding between sections last: real, but nothing anyone can rename or fix.
    out.sort_by(|a, b| {
        (a.kind == "padding")
            .cmp(&(b.kind == "padding"))
            .then(b.dirty_bytes.cmp(&a.dirty_bytes))
            .then(b.relocations.cmp(&a.relocations))
            .then(a.addr.cmp(&b.addr))
    });
    out
}

/// The report for bytes `pieces` (file addresses, lengths) called `name`; None when it has
/// neither dirty pages nor relocations and `opts.all` is off.
#[allow(clippy::too_many_arguments)]
fn piece_report(
    info: &ElfInfo,
    bias: u64,
    ip: &ImagePages,
    opts: &Options,
    name: String,
    kind: &'static str,
    pieces: &[(u64, u64)],
    func: bool,
) -> Option<SymbolReport> {
    let page = ip.page;
    let mut pages: Vec<(u64, PageKind)> = Vec::new();
    let mut relocs: Vec<Reloc> = Vec::new();
    let mut dirty_bytes = 0;
    for &(a, len) in pieces {
        let (lo, hi) = (
            bias.wrapping_add(a),
            bias.wrapping_add(a).saturating_add(len),
        );
        for &(p, k) in ip.over(lo, hi) {
            if is_dirty(k) {
                dirty_bytes += overlap(lo, hi, p, p + page);
            }
            pages.push((p, k));
        }
        relocs.extend(
            relocs_in(&info.relocs, a, a.saturating_add(len))
                .iter()
                .cloned(),
        );
    }
    pages.sort_by_key(|p| p.0);
    pages.dedup_by_key(|p| p.0);
    let dirty: Vec<u64> = pages
        .iter()
        .filter(|p| is_dirty(p.1))
        .map(|p| p.0)
        .collect();
    if !opts.all && dirty.is_empty() && relocs.is_empty() {
        return None;
    }
    let first = pieces.first().map_or(0, |p| p.0);
    let size: u64 = pieces.iter().map(|p| p.1).sum();
    let absent = pages.iter().filter(|p| p.1 == PageKind::Absent).count() as u64;
    let section = section_of(&info.sections, first)
        .map_or("", |x| x.name.as_str())
        .to_string();
    let rpages = reloc_pages(&relocs, bias, page);
    let mut v = verdict(
        info,
        &section,
        first,
        dirty.len() as u64,
        pages.len() as u64,
        absent,
        &relocs,
        func,
    );
    // Dirty pages its own relocations do not explain: a neighbour's doing.
    let others = dirty.iter().filter(|p| !rpages.contains(p)).count();
    if others > 0 && !relocs.is_empty() {
        v.push_str(&format!(
            " ({others} more page{} dirty from its neighbours)",
            if others == 1 { "" } else { "s" }
        ));
    }
    if pieces.len() > 1 {
        v = format!("{} of them; {v}", pieces.len());
    }
    Some(SymbolReport {
        name,
        mangled: None,
        kind,
        section,
        addr: bias.wrapping_add(first),
        size,
        pages: pages.len() as u64,
        dirty_pages: dirty.len() as u64,
        dirty_bytes,
        relocations: relocs.len() as u64,
        relocation_types: by_type(&relocs),
        relocation_pages: rpages,
        dirty_page_addrs: dirty,
        verdict: v,
        pieces: pieces
            .iter()
            .map(|&(a, l)| (bias.wrapping_add(a), l))
            .collect(),
    })
}

/// Sorted, merged intervals.
fn merge(v: &mut [(u64, u64)]) -> Vec<(u64, u64)> {
    v.sort();
    let mut union: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in v.iter() {
        match union.last_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => union.push((s, e)),
        }
    }
    union
}

/// The parts of [lo, hi) that `union` does not cover.
fn gaps_in(union: &[(u64, u64)], lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = lo;
    let i = union.partition_point(|u| u.1 <= lo);
    for &(s, e) in &union[i..] {
        if s >= hi {
            break;
        }
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < hi {
        out.push((at, hi));
    }
    out
}

fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> u64 {
    a1.min(b1).saturating_sub(a0.max(b0))
}

fn by_type(relocs: &[Reloc]) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<RelKind, u64> = BTreeMap::new();
    for r in relocs {
        *m.entry(r.kind).or_default() += 1;
    }
    m.into_iter().map(|(k, v)| (k.name(), v)).collect()
}

fn reloc_pages(relocs: &[Reloc], bias: u64, page: u64) -> Vec<u64> {
    let mut v: Vec<u64> = relocs
        .iter()
        .map(|r| bias.wrapping_add(r.addr) & !(page - 1))
        .collect();
    v.dedup();
    v
}

/// Bytes of dirty pages that nothing named covers, per section (and between sections).
fn unattributed(
    info: &ElfInfo,
    bias: u64,
    ip: &ImagePages,
    union: &[(u64, u64)],
) -> Vec<SymbolReport> {
    let page = ip.page;
    let gaps = |lo: u64, hi: u64| gaps_in(union, lo, hi);
    // One entry per section, and one for bytes between sections, summing over dirty pages.
    let mut acc: BTreeMap<String, (u64, u64, Vec<u64>, Vec<Reloc>)> = BTreeMap::new();
    for &(p, k) in ip.pages.iter().filter(|p| is_dirty(p.1)) {
        let _ = k;
        let (flo, fhi) = (p.wrapping_sub(bias), p.wrapping_sub(bias) + page);
        for (s, e) in gaps(flo, fhi) {
            // Split the gap at section boundaries.
            let mut at = s;
            while at < e {
                let (name, end) = match section_of(&info.sections, at) {
                    Some(sec) => (sec.name.clone(), (sec.addr + sec.size).min(e)),
                    None => {
                        let next = info
                            .sections
                            .iter()
                            .map(|x| x.addr)
                            .filter(|&a| a > at)
                            .min()
                            .unwrap_or(e);
                        ("[padding]".to_string(), next.min(e))
                    }
                };
                let end = end.max(at + 1);
                let ent = acc
                    .entry(name)
                    .or_insert((u64::MAX, 0, Vec::new(), Vec::new()));
                ent.0 = ent.0.min(at);
                ent.1 += end - at;
                if ent.2.last() != Some(&p) {
                    ent.2.push(p);
                }
                ent.3
                    .extend(relocs_in(&info.relocs, at, end).iter().cloned());
                at = end;
            }
        }
    }
    acc.into_iter()
        .map(|(name, (first, bytes, pages, relocs))| {
            let padding = name == "[padding]";
            let label = if padding {
                name.clone()
            } else {
                format!("[{name}]")
            };
            let n = relocs.len();
            let v = if padding {
                "between sections, on a dirty page".to_string()
            } else if name.starts_with(".got") && n == 0 {
                "GOT: the loader's reserved entries".to_string()
            } else if name.starts_with(".got") {
                format!(
                    "GOT: {n} address{} resolved at load",
                    if n == 1 { "" } else { "es" }
                )
            } else if name == ".dynamic" {
                "the dynamic section (the loader writes its addresses)".to_string()
            } else if matches!(
                name.as_str(),
                ".init_array" | ".fini_array" | ".preinit_array"
            ) {
                format!(
                    "{n} constructor/destructor pointer{} relocated at load",
                    if n == 1 { "" } else { "s" }
                )
            } else if n > 0 {
                format!(
                    "unnamed data with {n} relocation{}",
                    if n == 1 { "" } else { "s" }
                )
            } else if in_relro(info, first) {
                "unnamed bytes without pointers, on pages their neighbours' relocations dirtied"
                    .to_string()
            } else {
                "unnamed data on a dirty page".to_string()
            };
            SymbolReport {
                name: label,
                mangled: None,
                kind: if padding { "padding" } else { "section" },
                section: if padding { String::new() } else { name },
                addr: bias.wrapping_add(first),
                size: bytes,
                pages: pages.len() as u64,
                dirty_pages: pages.len() as u64,
                dirty_bytes: bytes,
                relocations: n as u64,
                relocation_types: by_type(&relocs),
                relocation_pages: reloc_pages(&relocs, bias, page),
                dirty_page_addrs: pages,
                verdict: v,
                pieces: Vec::new(),
            }
        })
        .collect()
}
