//! `mapagent images`: every image the process loaded, where, and when.

use crate::error::Result;
use crate::select::{self, Loaded};
use crate::text::{self, At};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    flags: String,
}

#[derive(Serialize)]
struct ImageJson<'a> {
    pid: u32,
    #[serde(flatten)]
    image: &'a crate::timeline::ImageSpan,
    segments: Vec<Segment>,
}

fn pflags(f: u32) -> String {
    format!(
        "{}{}{}",
        if f & 4 != 0 { 'r' } else { '-' },
        if f & 2 != 0 { 'w' } else { '-' },
        if f & 1 != 0 { 'x' } else { '-' }
    )
}

pub fn run(path: &Path, pid: Option<u32>, json: bool) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, pid, At::End)?;
    if json {
        let mut v = Vec::new();
        for t in &chosen {
            for im in &t.images {
                let segments = im
                    .phdrs
                    .iter()
                    .filter(|p| p.p_type == 1)
                    .map(|p| Segment {
                        vaddr: p.vaddr,
                        memsz: p.memsz,
                        offset: p.offset,
                        filesz: p.filesz,
                        flags: pflags(p.p_flags),
                    })
                    .collect();
                v.push(ImageJson {
                    pid: t.pid(),
                    image: im,
                    segments,
                });
            }
        }
        super::json_out(&v)?;
        return Ok(super::exit_code(truncated));
    }
    for (i, t) in chosen.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let start = t.process.start_mono_ns;
        println!(
            "== pid {} {} [{}]",
            t.pid(),
            t.process.exe,
            t.file.display()
        );
        println!("{}", t.kernel.describe());
        let mut rows = vec![vec![
            "Load bias".to_string(),
            "Loaded".into(),
            "Unloaded".into(),
            "Cause".into(),
            "Build-id".into(),
            "Path".into(),
        ]];
        for im in &t.images {
            rows.push(vec![
                format!("{:016x}", im.load_bias),
                text::rel(im.loaded_ns, start),
                im.unloaded_ns
                    .map(|u| text::rel(u, start))
                    .unwrap_or_else(|| "-".into()),
                im.cause.to_string(),
                if im.build_id.is_empty() {
                    "-".into()
                } else {
                    im.build_id.clone()
                },
                im.path.clone(),
            ]);
        }
        print!("{}", text::table(&rows));
    }
    Ok(super::exit_code(truncated))
}
