//! An ELF core dump read as an address space: every PT_LOAD (and whether its bytes were
//! dumped), the NT_FILE note naming file mappings, the threads (NT_PRSTATUS), the command
//! (NT_PRPSINFO), the auxiliary vector (NT_AUXV), and the dynamic linker's r_debug/link_map
//! list read from the dumped memory for each module's load bias and build-id, as
//! `eu-unstrip -n --core` does. Every read is bounds-checked: a damaged core yields errors or
//! fewer facts, never a panic.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;
use std::fmt;

type Header = elf::FileHeader64<Endianness>;
type Phdr = elf::ProgramHeader64<Endianness>;

#[derive(Debug)]
pub struct CoreError(pub String);

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A PT_LOAD: one mapping of the process.
#[derive(Clone, Debug)]
pub struct Load {
    pub vaddr: u64,
    pub memsz: u64,
    /// Where its bytes are in the core, and how many were dumped (0: none; less than memsz:
    /// only the start, e.g. an ELF header page).
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

/// An NT_FILE entry: a file-backed mapping.
#[derive(Clone, Debug)]
pub struct FileMap {
    pub start: u64,
    pub end: u64,
    /// In bytes (the note counts in its page_size units: pages for kernel cores, 1 for gcore).
    pub offset: u64,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Thread {
    pub tid: u32,
    pub signal: u32,
    pub sp: Option<u64>,
    pub ip: Option<u64>,
}

/// A module from the link_map list.
#[derive(Clone, Debug)]
pub struct Module {
    /// l_name as the loader has it ("" for the main program, resolved from the mappings).
    pub name: String,
    pub load_bias: u64,
    /// Its ELF header in memory (eu-unstrip's start address), if found.
    pub start: Option<u64>,
    pub build_id: Option<Vec<u8>>,
    /// The address of its dynamic section (l_ld).
    pub dynamic: u64,
}

pub struct Core<'d> {
    data: &'d [u8],
    pub machine: u16,
    pub loads: Vec<Load>,
    pub files: Vec<FileMap>,
    /// NT_FILE's page size field (4096 from the kernel, 1 from gdb's gcore).
    pub file_page_size: u64,
    pub threads: Vec<Thread>,
    pub pid: Option<u32>,
    pub command: Option<String>,
    pub args: Option<String>,
    pub auxv: Vec<(u64, u64)>,
    /// Bytes the program headers promise beyond the end of the file (a cut core).
    pub missing: u64,
}

pub const AT_PHDR: u64 = 3;
pub const AT_PHNUM: u64 = 5;
pub const AT_BASE: u64 = 7;
pub const AT_ENTRY: u64 = 9;
pub const AT_SYSINFO_EHDR: u64 = 33;
// ELF constants as plain numbers (object 0.40 wraps them in newtypes; the core's layout is
// read by hand anyway).
const NT_FILE: u32 = 0x4649_4c45;
const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_GNU_BUILD_ID: u32 = 3;
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl<'d> Core<'d> {
    pub fn parse(data: &'d [u8]) -> Result<Core<'d>, CoreError> {
        let hdr = Header::parse(data).map_err(|_| {
            CoreError(if data.len() >= 4 && &data[..4] == b"\x7fELF" {
                "not a 64-bit ELF file we can read (a 32-bit or damaged header)".into()
            } else {
                "not an ELF file (no \\x7fELF magic)".into()
            })
        })?;
        let e = hdr
            .endian()
            .map_err(|_| CoreError("ELF header with an unknown byte order".into()))?;
        if object::Endian::is_big_endian(e) {
            return Err(CoreError("a big-endian core: not supported".into()));
        }
        let ty = hdr.e_type(e).0;
        if ty != ET_CORE {
            let what = match ty {
                ET_EXEC => "an executable",
                ET_DYN => "a shared object or PIE executable",
                ET_REL => "an object file",
                _ => "an ELF file of another kind",
            };
            return Err(CoreError(format!("not a core dump: {what} (e_type {ty})")));
        }
        let phdrs = hdr.program_headers(e, data).map_err(|_| {
            CoreError(format!(
                "truncated: the program headers (at {:#x}) lie beyond the end of the file ({} bytes)",
                hdr.e_phoff(e),
                data.len()
            ))
        })?;
        let mut core = Core {
            data,
            machine: hdr.e_machine(e).0,
            loads: Vec::new(),
            files: Vec::new(),
            file_page_size: 0,
            threads: Vec::new(),
            pid: None,
            command: None,
            args: None,
            auxv: Vec::new(),
            missing: 0,
        };
        let len = data.len() as u64;
        for ph in phdrs {
            let (off, filesz) = (ph.p_offset(e), ph.p_filesz(e));
            let end = off.saturating_add(filesz);
            if end > len {
                core.missing = core.missing.saturating_add(end - len.max(off));
            }
            match ph.p_type(e).0 {
                PT_LOAD => core.loads.push(Load {
                    vaddr: ph.p_vaddr(e),
                    memsz: ph.p_memsz(e),
                    offset: off,
                    filesz,
                    flags: ph.p_flags(e).0,
                }),
                PT_NOTE => {
                    let Ok(Some(mut notes)) = ph.notes(e, data) else {
                        continue;
                    };
                    while let Ok(Some(n)) = notes.next() {
                        if n.name() == b"CORE" {
                            core.note(n.n_type(e).0, n.desc());
                        }
                    }
                }
                _ => {}
            }
        }
        core.loads.sort_by_key(|l| l.vaddr);
        if core.loads.is_empty() && core.files.is_empty() {
            return Err(CoreError(if core.missing > 0 {
                "truncated: the core ends before its notes and memory".into()
            } else {
                "a core with no memory segments and no file note".into()
            }));
        }
        Ok(core)
    }

    fn note(&mut self, ty: u32, d: &[u8]) {
        match ty {
            NT_PRSTATUS => {
                // struct elf_prstatus: signal info (12), cursig (2+2), sigpend, sighold (8+8),
                // pid, ppid, pgrp, sid (4 each), four timevals (64), then the registers.
                let tid = u32_at(d, 32).unwrap_or(0);
                let (sp, ip) = if self.machine == EM_X86_64 {
                    // user_regs_struct: rip is register 16, rsp register 19.
                    (u64_at(d, 112 + 19 * 8), u64_at(d, 112 + 16 * 8))
                } else if self.machine == EM_AARCH64 {
                    // user_pt_regs: x0..x30, sp, pc.
                    (u64_at(d, 112 + 31 * 8), u64_at(d, 112 + 32 * 8))
                } else {
                    (None, None)
                };
                if self.pid.is_none() {
                    self.pid = Some(tid);
                }
                self.threads.push(Thread {
                    tid,
                    signal: u32_at(d, 12).map_or(0, |s| s & 0xffff),
                    sp,
                    ip,
                });
            }
            NT_PRPSINFO => {
                // struct elf_prpsinfo (64-bit): state, sname, zomb, nice, pad, flag (8),
                // uid, gid (4 each), pid, ppid, pgrp, sid (4 each), fname[16], psargs[80].
                if let Some(pid) = u32_at(d, 24) {
                    self.pid = Some(pid);
                }
                self.command = d.get(40..56).map(cstr);
                self.args = d.get(56..136).map(|b| cstr(b).trim_end().to_string());
            }
            NT_AUXV => {
                let mut i = 0;
                while let (Some(k), Some(v)) = (u64_at(d, i), u64_at(d, i + 8)) {
                    if k == 0 {
                        break;
                    }
                    self.auxv.push((k, v));
                    i += 16;
                }
            }
            NT_FILE => {
                let (Some(count), Some(page)) = (u64_at(d, 0), u64_at(d, 8)) else {
                    return;
                };
                self.file_page_size = page;
                let count = count.min(d.len() as u64 / 24) as usize;
                let mut names = d.get(16 + count * 24..).unwrap_or(&[]).split(|&c| c == 0);
                for i in 0..count {
                    let at = 16 + i * 24;
                    let (Some(s), Some(e), Some(o)) =
                        (u64_at(d, at), u64_at(d, at + 8), u64_at(d, at + 16))
                    else {
                        break;
                    };
                    let name = names
                        .next()
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .unwrap_or_default();
                    self.files.push(FileMap {
                        start: s,
                        end: e,
                        offset: o.saturating_mul(page),
                        name,
                    });
                }
            }
            _ => {}
        }
    }

    pub fn aux(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|a| a.0 == key).map(|a| a.1)
    }

    /// The dumped bytes of a load (fewer than filesz if the core was cut).
    pub fn bytes(&self, l: &Load) -> &'d [u8] {
        let start = (l.offset as usize).min(self.data.len());
        let end = (l.offset.saturating_add(l.filesz) as usize).min(self.data.len());
        &self.data[start..end]
    }

