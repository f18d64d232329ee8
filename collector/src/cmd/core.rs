//! `mapagent core CORE [--exe EXE] [--record DIR] [--json]`: the address space from an ELF core,
//! with [heap], [stack] and [vdso] named, modules with their load bias and build-id, and the
//! sections inside each image mapping; `--extract ADDR|NAME -o FILE` writes a mapping's bytes.

use crate::core::{Core, Module, AT_ENTRY, AT_SYSINFO_EHDR};
use crate::elfimage::ImageFile;
use crate::error::{Error, Result};
use crate::input::Data;
use crate::text::At;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct Args {
    pub exe: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub json: bool,
    pub extract: Option<String>,
    pub output: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CoreMapping {
    pub start: u64,
    pub end: u64,
    pub size: u64,
    /// "r-x" from the segment flags ("???" when the core has only a file note for it).
    pub perms: String,
    /// File offset, for file mappings.
    pub offset: Option<u64>,
    /// The file, or [heap], [stack], [stack:TID], [vdso], [anon].
    pub path: String,
    /// Whether any of its bytes are in the core, and how many.
    pub dumped: bool,
    pub dumped_bytes: u64,
    pub memfd: bool,
    pub sysv: bool,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_bias: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Sections of the image inside this mapping.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<String>,
    /// From the agent's records (--record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Other mappings of the same file (a memfd mapped twice).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_copy: Option<String>,
}

impl CoreMapping {
    /// A mapping as the core has it; images, flags and record facts are added later.
    fn new(
        start: u64,
        end: u64,
        perms: String,
        offset: Option<u64>,
        path: String,
        dumped: u64,
    ) -> Self {
        let mut m = CoreMapping {
            start,
            end,
            size: end.saturating_sub(start),
            perms,
            offset,
            path: String::new(),
            dumped: dumped > 0,
            dumped_bytes: dumped,
            memfd: false,
            sysv: false,
            deleted: false,
            load_bias: None,
            build_id: None,
            sections: Vec::new(),
            inode: None,
            dev: None,
            aliases: Vec::new(),
            kept_copy: None,
        };
        m.set_path(path);
        m
    }

    /// Names it, with the flags its name implies.
    fn set_path(&mut self, path: String) {
        self.memfd = path.starts_with("/memfd:");
        self.sysv = path.starts_with("/SYSV");
        self.deleted = path.ends_with(" (deleted)");
        self.path = path;
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn perms(flags: u32) -> String {
    format!(
        "{}{}{}",
        if flags & 4 != 0 { 'r' } else { '-' },
        if flags & 2 != 0 { 'w' } else { '-' },
        if flags & 1 != 0 { 'x' } else { '-' }
    )
}

/// Every mapping of the core, named.
pub fn mappings(core: &Core<'_>, modules: &[Module], exe: Option<&Path>) -> Vec<CoreMapping> {
    let mut out: Vec<CoreMapping> = Vec::new();
    for l in &core.loads {
        let f = core.file_at(l.vaddr);
        let dumped = core.bytes(l).len() as u64;
        out.push(CoreMapping::new(
            l.vaddr,
            l.vaddr.saturating_add(l.memsz),
            perms(l.flags),
            f.map(|f| f.offset.saturating_add(l.vaddr - f.start)),
            f.map_or(String::new(), |f| f.name.clone()),
            dumped,
        ));
    }
    // File mappings the core has no segment for (a dumper that skipped them).
    for f in &core.files {
        if !out.iter().any(|m| m.start < f.end && f.start < m.end) {
            out.push(CoreMapping::new(
                f.start,
                f.end,
                "???".into(),
                Some(f.offset),
                f.name.clone(),
                0,
            ));
        }
    }
    out.sort_by_key(|m| m.start);

    // Images: every mapping of the file that holds a module's dynamic section.
    let vdso = core.aux(AT_SYSINFO_EHDR);
    // The main program as the core names it (its file note entry): --exe only stands in for
    // the file itself when that is gone (see add_sections).
    let mut exe_file: Option<String> = None;
    for (i, m) in modules.iter().enumerate() {
        let bid = m.build_id.as_deref().map(hex);
        if m.start.is_some() && m.start == vdso {
            for x in out
                .iter_mut()
                .filter(|x| vdso.is_some_and(|v| v >= x.start && v < x.end))
            {
                x.path = "[vdso]".into();
                x.load_bias = Some(m.load_bias);
                x.build_id = bid.clone();
            }
            continue;
        }
        let Some(file) = core.file_at(m.dynamic).map(|f| f.name.clone()) else {
            continue;
        };
        if i == 0 && exe_file.is_none() {
            exe_file = Some(file.clone());
        }
        for x in out.iter_mut().filter(|x| x.path == file) {
            x.load_bias = Some(m.load_bias);
            x.build_id = bid.clone();
        }
    }
    if exe_file.is_none() {
        exe_file = core
            .aux(AT_ENTRY)
            .and_then(|a| core.file_at(a))
            .map(|f| f.name.clone());
    }
    // Stacks: the mappings the threads' stack pointers are in. The main thread's tid is the
    // pid (the first thread listed is the one that faulted, not necessarily the main one).
    let main_tid = core
        .pid
        .or_else(|| core.threads.iter().map(|t| t.tid).min());
    for t in &core.threads {
        let Some(sp) = t.sp else { continue };
        if let Some(x) = out
            .iter_mut()
            .find(|x| sp >= x.start && sp < x.end && x.path.is_empty())
        {
            x.path = if Some(t.tid) == main_tid {
                "[stack]".into()
            } else {
                format!("[stack:{}]", t.tid)
            };
        }
    }
    // The heap: the first anonymous writable mapping past the program's .bss (brk starts
    // there, plus up to 1 GiB of randomization on x86-64 since Linux 5.18, 32 MiB before). A
    // .bss larger than its file's last page is an anonymous mapping of its own right after
    // the file mappings: not the heap.
    let file_end = exe_file
        .as_ref()
        .and_then(|f| out.iter().filter(|x| &x.path == f).map(|x| x.end).max());
    let bss_end = modules
        .first()
        .and_then(|m| core.image_end(m.start?, m.load_bias))
        .map(|e| e.div_ceil(4096) * 4096);
    if let Some(exe_end) = file_end {
        let past = bss_end.unwrap_or(exe_end).max(exe_end);
        if let Some(x) = out.iter_mut().find(|x| {
            x.end > past
                && x.start >= exe_end
                && x.start - exe_end <= (1 << 30) + (64 << 20)
                && x.path.is_empty()
                && x.perms.starts_with("rw")
        }) {
            x.path = "[heap]".into();
        }
    }
    // [vvar]: the read-only pages the kernel maps right below the vDSO.
    if let Some(v) = out.iter().position(|x| x.path == "[vdso]") {
        let mut at = out[v].start;
        for x in out[..v].iter_mut().rev() {
            if x.end != at || !x.path.is_empty() || x.perms != "r--" {
                break;
            }
            x.path = "[vvar]".into();
            at = x.start;
        }
    }
    for x in &mut out {
        if x.path.is_empty() {
            // The legacy vsyscall page sits at a fixed address on x86-64.
            x.path = if x.start == 0xffff_ffff_ff60_0000 {
                "[vsyscall]".into()
            } else {
                "[anon]".into()
            };
        }
    }
    add_sections(&mut out, exe_file.as_deref().zip(exe));
    out
}

/// Names the sections of each image inside its mappings, from the file on disk when it is
/// still the image that was loaded (same build-id).
/// `exe`: the main program's name in the core and the file to read for it (--exe), used when
/// the named file cannot be read (deleted, or the core comes from another machine).
fn add_sections(out: &mut [CoreMapping], exe: Option<(&str, &Path)>) {
    let mut done: Vec<String> = Vec::new();
    let images: Vec<(String, u64, Option<String>)> = out
        .iter()
        .filter_map(|x| {
            let b = x.load_bias?;
            (!x.path.starts_with('[')).then(|| (x.path.clone(), b, x.build_id.clone()))
        })
        .collect();
    for (path, bias, bid) in images {
        if done.contains(&path) {
            continue;
        }
        done.push(path.clone());
        // A deleted file may have been put back (a reinstall): the build-id check below says
        // whether what is there now is what was mapped.
        let on_disk = path.strip_suffix(" (deleted)").unwrap_or(&path);
        let opened = ImageFile::open(Path::new(on_disk)).or_else(|e| match exe {
            Some((name, file)) if name == path => ImageFile::open(file),
            _ => Err(e),
        });
        let Ok(f) = opened else {
            continue;
        };
        let have = f.build_id().map(|h| hex(&h));
        match (&bid, &have) {
            (Some(want), Some(have)) if want != have => continue,
            // A deleted file's name proves nothing: only a matching build-id does.
            (None, _) | (_, None) if on_disk != path => continue,
            _ => {}
        }
        let Ok(info) = f.info() else { continue };
        for x in out.iter_mut().filter(|x| x.path == path) {
            x.sections = info
                .sections
                .iter()
                .filter(|s| {
                    let lo = bias.wrapping_add(s.addr);
                    lo < x.end && lo.saturating_add(s.size) > x.start
                })
                .map(|s| s.name.clone())
                .collect();
        }
    }
}

/// Fills in from the agent's records of the same pid what a core lacks.
fn add_record(out: &mut [CoreMapping], pid: Option<u32>, record: &Path) -> Result<()> {
    let loaded = crate::select::Loaded::open(record)?;
    let parsed = loaded.parse()?;
    crate::select::warn_truncated(&parsed);
    let all = crate::select::timelines(&loaded, &parsed);
    let Some(t) = all.iter().rev().find(|t| Some(t.pid()) == pid) else {
        let pids: Vec<String> = all.iter().map(|t| t.pid().to_string()).collect();
        return Err(Error::input(format!(
            "{}: no recording of pid {} (recorded: {})",
            record.display(),
            pid.map_or("?".into(), |p| p.to_string()),
            pids.join(", ")
        )));
    };
    let maps = super::maps::mappings(t, At::End);
    for x in out.iter_mut() {
        if let Some(m) = maps.iter().find(|m| m.start == x.start) {
            if m.inode != 0 {
                x.inode = Some(m.inode);
                x.dev = Some(m.dev.clone());
            }
            // gcore leaves SysV segments out of its file note; the agent saw them attached.
            if x.path == "[anon]" && m.path.starts_with('/') {
                x.set_path(m.path.clone());
            }
        }
    }
    let keys: Vec<(Option<String>, Option<u64>, u64)> = out
        .iter()
        .map(|x| (x.dev.clone(), x.inode, x.start))
        .collect();
    for x in out.iter_mut() {
        if x.inode.is_some() {
            x.aliases = keys
                .iter()
                .filter(|k| k.0 == x.dev && k.1 == x.inode && k.2 != x.start)
                .map(|k| k.2)
                .collect();
        }
    }
    for im in &t.images {
        if let Some(kept) = t.kept_file(im) {
            for x in out.iter_mut().filter(|x| x.path == im.path) {
                x.kept_copy = Some(kept.display().to_string());
            }
        }
    }
    Ok(())
}

pub fn run(path: &Path, a: &Args) -> Result<i32> {
    let data = Data::open(path)?;
    let core = Core::parse(&data).map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    let modules = core.modules();
    let mut maps = mappings(&core, &modules, a.exe.as_deref());
    if let Some(r) = &a.record {
        add_record(&mut maps, core.pid, r)?;
    }
    let truncated = core.missing > 0;
    if truncated {
        eprintln!(
            "mapagent: warning: {}: truncated: {} bytes of dumped memory are missing from the end of the file",
            path.display(),
            core.missing
        );
    }
    if let Some(what) = &a.extract {
        return extract(&core, &maps, what, a.output.as_deref(), path);
    }
    if a.json {
        super::json_out(&maps)?;
    } else {
        print!("{}", text(&core, &modules, &maps, path));
    }
    Ok(super::exit_code(truncated))
}

fn text(core: &Core<'_>, modules: &[Module], maps: &[CoreMapping], path: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "core {}: pid {}, {} ({}), {} thread{}, NT_FILE page size {}",
        path.display(),
        core.pid.map_or("?".into(), |p| p.to_string()),
        core.command.as_deref().unwrap_or("?"),
        core.args.as_deref().unwrap_or(""),
        core.threads.len(),
        if core.threads.len() == 1 { "" } else { "s" },
        core.file_page_size
    );
    let _ = writeln!(
        s,
        "{:>16} {:>16} {:>10} {:<5} {:>10} {:>8}  path",
        "start", "end", "size", "perm", "offset", "dumped"
    );
    for m in maps {
        let dumped = if m.dumped_bytes == m.size {
            "yes".to_string()
        } else if m.dumped_bytes == 0 {
            "no".to_string()
        } else {
            format!("{}K", m.dumped_bytes / 1024)
        };
        let mut extra = String::new();
        if let Some(b) = m.load_bias {
            let _ = write!(extra, "  bias {b:#x}");
        }
        if !m.aliases.is_empty() {
            let a: Vec<String> = m.aliases.iter().map(|a| format!("{a:#x}")).collect();
            let _ = write!(extra, "  same file at {}", a.join(", "));
        }
        if !m.sections.is_empty() {
            let _ = write!(extra, "  [{}]", m.sections.join(" "));
        }
        let _ = writeln!(
            s,
            "{:>16x} {:>16x} {:>10x} {:<5} {:>10} {:>8}  {}{extra}",
            m.start,
            m.end,
            m.size,
            m.perms,
            m.offset.map_or("-".into(), |o| format!("{o:x}")),
            dumped,
            m.path
        );
    }
    let _ = writeln!(s, "\nModules (the dynamic linker's list):");
    for m in modules {
        let name = if m.name.is_empty() {
            core.file_at(m.dynamic)
                .map_or("[main program]".into(), |f| f.name.clone())
        } else {
            m.name.clone()
        };
        let _ = writeln!(
            s,
            "  {:>16} bias {:#x}  build-id {}  {}",
            m.start.map_or("?".into(), |a| format!("{a:#x}")),
            m.load_bias,
            m.build_id.as_deref().map_or("none".into(), hex),
            name
        );
    }
    let _ = writeln!(s, "\nThreads:");
    for t in &core.threads {
        let _ = writeln!(
            s,
            "  tid {:<8} signal {:<3} pc {}  sp {}",
            t.tid,
            t.signal,
            t.ip.map_or("?".into(), |v| format!("{v:#x}")),
            t.sp.map_or("?".into(), |v| format!("{v:#x}"))
        );
    }
    s
}

fn extract(
    core: &Core<'_>,
    maps: &[CoreMapping],
    what: &str,
    out: Option<&Path>,
    path: &Path,
) -> Result<i32> {
    let Some(out) = out else {
        return Err(Error::input("--extract needs -o FILE"));
    };
    let addr = what
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let m = maps
        .iter()
        .find(|m| match addr {
            Some(a) => a >= m.start && a < m.end,
            None => m.path.contains(what),
        })
        .ok_or_else(|| {
            Error::input(format!(
                "{}: no mapping {} '{what}'",
                path.display(),
                if addr.is_some() {
                    "contains"
                } else {
                    "is named like"
                }
            ))
        })?;
    let l = core
        .loads
        .iter()
        .find(|l| l.vaddr == m.start)
        .filter(|_| m.dumped)
        .ok_or_else(|| {
            Error::input(format!(
                "{}: {:#x}-{:#x} {} was not dumped (see coredump_filter in core(5))",
                path.display(),
                m.start,
                m.end,
                m.path
            ))
        })?;
    let bytes = core.bytes(l);
    crate::output::write(out, &[path], bytes)?;
    eprintln!(
        "mapagent: wrote {} bytes of {:#x}-{:#x} {} to {}",
        bytes.len(),
        m.start,
        m.end,
        m.path,
        out.display()
    );
    Ok(if (bytes.len() as u64) < l.filesz {
        2
    } else {
        0
    })
}
