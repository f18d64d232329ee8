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
    pub path: String,
    pub build_id: Option<String>,
    /// Which record established it: mmap, shmat, baseline, reconcile.
    pub source: Option<String>,
    pub source_ts: Option<u64>,
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
        path: if r.name.is_empty() && r.start == t.process.agent_heap_start && r.start != 0 {
            "[anon:mapagent]".to_string()
        } else {
            r.display_name()
        },
        build_id: t
            .image_for(r, moment)
            .map(|im| im.build_id.clone())
            .filter(|b| !b.is_empty()),
        source: src.map(|s| s.kind.to_string()),
        source_ts: src.map(|s| s.ts),
    }
}

pub fn run(path: &Path, pid: Option<u32>, at: At, json: bool) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&all, pid, at)?;
    if json {
        let v: Vec<Mapping> = chosen.iter().flat_map(|t| mappings(t, at)).collect();
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
        let maps = mappings(t, at);
        let mut rows = vec![vec![
            "Address".to_string(),
            "Kbytes".into(),
            "Perm".into(),
            "Offset".into(),
            "Device".into(),
            "Inode".into(),
            "Source".into(),
            "Mapping".into(),
        ]];
        let mut total = 0;
        for m in &maps {
            total += m.size;
            let mut name = m.path.clone();
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
                name,
            ]);
        }
        print!("{}", text::table(&rows));
        println!("{} mappings, {}K total", maps.len(), text::kib(total));
    }
    Ok(super::exit_code(truncated))
}