    /// `len` bytes of the process's memory at `addr`, if they were dumped.
    pub fn read(&self, addr: u64, len: u64) -> Option<&'d [u8]> {
        let i = self
            .loads
            .partition_point(|l| l.vaddr <= addr)
            .checked_sub(1)?;
        let l = &self.loads[i];
        let off = addr - l.vaddr;
        if off.checked_add(len)? > l.filesz.min(l.memsz) {
            return None;
        }
        let b = self.bytes(l);
        b.get(off as usize..(off + len) as usize)
    }

    fn word(&self, addr: u64) -> Option<u64> {
        u64_at(self.read(addr, 8)?, 0)
    }

    /// A NUL-terminated string in memory (at most 4 KiB).
    fn string(&self, addr: u64) -> Option<String> {
        let i = self
            .loads
            .partition_point(|l| l.vaddr <= addr)
            .checked_sub(1)?;
        let l = &self.loads[i];
        let avail = l
            .vaddr
            .saturating_add(l.filesz)
            .checked_sub(addr)?
            .min(4096);
        let b = self.read(addr, avail)?;
        b.contains(&0).then(|| cstr(b))
    }

    /// The NT_FILE entry covering `addr`.
    pub fn file_at(&self, addr: u64) -> Option<&FileMap> {
        self.files.iter().find(|f| addr >= f.start && addr < f.end)
    }

    /// The modules on the dynamic linker's list, found through the main program's DT_DEBUG.
    pub fn modules(&self) -> Vec<Module> {
        let mut out = Vec::new();
        let (Some(phdr), Some(phnum)) = (self.aux(AT_PHDR), self.aux(AT_PHNUM)) else {
            return out;
        };
        let Some(phdrs) = self.phdrs(phdr, phnum) else {
            return out;
        };
        let e = Endianness::Little;
        let Some(bias) = phdrs
            .iter()
            .find(|p| p.p_type(e).0 == PT_PHDR)
            .map(|p| phdr.wrapping_sub(p.p_vaddr(e)))
        else {
            return out;
        };
        let Some(dynamic) = phdrs
            .iter()
            .find(|p| p.p_type(e).0 == PT_DYNAMIC)
            .map(|p| bias.wrapping_add(p.p_vaddr(e)))
        else {
            return out; // static: no loader, no list
        };
        let mut r_debug = 0;
        for i in 0..1024u64 {
            let Some(tag) = self.word(dynamic.wrapping_add(i * 16)) else {
                break;
            };
            if tag == DT_NULL {
                break;
            }
            if tag == DT_DEBUG {
                r_debug = self.word(dynamic.wrapping_add(i * 16 + 8)).unwrap_or(0);
            }
        }
        // struct r_debug { int r_version; struct link_map *r_map; ... }
        let mut lm = match self.word(r_debug.wrapping_add(8)) {
            Some(p) if r_debug != 0 => p,
            _ => return out,
        };
        let mut seen = std::collections::HashSet::new();
        // struct link_map { l_addr, l_name, l_ld, l_next, l_prev }
        while lm != 0 && seen.insert(lm) && out.len() < 4096 {
            let (Some(l_addr), Some(l_name), Some(l_ld), Some(next)) = (
                self.word(lm),
                self.word(lm.wrapping_add(8)),
                self.word(lm.wrapping_add(16)),
                self.word(lm.wrapping_add(24)),
            ) else {
                break;
            };
            let name = self.string(l_name).unwrap_or_default();
            let start = self.elf_header_of(l_ld, l_addr);
            let build_id = start.and_then(|h| self.build_id_at(h, l_addr));
            out.push(Module {
                name,
                load_bias: l_addr,
                start,
                build_id,
                dynamic: l_ld,
            });
            lm = next;
        }
        out
    }

    /// Where a module's ELF header is in memory: the offset-0 mapping of the file holding its
    /// dynamic section, or (the vDSO, anything without a file) its load bias.
    fn elf_header_of(&self, l_ld: u64, bias: u64) -> Option<u64> {
        let at = match self.file_at(l_ld) {
            Some(f) => self
                .files
                .iter()
                .filter(|g| g.name == f.name && g.offset == 0 && g.start <= l_ld)
                .map(|g| g.start)
                .max()?,
            None => bias,
        };
        (self.read(at, 4)? == b"\x7fELF").then_some(at)
    }

    /// `count` program headers at `addr` in dumped memory (at most 256).
    fn phdrs(&self, addr: u64, count: u64) -> Option<&'d [Phdr]> {
        let raw = self.read(addr, count.min(256) * 56)?;
        object::pod::slice_from_all_bytes::<Phdr>(raw).ok()
    }

    /// The program headers of the image whose ELF header is at `ehdr`.
    fn image_phdrs(&self, ehdr: u64) -> Option<&'d [Phdr]> {
        let h = self.read(ehdr, 64)?;
        let phoff = u64_at(h, 32)?;
        let phnum = u64::from(u16::from_le_bytes(h.get(56..58)?.try_into().ok()?));
        self.phdrs(ehdr.checked_add(phoff)?, phnum)
    }

    /// The end of the highest PT_LOAD (its .bss included) of the image whose ELF header is at
    /// `ehdr`.
    pub fn image_end(&self, ehdr: u64, bias: u64) -> Option<u64> {
        let phdrs = self.image_phdrs(ehdr)?;
        let e = Endianness::Little;
        phdrs
            .iter()
            .filter(|p| p.p_type(e).0 == PT_LOAD)
            .map(|p| bias.wrapping_add(p.p_vaddr(e)).saturating_add(p.p_memsz(e)))
            .max()
    }

    /// The GNU build-id from the PT_NOTE segments of the image whose ELF header is at `ehdr`.
    fn build_id_at(&self, ehdr: u64, bias: u64) -> Option<Vec<u8>> {
        let phdrs = self.image_phdrs(ehdr)?;
        let e = Endianness::Little;
        for p in phdrs.iter().filter(|p| p.p_type(e).0 == PT_NOTE) {
            let Some(notes) = self.read(bias.wrapping_add(p.p_vaddr(e)), p.p_memsz(e).min(1 << 16))
            else {
                continue; // another note segment may hold the build-id
            };
            let mut i = 0usize;
            while let (Some(nsz), Some(dsz), Some(ty)) =
                (u32_at(notes, i), u32_at(notes, i + 4), u32_at(notes, i + 8))
            {
                let name_at = i + 12;
                let desc_at = name_at + (nsz as usize).next_multiple_of(4);
                let next = desc_at + (dsz as usize).next_multiple_of(4);
                if ty == NT_GNU_BUILD_ID
                    && notes.get(name_at..name_at + nsz as usize) == Some(b"GNU\0")
                {
                    return notes
                        .get(desc_at..desc_at + dsz as usize)
                        .map(|d| d.to_vec());
                }
                if next <= i {
                    break;
                }
                i = next;
            }
        }
        None
    }
}
