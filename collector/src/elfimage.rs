//! What the dirty-page analysis needs from an image's ELF file: its segments, sections,
//! sized symbols (from .symtab, .dynsym, or a debug file found by build-id) and dynamic
//! relocations, including packed RELR ones (which `object`'s dynamic_relocations() leaves out).
//! Everything is read with `object`'s bounds-checked parsers: a damaged file gives an error,
//! never a panic.

use crate::input::Data;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, Rel, Rela, SectionHeader, Sym};
use object::Endianness;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    pub offset: u64,
    pub flags: u32,
}

#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub writable: bool,
    pub exec: bool,
}

#[derive(Clone, Debug)]
pub struct Symbol {
    /// As in the file (mangled).
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub func: bool,
    pub global: bool,
}

/// A relocation kind, as people name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelKind {
    Relative,
    GlobDat,
    Abs64,
    JumpSlot,
    Relr,
    Irelative,
    Tls,
    Copy,
    Other(u32),
}

impl RelKind {
    pub fn name(&self) -> String {
        match self {
            RelKind::Relative => "RELATIVE".into(),
            RelKind::GlobDat => "GLOB_DAT".into(),
            RelKind::Abs64 => "64".into(),
            RelKind::JumpSlot => "JUMP_SLOT".into(),
            RelKind::Relr => "RELR".into(),
            RelKind::Irelative => "IRELATIVE".into(),
            RelKind::Tls => "TLS".into(),
            RelKind::Copy => "COPY".into(),
            RelKind::Other(t) => format!("type {t}"),
        }
    }

    fn of(machine: elf::Machine, t: elf::RelocationType) -> RelKind {
        match (machine, t) {
            (elf::EM_X86_64, elf::R_X86_64_RELATIVE) => RelKind::Relative,
            (elf::EM_X86_64, elf::R_X86_64_GLOB_DAT) => RelKind::GlobDat,
            (elf::EM_X86_64, elf::R_X86_64_64) => RelKind::Abs64,
            (elf::EM_X86_64, elf::R_X86_64_JUMP_SLOT) => RelKind::JumpSlot,
            (elf::EM_X86_64, elf::R_X86_64_IRELATIVE) => RelKind::Irelative,
            (elf::EM_X86_64, elf::R_X86_64_COPY) => RelKind::Copy,
            (elf::EM_X86_64, elf::R_X86_64_DTPMOD64)
            | (elf::EM_X86_64, elf::R_X86_64_DTPOFF64)
            | (elf::EM_X86_64, elf::R_X86_64_TPOFF64) => RelKind::Tls,
            (elf::EM_AARCH64, elf::R_AARCH64_RELATIVE) => RelKind::Relative,
            (elf::EM_AARCH64, elf::R_AARCH64_GLOB_DAT) => RelKind::GlobDat,
            (elf::EM_AARCH64, elf::R_AARCH64_ABS64) => RelKind::Abs64,
            (elf::EM_AARCH64, elf::R_AARCH64_JUMP_SLOT) => RelKind::JumpSlot,
            (elf::EM_AARCH64, elf::R_AARCH64_IRELATIVE) => RelKind::Irelative,
            (elf::EM_AARCH64, elf::R_AARCH64_COPY) => RelKind::Copy,
            _ => RelKind::Other(t.0),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Reloc {
    /// Where it writes (an address in the file's layout).
    pub addr: u64,
    pub kind: RelKind,
    /// What it points to when known without the symbol table: RELATIVE/IRELATIVE addends and
    /// RELR's implicit addends. For symbol relocations, the symbol's name instead.
    pub target: Option<u64>,
    pub symbol: Option<String>,
}

pub struct ElfInfo {
    pub segments: Vec<Segment>,
    pub sections: Vec<Section>,
    /// Sorted by address; aliases (same address and size) folded into one.
    pub symbols: Vec<Symbol>,
    /// Sorted by address.
    pub relocs: Vec<Reloc>,
    pub build_id: Option<Vec<u8>>,
    /// PT_GNU_RELRO (vaddr, memsz): data the loader makes read-only once relocated.
    pub relro: Option<(u64, u64)>,
    /// Where the symbols came from (the file itself, or a debug file).
    pub symbol_source: PathBuf,
}

/// The image's file and, when one is installed, its separate debug file.
pub struct ImageFile {
    pub path: PathBuf,
    data: Data,
    debug: Option<(PathBuf, Data)>,
}

/// Where Debian (and most distributions) install debug files: by build-id.
pub fn debug_file_for(build_id: &[u8]) -> Option<PathBuf> {
    if build_id.len() < 2 {
        return None;
    }
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    let p = PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &hex[..2],
        &hex[2..]
    ));
    p.exists().then_some(p)
}

impl ImageFile {
    pub fn open(path: &Path) -> Result<ImageFile, String> {
        // A recorded path may name anything by now (a device, a fifo): read only files.
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        let data = Data::open(path).map_err(|e| e.to_string())?;
        Ok(ImageFile {
            path: path.to_path_buf(),
            data,
            debug: None,
        })
    }

