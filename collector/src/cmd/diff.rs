//! `mapagent diff A B`: private dirty pages per image and per symbol, before and after.

use crate::cmd::dirty::{self as dirty_cmd, Args as DirtyArgs};
use crate::diff::{self, Diff};
use crate::error::{Error, Result};
use crate::snapshot::Which;
use std::fmt::Write as _;
use std::path::Path;

pub struct Args {
    pub snapshot: Which,
    pub image: Option<String>,
    pub json: bool,
    /// Symbols listed per image.
    pub top: usize,
    /// Unchanged images too.
    pub all: bool,
}

pub fn run(before: &Path, after: &Path, a: &Args) -> Result<i32> {
    let da = DirtyArgs {
        pid: None,
        snapshot: a.snapshot.clone(),
        image: a.image.clone(),
        json: false,
        all: false,
        top: 0,
    };
    let (ra, ta) = dirty_cmd::reports(before, &da)?;
    let (rb, tb) = dirty_cmd::reports(after, &da)?;
    let (pairs, left, right) = diff::pair(&ra, &rb);
    for r in &left {
        eprintln!(
            "mapagent: note: pid {} ({}) in {} has no counterpart in {}",
            r.pid,
            r.exe,
            before.display(),
            after.display()
        );
    }
    for r in &right {
        eprintln!(
            "mapagent: note: pid {} ({}) in {} has no counterpart in {}",
            r.pid,
            r.exe,
            after.display(),
            before.display()
        );
    }
    if pairs.is_empty() {
        return Err(Error::input(format!(
            "no process of {} runs the same executable as one of {}",
            before.display(),
            after.display()
        )));
    }
    let diffs: Vec<Diff> = pairs.iter().map(|(x, y)| diff::diff(x, y)).collect();
    if a.json {
        if diffs.len() == 1 {
            super::json_out(&diffs[0])?;
        } else {
            super::json_out(&diffs)?;
        }
    } else {
        let mut s = String::new();
        for d in &diffs {
            text(&mut s, d, a);
        }
        print!("{s}");
    }
    Ok(super::exit_code(ta || tb))
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn bytes(pages: i64, page: u64) -> String {
    let b = pages * page as i64;
    if b.unsigned_abs() >= 10 << 20 {
        format!("{} MiB", signed(b / (1 << 20)))
    } else {
        format!("{} KiB", signed(b / 1024))
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or("-".into(), |n| n.to_string())
}

pub fn text(s: &mut String, d: &Diff, a: &Args) {
    let _ = writeln!(
        s,
        "== {}: pid {} -> pid {}: private dirty {} -> {} pages ({}, {})",
        d.exe,
        d.before_pid,
        d.after_pid,
        d.before_pages,
        d.after_pages,
        signed(d.delta_pages),
        bytes(d.delta_pages, d.page_size)
    );
    let mut unchanged = 0;
    for im in &d.images {
        if im.delta_pages == 0 && im.symbols.is_empty() && !a.all {
            unchanged += 1;
            continue;
        }
        let _ = writeln!(
            s,
            "\n{}  {} -> {} pages ({}, {})",
            im.image,
            opt(im.before),
            opt(im.after),
            signed(im.delta_pages),
            bytes(im.delta_pages, d.page_size)
        );
        if im.symbols.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "  {:>12} {:>22} {:>12}  {:<16} Symbol",
            "Dirty pages", "Dirty bytes", "Relocations", "Section"
        );
        // Not reported on a side means nothing dirty and no relocation there.
        let show = |c: Option<crate::diff::SymbolCounts>,
                    f: fn(&crate::diff::SymbolCounts) -> u64| {
            c.as_ref().map_or(0, f).to_string()
        };
        let limit = if a.all { usize::MAX } else { a.top };
        for x in im.symbols.iter().take(limit) {
            let _ = writeln!(
                s,
                "  {:>12} {:>22} {:>12}  {:<16} {}",
                format!(
                    "{} -> {}",
                    show(x.before, |c| c.dirty_pages),
                    show(x.after, |c| c.dirty_pages)
                ),
                format!(
                    "{} -> {} ({})",
                    show(x.before, |c| c.dirty_bytes),
                    show(x.after, |c| c.dirty_bytes),
                    signed(x.delta_bytes)
                ),
                format!(
                    "{} -> {}",
                    show(x.before, |c| c.relocations),
                    show(x.after, |c| c.relocations)
                ),
                x.section,
                x.name
            );
        }
        if im.symbols.len() > limit {
            let _ = writeln!(
                s,
                "  ... {} more (--top N, or --all)",
                im.symbols.len() - limit
            );
        }
    }
    if unchanged > 0 {
        let _ = writeln!(
            s,
            "\n{unchanged} more images unchanged (--all to list them)"
        );
    }
    let _ = writeln!(
        s,
        "\nTotal: {} -> {} private dirty pages ({}, {})",
        d.before_pages,
        d.after_pages,
        signed(d.delta_pages),
        bytes(d.delta_pages, d.page_size)
    );
}
