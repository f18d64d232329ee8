//! Which ELF images are loaded: dl_iterate_phdr diffed against a table of known images.
//! dl_iterate_phdr is the source of truth (ld.so maps libraries with its internal mmap, which
//! no hook sees). It is called only after dlopen/dlclose return and from the writer thread,
//! never inside a mapping hook (it takes the loader's write lock).

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

pub type Phdr = libc::Elf64_Phdr;

/// One loaded image as the callback sees it; borrowed from the loader's data, valid only
/// inside the callback.
pub struct Seen<'a> {
    pub key: u64,
    pub bias: u64,
    pub name: &'a [u8],
    /// The loader's own name for it (NUL-terminated), when it has one.
    pub cname: Option<&'a core::ffi::CStr>,
    pub phdrs: &'a [Phdr],
    pub build_id: &'a [u8],
}

pub trait Sink {
    /// Returns false if the image could not be reported (it is then reported again later).
    fn load(&mut self, img: &Seen<'_>) -> bool;
    fn unload(&mut self, key: u64, bias: u64);
}

struct Known {
    key: u64,
    bias: u64,
    gen: u32,
    phnum: u16,
    /// The loader's name for it (valid while it is loaded).
    name: *const libc::c_char,
}

struct Table {
    known: Vec<Known>,
    gen: u32,
    adds: u64,
    subs: u64,
    /// A change was seen but could not be reported: walk again even if the counters match.
    stale: bool,
}

const MAX_KNOWN: usize = 8192;

static TABLE: AtomicPtr<Table> = AtomicPtr::new(core::ptr::null_mut());
static WALKING: AtomicBool = AtomicBool::new(false);
/// A caller gave up waiting for WALKING: the holder walks once more before releasing it.
static AGAIN: AtomicBool = AtomicBool::new(false);
/// The executable's path (its dlpi_name is empty), set once at start.
static EXE: AtomicPtr<Vec<u8>> = AtomicPtr::new(core::ptr::null_mut());

pub fn init(exe: Vec<u8>) {
    let t = Box::new(Table {
        known: Vec::with_capacity(MAX_KNOWN),
        gen: 0,
        adds: 0,
        subs: 0,
        stale: true,
    });
    TABLE.store(Box::into_raw(t), Ordering::Release);
    EXE.store(Box::into_raw(Box::new(exe)), Ordering::Release);
}

/// Held across fork (see lifecycle::fork_prepare).
pub fn fork_prepare() {
    while WALKING.swap(true, Ordering::AcqRel) {
        unsafe { libc::sched_yield() };
    }
}

pub fn fork_release() {
    WALKING.store(false, Ordering::Release);
}

pub fn exe_path() -> &'static [u8] {
    let p = EXE.load(Ordering::Acquire);
    if p.is_null() {
        b""
    } else {
        unsafe { &*p }
    }
}

/// Reports images that appeared or vanished since the last walk to `sink`, stamped by the
/// caller. After a dlopen/dlclose the caller waits for a walk another thread is doing (it
/// would wait on the loader's lock inside dl_iterate_phdr anyway) and then walks itself, so
/// what its call changed is reported at its time, never later by someone else.
pub fn rescan(sink: &mut dyn Sink) {
    let t = TABLE.load(Ordering::Acquire);
    if t.is_null() {
        return;
    }
    // Wait a little for a walk another thread is doing, never indefinitely: the caller may be
    // inside its own dl_iterate_phdr callback, holding the loader lock that walk waits for.
    // Then the walker is asked to walk again on our behalf (at its time, slightly later).
    let mut spins = 0u32;
    while WALKING.swap(true, Ordering::AcqRel) {
        spins += 1;
        if spins > 2000 {
            AGAIN.store(true, Ordering::Release);
            if WALKING.swap(true, Ordering::AcqRel) {
                return;
            }
            break;
        }
        if spins < 100 {
            core::hint::spin_loop();
        } else {
            unsafe { libc::sched_yield() };
        }
    }
    walk_held(t, sink);
}

