//! `mapagent maps`: the address space at a moment, as pmap would have shown it.

use crate::error::Result;
use crate::select::{self, Loaded};
use crate::text::{self, At};
use crate::timeline::Timeline;
use mapagent_record::region::Region;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize, Debug, Clone)]
pub struct Mapping {
    pub pid: u32,
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub perms: String,
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    /// The name the kernel prints in maps (empty for anonymous memory).
    pub path: String,
    /// What mapagent knows the region to be where the kernel prints no name: the agent's own
    /// allocator ([anon:mapagent]); None otherwise.
    pub label: Option<String>,
    pub build_id: Option<String>,
    /// Which record established it: mmap, shmat, baseline, reconcile.
    pub source: Option<String>,
    pub source_ts: Option<u64>,
    /// Set when the moment asked for lies inside the window of a change a reconcile found
    /// over this range (since..until): whether the change had happened yet is not known.
    pub uncertain: Option<crate::timeline::Window>,
    /// Not in the model at this moment, but a reconcile later found it with a window that
    /// holds the moment: it may already have existed (with `--pending` only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// The mappings of one process at `at`.
pub fn mappings(t: &Timeline<'_>, at: At) -> Vec<Mapping> {
    let when = at.resolve(t.process.start_mono_ns);
    let space = t.space_at(when);
    let moment = when.unwrap_or(u64::MAX);
    space.space.iter().map(|r| mapping(t, r, moment)).collect()
}

fn mapping(t: &Timeline<'_>, r: &Region, moment: u64) -> Mapping {
    let src = t.source(r.src);
    Mapping {
        pid: t.pid(),
        start: r.start,
        end: r.end,
        size: r.len(),
        perms: r.perms(),
        offset: r.offset,
        dev: format!("{:02x}:{:02x}", r.dev_major, r.dev_minor),
        inode: r.ino,
        path: String::from_utf8_lossy(&r.name).into_owned(),
        label: (r.name.is_empty() && r.start == t.process.agent_heap_start && r.start != 0)
            .then(|| "[anon:mapagent]".to_string()),
        build_id: t
            .image_for(r, moment)
            .map(|im| im.build_id.clone())
            .filter(|b| !b.is_empty()),
        source: src.map(|s| s.kind.to_string()),
        source_ts: src.map(|s| s.ts),
        uncertain: t.uncertain(r.start, r.end, moment),
        pending: false,
    }
}

/// The regions that may already have existed at `at` (see Timeline::pending_at).
pub fn pending(t: &Timeline<'_>, at: At) -> Vec<Mapping> {
    let Some(moment) = at.resolve(t.process.start_mono_ns) else {
        return Vec::new();
    };
    t.pending_at(moment)
        .into_iter()
        .map(|(w, r)| Mapping {
            source: Some("reconcile".into()),
            source_ts: Some(w.until),
            uncertain: Some(w),
            pending: true,
            ..mapping(t, r, moment)
        })
        .collect()
}

pub fn run(path: &Path, pid: Option<u32>, at: At, json: bool) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, pid, at)?;
    if json {
        let v: Vec<Mapping> = chosen
            .iter()
            .flat_map(|t| {
                let mut m = mappings(t, at);
                m.extend(pending(t, at));
                m
            })
            .collect();
        super::json_out(&v)?;
        return Ok(super::exit_code(truncated));
    }
    for (i, t) in chosen.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let start = t.process.start_mono_ns;
        let when = match at.resolve(start) {
            Some(x) => format!("at {x} ({})", text::rel(x, start)),
            None => format!("at end ({}, {})", text::rel(t.end_ts(), start), t.ending()),
        };
        println!(
            "== pid {} {} {} [{}]",
            t.pid(),
            t.process.exe,
            when,
            t.file.display()
        );
        println!("{}", t.kernel.describe());
        let maps = mappings(t, at);
        let mut rows = vec![vec![
            "Address".to_string(),
            "Kbytes".into(),
            "Perm".into(),
            "Offset".into(),
            "Device".into(),
            "Inode".into(),
            "Source".into(),
            "Label".into(),
            "Mapping".into(),
        ]];
        let mut total = 0;
        let mut unsure = 0;
        for m in &maps {
            total += m.size;
            let mut name = m.path.clone();
            if let Some(w) = m.uncertain {
                unsure += 1;
                name.push_str(&format!(
                    "  ? changed between {} and {}",
                    text::rel(w.since, start),
                    text::rel(w.until, start)
                ));
            }
            if let Some(b) = &m.build_id {
                name.push_str(&format!("  (build-id {b})"));
            }
            rows.push(vec![
                format!("{:016x}", m.start),
                text::kib(m.size).to_string(),
                m.perms.clone(),
                format!("{:08x}", m.offset),
                m.dev.clone(),
                m.inode.to_string(),
                m.source.clone().unwrap_or_default(),
                m.label.clone().unwrap_or_default(),
                name,
            ]);
        }
        print!("{}", text::table(&rows));
        println!("{} mappings, {}K total", maps.len(), text::kib(total));
        let later = pending(t, at);
        if unsure > 0 || !later.is_empty() {
            println!(
                "? {unsure} mappings changed at a moment only a reconcile window bounds (no hook or kernel report saw the call)"
            );
        }
        for m in &later {
            if let Some(w) = m.uncertain {
                println!(
                    "? maybe already mapped: {:016x}-{:016x} {} {}  (found between {} and {})",
                    m.start,
                    m.end,
                    m.perms,
                    m.path,
                    text::rel(w.since, start),
                    text::rel(w.until, start)
                );
            }
        }
    }
    Ok(super::exit_code(truncated))
}
