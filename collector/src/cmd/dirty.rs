//! `mapagent dirty`: per image, its private dirty pages by segment, section and symbol, with
//! the relocations that dirtied them.

use crate::dirty::{self, ImageReport, Options, Report, SymbolReport};
use crate::error::Result;
use crate::select::{self, Loaded};
use crate::snapshot::Which;
use crate::text::At;
use std::fmt::Write as _;
use std::path::Path;

pub struct Args {
    pub pid: Option<u32>,
    pub snapshot: Which,
    pub image: Option<String>,
    pub json: bool,
    pub all: bool,
    pub top: usize,
}

/// The reports for every chosen process (processes without the snapshot are skipped with a
/// warning when several were recorded).
pub fn reports(path: &Path, a: &Args) -> Result<(Vec<Report>, bool)> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, a.pid, At::End)?;
    let opts = Options {
        image: a.image.clone(),
        all: a.all,
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for t in &chosen {
        match dirty::analyse(t, &a.snapshot, &opts) {
            Ok(r) => out.push(r),
            Err(e) if chosen.len() > 1 => skipped.push((t.pid(), e)),
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        let (_, first) = skipped.remove(0);
        for (pid, e) in &skipped {
            eprintln!("mapagent: pid {pid}: {e}");
        }
        return Err(first);
    }
    // A process that had no such image (a shell or a launcher before exec) is not an error
    // when another process answered.
    for (pid, e) in &skipped {
        eprintln!("mapagent: note: pid {pid} skipped: {e}");
    }
    Ok((out, truncated))
}

pub fn run(path: &Path, a: &Args) -> Result<i32> {
    let (reports, truncated) = reports(path, a)?;
    if a.json {
        // One process: its images; several: one object per process.
        if reports.len() == 1 {
            super::json_out(&reports[0].images)?;
        } else {
            super::json_out(&reports)?;
        }
    } else {
        let mut s = String::new();
        for r in &reports {
            text(&mut s, r, a);
        }
        print!("{s}");
    }
    Ok(super::exit_code(truncated))
}

fn kib(pages: u64, page: u64) -> String {
    let b = pages * page;
    if b >= 10 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

pub fn text(s: &mut String, r: &Report, a: &Args) {
    let snap = &r.snapshot;
    let _ = writeln!(
        s,
        "== pid {} {}, snapshot '{}' ({}) [{}]",
        r.pid,
        r.exe,
        snap.label,
        snap.trigger_name(),
        r.file
    );
    let mut images: Vec<&ImageReport> = r.images.iter().collect();
    images.sort_by(|x, y| y.dirty_pages.cmp(&x.dirty_pages).then(x.path.cmp(&y.path)));
    for im in images {
        image_text(s, im, r.page_size, a);
    }
}

fn image_text(s: &mut String, im: &ImageReport, page: u64, a: &Args) {
    let _ = writeln!(
        s,
        "\n{}  (build-id {}, bias {:#x})",
        im.path,
        if im.build_id.is_empty() {
            "none"
        } else {
            &im.build_id
        },
        im.load_bias
    );
    let _ = writeln!(
        s,
        "  private dirty (copied on write): {} pages ({}); clean {}, not present {}; .bss touched {}",
        im.dirty_pages,
        kib(im.dirty_pages, page),
        im.clean_pages,
        im.absent_pages,
        im.bss_pages
    );
    if let Some(f) = &im.file {
        if f != &im.path {
            let _ = writeln!(s, "  read from {f}");
        }
    }
    if let Some(src) = &im.symbols_from {
        if Some(src) != im.file.as_ref() {
            let _ = writeln!(s, "  symbols from {src}");
        }
    }
    for w in &im.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    let _ = writeln!(
        s,
        "  {:<6} {:<18} {:>7} {:>6} {:>6} {:>7} {:>5}",
        "Seg", "Address", "Pages", "Dirty", "Clean", "Absent", "Bss"
    );
    for g in &im.segments {
        let c = &g.counts;
        let _ = writeln!(
            s,
            "  {:<6} {:018x} {:>7} {:>6} {:>6} {:>7} {:>5}",
            g.perms, g.addr, g.pages, c.dirty, c.clean, c.absent, c.bss
        );
    }
    let secs: Vec<_> = im
        .sections
        .iter()
        .filter(|x| a.all || x.dirty_pages > 0 || x.bss_pages > 0 || x.relocations > 0)
        .collect();
    if !secs.is_empty() {
        let _ = writeln!(
            s,
            "  {:<22} {:>7} {:>6} {:>6} {:>7} {:>5} {:>7}",
            "Section", "Pages", "Dirty", "Clean", "Absent", "Bss", "Relocs"
        );
        for x in secs {
            let _ = writeln!(
                s,
                "  {:<22} {:>7} {:>6} {:>6} {:>7} {:>5} {:>7}",
                x.name,
                x.pages,
                x.dirty_pages,
                x.clean_pages,
                x.absent_pages,
                x.bss_pages,
                x.relocations
            );
        }
    }
    let syms: Vec<&SymbolReport> = im
        .symbols
        .iter()
        .filter(|x| a.all || x.dirty_pages > 0)
        .collect();
    if syms.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "  {:>11} {:>5} {:>7} {:>10} {:<22} {:<16} Symbol: verdict",
        "Dirty bytes", "Dirty", "Pages", "Size", "Relocations", "Section"
    );
    let limit = if a.all { usize::MAX } else { a.top };
    for x in syms.iter().take(limit) {
        let rel: Vec<String> = x
            .relocation_types
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let rel = if rel.is_empty() {
            "-".to_string()
        } else {
            rel.join(",")
        };
        let _ = writeln!(
            s,
            "  {:>11} {:>5} {:>7} {:>10} {:<22} {:<16} {}: {}",
            x.dirty_bytes, x.dirty_pages, x.pages, x.size, rel, x.section, x.name, x.verdict
        );
    }
    if syms.len() > limit {
        let _ = writeln!(s, "  ... {} more (--top N, or --all)", syms.len() - limit);
    }
}