    /// An image from bytes already in memory (tests, fuzzing).
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> ImageFile {
        ImageFile {
            path,
            data: Data::Owned(bytes),
            debug: None,
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The build-id note of the file (to check it is the image that was loaded).
    pub fn build_id(&self) -> Option<Vec<u8>> {
        use object::Object;
        let f = object::File::parse(&*self.data).ok()?;
        f.build_id().ok().flatten().map(|b| b.to_vec())
    }

    pub fn with_debug(mut self, build_id: &[u8]) -> ImageFile {
        if let Some(p) = debug_file_for(build_id) {
            if let Ok(d) = Data::open(&p) {
                self.debug = Some((p, d));
            }
        }
        self
    }

    pub fn info(&self) -> Result<ElfInfo, String> {
        let f = ElfFile64::<Endianness>::parse(&*self.data)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let e = f.endian();
        let machine = f.elf_header().e_machine(e);
        let segments: Vec<Segment> = f
            .elf_program_headers()
            .iter()
            .filter(|p| p.p_type(e) == elf::PT_LOAD)
            .map(|p| Segment {
                vaddr: p.p_vaddr(e),
                memsz: p.p_memsz(e),
                filesz: p.p_filesz(e),
                offset: p.p_offset(e),
                flags: p.p_flags(e).0,
            })
            .collect();
        let relro = f
            .elf_program_headers()
            .iter()
            .find(|p| p.p_type(e) == elf::PT_GNU_RELRO)
            .map(|p| (p.p_vaddr(e), p.p_memsz(e)));
        let table = f.elf_section_table();
        let mut sections = Vec::new();
        for sh in table.iter() {
            let flags = sh.sh_flags(e).0;
            if flags & elf::SHF_ALLOC.0 == 0 || flags & elf::SHF_TLS.0 != 0 || sh.sh_size(e) == 0 {
                continue;
            }
            let name = table.section_name(e, sh).unwrap_or(b"?");
            sections.push(Section {
                name: String::from_utf8_lossy(name).into_owned(),
                addr: sh.sh_addr(e),
                size: sh.sh_size(e),
                writable: flags & elf::SHF_WRITE.0 != 0,
                exec: flags & elf::SHF_EXECINSTR.0 != 0,
            });
        }
        sections.sort_by_key(|s| s.addr);
        let relocs = relocations(&f, machine, &segments, &self.data)?;
        // Symbols: the debug file's .symtab if there is one, else the file's .symtab, else
        // its .dynsym (exported names only).
        let (mut symbols, source) = match &self.debug {
            Some((p, d)) => match ElfFile64::<Endianness>::parse(&**d) {
                Ok(df) if !df.elf_symbol_table().is_empty() => {
                    (symbols_of(df.elf_symbol_table(), e), p.clone())
                }
                _ => (Vec::new(), self.path.clone()),
            },
            None => (Vec::new(), self.path.clone()),
        };
        if symbols.is_empty() {
            symbols = symbols_of(f.elf_symbol_table(), e);
        }
        symbols.extend(symbols_of(f.elf_dynamic_symbol_table(), e));
        symbols.sort_by(|a, b| {
            (a.addr, a.size, !a.global, &a.name).cmp(&(b.addr, b.size, !b.global, &b.name))
        });
        symbols.dedup_by(|b, a| a.addr == b.addr && a.size == b.size);
        let build_id = {
            use object::Object;
            f.build_id().ok().flatten().map(|b| b.to_vec())
        };
        // Addresses and sizes past any user address space come only from a damaged or
        // hostile file; dropping them here lets the rest add offsets without overflow checks.
        let fits = |a: u64, len: u64| a < ADDR_LIMIT && len < ADDR_LIMIT;
        let mut segments = segments;
        segments.retain(|x| fits(x.vaddr, x.memsz) && fits(x.offset, x.filesz));
        sections.retain(|x| fits(x.addr, x.size));
        symbols.retain(|x| fits(x.addr, x.size));
        let mut relocs = relocs;
        relocs.retain(|x| fits(x.addr, 0) && x.target.is_none_or(|t| fits(t, 0)));
        Ok(ElfInfo {
            segments,
            sections,
            symbols,
            relocs,
            build_id,
            relro: relro.filter(|&(v, m)| fits(v, m)),
            symbol_source: source,
        })
    }
}

/// Above any address or size a real image has (x86-64 and arm64 user space end below 2^57);
/// sums of two such values cannot overflow.
const ADDR_LIMIT: u64 = 1 << 60;

type Header = object::elf::FileHeader64<Endianness>;

/// Sized code and data symbols of one table (TLS symbols hold offsets, not addresses).
fn symbols_of<'d>(
    t: &object::read::elf::SymbolTable<'d, Header, &'d [u8]>,
    e: Endianness,
) -> Vec<Symbol> {
    let mut out = Vec::new();
    for sym in t.iter() {
        let ty = sym.st_type();
        let size = sym.st_size(e);
        if size == 0
            || sym.st_shndx(e) == elf::SHN_UNDEF
            || !matches!(
                ty,
                elf::STT_OBJECT | elf::STT_FUNC | elf::STT_NOTYPE | elf::STT_GNU_IFUNC
            )
        {
            continue;
        }
        let Ok(name) = t.symbol_name(e, sym) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        out.push(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            addr: sym.st_value(e),
            size,
            func: matches!(ty, elf::STT_FUNC | elf::STT_GNU_IFUNC),
            global: sym.st_bind() != elf::STB_LOCAL,
        });
    }
    out
}

/// The 8 bytes the file holds at address `addr` (RELR's implicit addend).
fn word_at(data: &[u8], segments: &[Segment], addr: u64) -> Option<u64> {
    let s = segments
        .iter()
        .find(|s| addr >= s.vaddr && addr.saturating_add(8) <= s.vaddr.saturating_add(s.filesz))?;
    let off = usize::try_from(addr - s.vaddr + s.offset).ok()?;
    let b = data.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Every dynamic relocation: REL/RELA sections linked to .dynsym and SHT_RELR sections.
fn relocations<'d>(
    f: &ElfFile64<'d, Endianness, &'d [u8]>,
    machine: elf::Machine,
    segments: &[Segment],
    data: &[u8],
) -> Result<Vec<Reloc>, String> {
    let e = f.endian();
    let dynsym = f.elf_dynamic_symbol_table();
    let mut out = Vec::new();
    for sh in f.elf_section_table().iter() {
        match sh.sh_type(e) {
            elf::SHT_RELA => {
                let Ok(Some((rels, _))) = sh.rela(e, data) else {
                    continue;
                };
                for r in rels {
                    let t = r.r_type(e, false);
                    let kind = RelKind::of(machine, t);
                    let sym = r.r_sym(e, false);
                    let symbol = (sym != 0)
                        .then(|| dynsym.symbol(object::SymbolIndex(sym as usize)).ok())
                        .flatten()
                        .and_then(|s| dynsym.symbol_name(e, s).ok())
                        .map(|n| String::from_utf8_lossy(n).into_owned());
                    let target = matches!(kind, RelKind::Relative | RelKind::Irelative)
                        .then(|| r.r_addend(e) as u64);
                    out.push(Reloc {
                        addr: r.r_offset(e),
                        kind,
                        target,
                        symbol,
                    });
                }
            }
            elf::SHT_REL => {
                let Ok(Some((rels, _))) = sh.rel(e, data) else {
                    continue;
                };
                for r in rels {
                    let t = r.r_type(e);
                    let addr = r.r_offset(e);
                    let kind = RelKind::of(machine, t);
                    out.push(Reloc {
                        addr,
                        kind,
                        target: (kind == RelKind::Relative)
                            .then(|| word_at(data, segments, addr))
                            .flatten(),
                        symbol: None,
                    });
                }
            }
            elf::SHT_RELR => {
                let Ok(Some(it)) = sh.relr(e, data) else {
                    continue;
                };
                for addr in it {
                    out.push(Reloc {
                        addr,
                        kind: RelKind::Relr,
                        target: word_at(data, segments, addr),
                        symbol: None,
                    });
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|r| r.addr);
    Ok(out)
}