/// Walks (WALKING held), then again while someone asked for it meanwhile; releases WALKING.
fn walk_held(t: *mut Table, sink: &mut dyn Sink) {
    loop {
        AGAIN.store(false, Ordering::Release);
        unsafe { diff_walk(&mut *t, sink) };
        WALKING.store(false, Ordering::Release);
        if !AGAIN.load(Ordering::Acquire) || WALKING.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

/// Lists every loaded image, without touching the table (a new record file starts with all).
pub fn list_all(sink: &mut dyn Sink) {
    struct Ctx<'s> {
        sink: &'s mut dyn Sink,
    }
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        let ctx = &mut *(data as *mut Ctx);
        let info = &*info;
        with_seen(info, |s| {
            ctx.sink.load(s);
        });
        0
    }
    let mut ctx = Ctx { sink };
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut ctx as *mut Ctx as *mut c_void) };
}

/// Lists the images the table knows, without the loader (a fork child: the loader's lock may
/// have been held by another thread of the parent). Everything is copied through
/// process_vm_readv first: an entry may be stale (unloaded by a dlclose racing the fork).
pub fn list_known(sink: &mut dyn Sink) {
    let t = TABLE.load(Ordering::Acquire);
    if t.is_null() {
        return;
    }
    let t = unsafe { &*t };
    for k in &t.known {
        let n = (k.phnum as usize).min(64);
        let mut raw = vec![0u8; n * core::mem::size_of::<Phdr>()];
        if n == 0 || !crate::sys::read_mem(k.key, &mut raw) {
            continue;
        }
        let phdrs: Vec<Phdr> = raw
            .chunks_exact(core::mem::size_of::<Phdr>())
            .map(|c| unsafe { core::ptr::read_unaligned(c.as_ptr() as *const Phdr) })
            .collect();
        let mut name = vec![0u8; 4096];
        let cname = if k.name.is_null() || !read_cstr(k.name as u64, &mut name) {
            None
        } else {
            Some(name)
        };
        let name_bytes: Vec<u8> = match &cname {
            Some(n) if !n.is_empty() => n.clone(),
            _ if k.key == unsafe { libc::getauxval(libc::AT_PHDR) } => exe_path().to_vec(),
            _ => Vec::new(),
        };
        let ccopy = cname
            .filter(|n| !n.is_empty())
            .and_then(|n| std::ffi::CString::new(n).ok());
        let build_id = safe_build_id(k.bias, &phdrs).unwrap_or_default();
        sink.load(&Seen {
            key: k.key,
            bias: k.bias,
            name: &name_bytes,
            cname: ccopy.as_deref(),
            phdrs: &phdrs,
            build_id: &build_id,
        });
    }
}

/// A NUL-terminated string of this process, copied without faulting; `buf` is cut to it.
fn read_cstr(addr: u64, buf: &mut Vec<u8>) -> bool {
    let mut got = 0;
    while got < buf.len() {
        // Up to the end of the page, so a string near a mapping's end still reads.
        let room = (4096 - ((addr as usize + got) & 4095)).min(buf.len() - got);
        if !crate::sys::read_mem(addr + got as u64, &mut buf[got..got + room]) {
            return false;
        }
        if let Some(z) = buf[got..got + room].iter().position(|&c| c == 0) {
            buf.truncate(got + z);
            return true;
        }
        got += room;
    }
    false
}

/// The build-id, with the note copied first (see list_known).
fn safe_build_id(bias: u64, phdrs: &[Phdr]) -> Option<Vec<u8>> {
    for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_NOTE) {
        let len = ph.p_filesz as usize;
        if len == 0 || len > 1 << 16 {
            continue;
        }
        let mut note = vec![0u8; len];
        if !crate::sys::read_mem(bias.wrapping_add(ph.p_vaddr), &mut note) {
            continue;
        }
        let fake = [
            Phdr {
                p_type: libc::PT_LOAD,
                p_flags: 0,
                p_offset: 0,
                p_vaddr: 0,
                p_paddr: 0,
                p_filesz: len as u64,
                p_memsz: len as u64,
                p_align: 4096,
            },
            Phdr { p_vaddr: 0, ..*ph },
        ];
        if let Some(id) = build_id(note.as_ptr() as u64, &fake) {
            return Some(id.to_vec());
        }
    }
    None
}

