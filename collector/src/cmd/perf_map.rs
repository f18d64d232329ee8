//! `mapagent perf-map`: /tmp/perf-PID.map files (`START SIZE name`, hex) naming code perf sees
//! as anonymous: ELF images an application copied into anonymous executable memory (the agent
//! kept them), and memfd images when `inject --memfd-as-anon` renamed their mappings //anon
//! (perf consults perf-PID.map only for anonymous executable maps).

use crate::error::{Error, Result};
use crate::select::{self, Loaded};
use crate::text::At;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::path::{Path, PathBuf};

/// Function symbols of an ELF file as (file offset, size, name), or as (address - base) when
/// `by_vaddr` (an image the loader laid out).
fn functions(data: &[u8], by_vaddr: bool) -> std::result::Result<Vec<(u64, u64, String)>, String> {
    let f = object::File::parse(data).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in f.symbols().chain(f.dynamic_symbols()) {
        if s.kind() != SymbolKind::Text || s.size() == 0 {
            continue;
        }
        let Ok(name) = s.name() else { continue };
        let where_ = if by_vaddr {
            Some(s.address())
        } else {
            s.section_index()
                .and_then(|i| f.section_by_index(i).ok())
                .and_then(|sec| {
                    let (off, _) = sec.file_range()?;
                    Some(s.address() - sec.address() + off)
                })
        };
        if let Some(w) = where_ {
            out.push((w, s.size(), name.to_string()));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

pub fn run(path: &Path, pid: Option<u32>, dir: &Path) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, pid, At::End)?;
    std::fs::create_dir_all(dir).map_err(|e| crate::error::io(dir, e))?;
    let mut written = 0;
    for t in chosen {
        let mut lines: Vec<(u64, u64, String)> = Vec::new();
        let mut add = |file: PathBuf, base: u64, by_vaddr: bool| -> Result<()> {
            let data = std::fs::read(&file).map_err(|e| crate::error::io(&file, e))?;
            let syms = functions(&data, by_vaddr)
                .map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
            lines.extend(
                syms.into_iter()
                    .map(|(o, s, n)| (base.wrapping_add(o), s, n)),
            );
            Ok(())
        };
        for (addr, rel) in &t.anon_elf {
            add(t.beside(rel), *addr, false)?;
        }
        for im in t.images.iter().filter(|i| i.path.starts_with("/memfd:")) {
            if let Some(f) = t.kept_file(im) {
                add(f, im.load_bias, true)?;
            }
        }
        if lines.is_empty() {
            continue;
        }
        lines.sort();
        let out = dir.join(format!("perf-{}.map", t.pid()));
        let text: String = lines
            .iter()
            .map(|(a, s, n)| format!("{a:x} {s:x} {n}\n"))
            .collect();
        crate::output::write(&out, &[path], text.as_bytes())?;
        eprintln!("mapagent: {}: {} symbols", out.display(), lines.len());
        written += 1;
    }
    if written == 0 {
        eprintln!("mapagent: no anonymous code to name (no ELF image in anonymous memory, no memfd image kept)");
    }
    Ok(super::exit_code(truncated))
}
