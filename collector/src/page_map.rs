//! The page map: every page of every segment of an image as one cell of an SVG grid,
//! coloured by state, with the symbols on it in the cell's tooltip. One self-contained HTML
//! file (no script, no external resource), so it can be attached to a bug or a CI run.

use crate::dirty::{ImageReport, Report};
use crate::snapshot::PageKind;
use crate::text::xml_escape as esc;
use std::fmt::Write as _;

/// Cells per row, cell size and gap (CSS pixels).
const COLS: u64 = 64;
const CELL: u64 = 10;
const STEP: u64 = 11;
/// Names listed per cell before "... N more".
const NAMES: usize = 8;

pub fn kind_class(k: PageKind) -> &'static str {
    match k {
        PageKind::Cow => "d",
        PageKind::Clean => "c",
        PageKind::Absent => "a",
        PageKind::Anon => "b",
        PageKind::Unknown => "u",
    }
}

fn kind_text(k: PageKind) -> &'static str {
    match k {
        PageKind::Cow => "dirty: copied on write",
        PageKind::Clean => "clean: shared with the page cache",
        PageKind::Absent => "not present",
        PageKind::Anon => "dirty: touched .bss (anonymous)",
        PageKind::Unknown => "unknown (not this image's, or unreadable)",
    }
}

/// Colours: dirty red, clean green, absent light grey, .bss orange, unknown dark grey.
const STYLE: &str = "body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}\
h1{font-size:18px}h2{font-size:15px;margin:18px 0 4px}h3{font-size:13px;margin:10px 0 4px;font-weight:600}\
.d{fill:#d62728}.c{fill:#2ca02c}.a{fill:#dddddd}.b{fill:#ff7f0e}.u{fill:#555555}\
rect:hover{stroke:#000;stroke-width:1.5}\
.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:-1px}\
code{font-size:12px}";

/// Symbol indices per page (all of them counted, the first NAMES kept), by page index.
fn names_per_page(im: &ImageReport, page: u64) -> Vec<(Vec<usize>, usize)> {
    let pk = &im.page_kinds;
    let mut out = vec![(Vec::new(), 0usize); pk.len()];
    for (si, s) in im.symbols.iter().enumerate() {
        for &(a, len) in &s.pieces {
            let first = pk.partition_point(|p| p.0 + page <= a);
            let end = a.saturating_add(len.max(1));
            for (i, p) in pk.iter().enumerate().skip(first) {
                if p.0 >= end {
                    break;
                }
                let e = &mut out[i];
                if e.0.last() != Some(&si) {
                    if e.0.len() < NAMES {
                        e.0.push(si);
                    }
                    e.1 += 1;
                }
            }
        }
    }
    out
}

/// The sections overlapping a page, as "a, b".
fn sections_on(im: &ImageReport, lo: u64, hi: u64) -> String {
    let v: Vec<&str> = im
        .sections
        .iter()
        .filter(|s| s.size > 0 && s.addr < hi && s.addr + s.size > lo)
        .map(|s| s.name.as_str())
        .collect();
    v.join(", ")
}

pub fn render(report: &Report, title: &str) -> String {
    let page = report.page_size;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    let _ = write!(
        h,
        "<h1>Page map: pid {} {}</h1><p>snapshot '{}' ({}), {} KiB pages. Hover a cell for its address, state, sections and symbols.</p>",
        report.pid,
        esc(&report.exe),
        esc(&report.snapshot.label),
        report.snapshot.trigger_name(),
        page / 1024
    );
    h.push_str("<p class=\"key\"><span class=\"d\" style=\"background:#d62728\"></span>dirty (copied on write)<span style=\"background:#2ca02c\"></span>clean<span style=\"background:#dddddd\"></span>not present<span style=\"background:#ff7f0e\"></span>.bss touched<span style=\"background:#555555\"></span>unknown</p>");
    for im in &report.images {
        image(&mut h, im, page);
    }
    h.push_str("</body></html>\n");
    h
}

fn image(h: &mut String, im: &ImageReport, page: u64) {
    let _ = write!(
        h,
        "<h2><code>{}</code></h2><p>build-id {}, bias {:#x}: {} dirty, {} clean, {} not present, {} .bss touched</p>",
        esc(&im.path),
        if im.build_id.is_empty() { "none" } else { &im.build_id },
        im.load_bias,
        im.dirty_pages,
        im.clean_pages,
        im.absent_pages,
        im.bss_pages
    );
    let names = names_per_page(im, page);
    for seg in &im.segments {
        let c = &seg.counts;
        let _ = write!(
            h,
            "<h3>{} segment at {:#x}: {} page{} ({} dirty, {} clean, {} not present, {} .bss)</h3>",
            seg.perms,
            seg.addr,
            seg.pages,
            if seg.pages == 1 { "" } else { "s" },
            c.dirty,
            c.clean,
            c.absent,
            c.bss
        );
        let rows = seg.pages.div_ceil(COLS).max(1);
        let _ = write!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">",
            COLS * STEP,
            rows * STEP
        );
        let first = im.page_kinds.partition_point(|p| p.0 < seg.addr);
        for n in 0..seg.pages {
            let addr = seg.addr + n * page;
            let Some(i) = im
                .page_kinds
                .get(first + n as usize)
                .filter(|p| p.0 == addr)
                .map(|_| first + n as usize)
            else {
                continue;
            };
            let k = im.page_kinds[i].1;
            let (x, y) = ((n % COLS) * STEP, (n / COLS) * STEP);
            let mut tip = format!("{addr:#x}: {}", kind_text(k));
            let secs = sections_on(im, addr, addr + page);
            if !secs.is_empty() {
                let _ = write!(tip, "\n{secs}");
            }
            let (syms, total) = &names[i];
            for &si in syms {
                let s = &im.symbols[si];
                let _ = write!(tip, "\n  {}", s.name);
                if s.relocations > 0 {
                    let _ = write!(tip, " ({} relocations)", s.relocations);
                }
            }
            if *total > syms.len() {
                let _ = write!(tip, "\n  ... {} more", total - syms.len());
            }
            let _ = write!(
                h,
                "<rect class=\"{}\" x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\"><title>{}</title></rect>",
                kind_class(k),
                esc(&tip)
            );
        }
        h.push_str("</svg>");
    }
}