/// Walks once and diffs against the table. Callers hold WALKING.
unsafe fn diff_walk(t: &mut Table, sink: &mut dyn Sink) {
    struct Ctx<'s> {
        t: &'s mut Table,
        sink: &'s mut dyn Sink,
        first: bool,
        force: bool,
        skipped: bool,
    }
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> c_int {
        let ctx = &mut *(data as *mut Ctx);
        let info = &*info;
        if ctx.first {
            ctx.first = false;
            // dlpi_adds/dlpi_subs only change when the loader's list does.
            if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_tls_modid) {
                let (adds, subs) = (info.dlpi_adds, info.dlpi_subs);
                if !ctx.force && adds == ctx.t.adds && subs == ctx.t.subs {
                    ctx.skipped = true;
                    return 1;
                }
                ctx.t.adds = adds;
                ctx.t.subs = subs;
            }
        }
        let key = info.dlpi_phdr as u64;
        let gen = ctx.t.gen;
        if let Some(k) = ctx
            .t
            .known
            .iter_mut()
            .find(|k| k.key == key && k.bias == info.dlpi_addr)
        {
            k.gen = gen;
            return 0;
        }
        if ctx.t.known.len() >= MAX_KNOWN {
            ctx.t.stale = true;
            return 0;
        }
        let mut accepted = false;
        with_seen(info, |s| accepted = ctx.sink.load(s));
        if accepted {
            ctx.t.known.push(Known {
                key,
                bias: info.dlpi_addr,
                gen,
                phnum: info.dlpi_phnum,
                name: info.dlpi_name,
            });
        } else {
            ctx.t.stale = true;
        }
        0
    }
    t.gen = t.gen.wrapping_add(1);
    let was_stale = t.stale;
    t.stale = false;
    let gen = t.gen;
    let mut ctx = Ctx {
        t,
        sink,
        first: true,
        force: was_stale,
        skipped: false,
    };
    libc::dl_iterate_phdr(Some(cb), &mut ctx as *mut Ctx as *mut c_void);
    if ctx.skipped {
        // Nothing changed: keep the previous generation's marks valid.
        for k in ctx.t.known.iter_mut() {
            k.gen = gen;
        }
        return;
    }
    let mut i = 0;
    while i < ctx.t.known.len() {
        if ctx.t.known[i].gen != gen {
            let k = ctx.t.known.swap_remove(i);
            ctx.sink.unload(k.key, k.bias);
        } else {
            i += 1;
        }
    }
}

unsafe fn with_seen(info: &libc::dl_phdr_info, f: impl FnOnce(&Seen<'_>)) {
    let phdrs: &[Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize)
    };
    let cname = (!info.dlpi_name.is_null()).then(|| core::ffi::CStr::from_ptr(info.dlpi_name));
    let name: &[u8] = cname.map_or(b"", |c| c.to_bytes());
    // The executable's dlpi_name is empty; use the path from /proc/self/exe.
    let name = if name.is_empty() && is_main(info) {
        exe_path()
    } else {
        name
    };
    let build_id = build_id(info.dlpi_addr, phdrs).unwrap_or(b"");
    let cname = cname.filter(|c| !c.to_bytes().is_empty());
    f(&Seen {
        key: info.dlpi_phdr as u64,
        bias: info.dlpi_addr,
        name,
        cname,
        phdrs,
        build_id,
    });
}

fn is_main(info: &libc::dl_phdr_info) -> bool {
    let at_phdr = unsafe { libc::getauxval(libc::AT_PHDR) };
    info.dlpi_phdr as u64 == at_phdr
}

/// The GNU build-id from the image's PT_NOTE in memory. Only notes that lie inside the
/// file-backed part of a PT_LOAD are read, so this never touches unmapped memory.
pub fn build_id<'a>(bias: u64, phdrs: &'a [Phdr]) -> Option<&'a [u8]> {
    use object::read::elf::NoteIterator;
    type Hdr = object::elf::FileHeader64<object::Endianness>;
    for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_NOTE) {
        let (start, len) = (ph.p_vaddr, ph.p_filesz);
        let end = start.checked_add(len)?;
        let inside = phdrs.iter().any(|l| {
            l.p_type == libc::PT_LOAD
                && l.p_vaddr <= start
                && end <= l.p_vaddr.saturating_add(l.p_filesz)
        });
        if !inside || len == 0 || len > 1 << 20 {
            continue;
        }
        let data: &'a [u8] = unsafe {
            core::slice::from_raw_parts(bias.wrapping_add(start) as *const u8, len as usize)
        };
        let align = if ph.p_align == 8 { 8 } else { 4 };
        let Ok(mut notes) = NoteIterator::<Hdr>::new(object::Endianness::Little, align, data)
        else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"GNU"
                && note.n_type(object::Endianness::Little) == object::elf::NT_GNU_BUILD_ID
            {
                let d = note.desc();
                if !d.is_empty() && d.len() <= 64 {
                    return Some(d);
                }
            }
        }
    }
    None
}
