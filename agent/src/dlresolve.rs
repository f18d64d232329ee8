//! Keeps dlopen's caller-relative lookups intact. glibc resolves a bare library name against
//! the *calling* object's DT_RPATH/DT_RUNPATH and expands $ORIGIN relative to it, and loads into
//! the caller's namespace; through an interposer the caller would look like libmapagent.so.
//! So the hook finds the caller (its return address), asks the loader for the caller's search
//! path (dlinfo RTLD_DI_SERINFO), and when that finds the file somewhere our own search would
//! not, hands the real dlopen the full path instead. Allocation-free: stack buffers only.

use core::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

const RTLD_DI_LMID: c_int = 1;
const RTLD_DI_SERINFO: c_int = 4;
const RTLD_DI_SERINFOSIZE: c_int = 5;
const RTLD_DL_LINKMAP: c_int = 2;

#[repr(C)]
struct SerPath {
    name: *const c_char,
    flags: c_uint,
}

#[repr(C)]
struct SerInfo {
    size: usize,
    cnt: c_uint,
    // followed by `cnt` SerPath entries and the strings
}

#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const c_char,
    // further fields are private to glibc
}

extern "C" {
    fn dladdr1(
        addr: *const c_void,
        info: *mut libc::Dl_info,
        extra: *mut *mut c_void,
        flags: c_int,
    ) -> c_int;
    fn dlinfo(handle: *mut c_void, request: c_int, arg: *mut c_void) -> c_int;
}

pub const PATH_BUF: usize = 4096;
/// Room for a search path list (dlinfo RTLD_DI_SERINFO); longer lists are left to glibc.
const SERINFO_WORDS: usize = 512;

/// Whether glibc would take this candidate: an ELF file of our class and machine (its
/// open_verify skips the others and keeps searching).
unsafe fn loadable(path: *const c_char) -> bool {
    let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let mut h = [0u8; 20];
    let n = libc::read(fd, h.as_mut_ptr().cast(), h.len());
    libc::close(fd);
    #[cfg(target_arch = "x86_64")]
    const MACHINE: u16 = 62;
    #[cfg(target_arch = "aarch64")]
    const MACHINE: u16 = 183;
    n == 20 && h[..4] == *b"\x7fELF" && h[4] == 2 && u16::from_le_bytes([h[18], h[19]]) == MACHINE
}

/// Set once any dlmopen went through the hook: until then every object is in the base
/// namespace and the caller's namespace need not be looked up.
static NAMESPACES: AtomicBool = AtomicBool::new(false);

pub fn namespaces_in_use() {
    NAMESPACES.store(true, Ordering::Release);
}

/// What to hand the real dlopen.
pub struct Plan {
    /// Use this path instead of the caller's argument (set when rewritten into `buf`).
    pub rewritten: bool,
    /// The caller's link-map namespace (0 = base).
    pub lmid: c_long,
}

/// Decides how to load `file` on behalf of the code at `caller`. When `rewritten`, `buf`
/// holds the NUL-terminated path to load.
#[inline(never)] // its buffers must not stay on the stack across the real dlopen
pub unsafe fn plan(file: *const c_char, caller: *const c_void, buf: &mut [u8; PATH_BUF]) -> Plan {
    let mut plan = Plan {
        rewritten: false,
        lmid: 0,
    };
    // Under secure execution glibc restricts $ORIGIN and search paths itself; do not second-
    // guess it there.
    if file.is_null() || libc::getauxval(libc::AT_SECURE) != 0 {
        return plan;
    }
    let name = CStr::from_ptr(file).to_bytes();
    // The common case costs nothing: a path, no $ORIGIN, one namespace.
    if name.contains(&b'/') && !name.contains(&b'$') && !NAMESPACES.load(Ordering::Acquire) {
        return plan;
    }
    let mut info: libc::Dl_info = core::mem::zeroed();
    let mut lm: *mut c_void = core::ptr::null_mut();
    if caller.is_null() || dladdr1(caller, &mut info, &mut lm, RTLD_DL_LINKMAP) == 0 || lm.is_null()
    {
        return plan;
    }
    let mut lmid: c_long = 0;
    if dlinfo(lm, RTLD_DI_LMID, &mut lmid as *mut c_long as *mut c_void) == 0 {
        plan.lmid = lmid;
    }
    let mut name_buf = [0u8; PATH_BUF];
    let mut name: &[u8] = name;
    if name.contains(&b'$') {
        let origin = origin_of(lm as *const LinkMap);
        if let Some(n) = expand_origin(name, origin, &mut name_buf) {
            name = &name_buf[..n];
            if name.contains(&b'/') {
                return finish(plan, name, buf);
            }
        }
    }
    if name.contains(&b'/') || name.is_empty() {
        return plan;
    }
    // Already loaded under this name: the loader returns that object for any caller.
    if let (Some(open), Some(close)) = (crate::real::dlopen(), crate::real::dlclose()) {
        let mut probe = [0u8; PATH_BUF];
        if name.len() < PATH_BUF {
            probe[..name.len()].copy_from_slice(name);
            let h = if plan.lmid == 0 {
                open(probe.as_ptr().cast(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
            } else {
                match crate::real::dlmopen() {
                    Some(mopen) => mopen(
                        plan.lmid,
                        probe.as_ptr().cast(),
                        libc::RTLD_LAZY | libc::RTLD_NOLOAD,
                    ),
                    None => core::ptr::null_mut(),
                }
            };
            if !h.is_null() {
                close(h);
                return plan;
            }
        }
    }
    let mut mine_info: libc::Dl_info = core::mem::zeroed();
    let mut mine: *mut c_void = core::ptr::null_mut();
    if dladdr1(
        search_path as *const c_void,
        &mut mine_info,
        &mut mine,
        RTLD_DL_LINKMAP,
    ) == 0
        || mine.is_null()
    {
        return plan;
    }
    if mine == lm {
        return plan;
    }
    let mut theirs_buf = [0u64; SERINFO_WORDS];
    let mut ours_buf = [0u64; SERINFO_WORDS];
    let (Some(theirs), Some(ours)) = (
        search_path(lm, &mut theirs_buf),
        search_path(mine, &mut ours_buf),
    ) else {
        return plan;
    };
    // Dirs both searches end with (LD_LIBRARY_PATH tails, system dirs) give the same answer
    // whoever asks; only the caller's own prefix can differ.
    let mut common = 0;
    while common < theirs.len()
        && common < ours.len()
        && dir(&theirs[theirs.len() - 1 - common]) == dir(&ours[ours.len() - 1 - common])
    {
        common += 1;
    }
    for sp in &theirs[..theirs.len() - common] {
        let d = dir(sp);
        if d.len() + 1 + name.len() + 1 > PATH_BUF {
            continue;
        }
        // `buf` doubles as the candidate's buffer: it is the answer if the candidate fits.
        let n = d.len() + 1 + name.len();
        buf[..d.len()].copy_from_slice(d);
        buf[d.len()] = b'/';
        buf[d.len() + 1..n].copy_from_slice(name);
        buf[n] = 0;
        if loadable(buf.as_ptr().cast()) {
            plan.rewritten = true;
            return plan;
        }
    }
    plan
}

fn finish(mut plan: Plan, path: &[u8], buf: &mut [u8; PATH_BUF]) -> Plan {
    if path.len() < PATH_BUF {
        buf[..path.len()].copy_from_slice(path);
        buf[path.len()] = 0;
        plan.rewritten = true;
    }
    plan
}

fn dir(sp: &SerPath) -> &[u8] {
    if sp.name.is_null() {
        b""
    } else {
        unsafe { CStr::from_ptr(sp.name).to_bytes() }
    }
}

/// The loader's search path for `handle`, in a caller-provided buffer.
unsafe fn search_path(handle: *mut c_void, buf: &mut [u64; SERINFO_WORDS]) -> Option<&[SerPath]> {
    let mut size = SerInfo { size: 0, cnt: 0 };
    if dlinfo(
        handle,
        RTLD_DI_SERINFOSIZE,
        &mut size as *mut SerInfo as *mut c_void,
    ) != 0
    {
        return None;
    }
    if size.size > core::mem::size_of_val(buf) || size.cnt as usize > 256 {
        return None;
    }
    let si = buf.as_mut_ptr() as *mut SerInfo;
    (*si).size = size.size;
    (*si).cnt = size.cnt;
    if dlinfo(handle, RTLD_DI_SERINFO, si as *mut c_void) != 0 {
        return None;
    }
    let first = (si as *mut u8).add(core::mem::size_of::<SerInfo>()) as *const SerPath;
    Some(core::slice::from_raw_parts(first, (*si).cnt as usize))
}

/// Directory of the object (for $ORIGIN); the executable's own l_name is empty.
unsafe fn origin_of(lm: *const LinkMap) -> &'static [u8] {
    let name: &[u8] = if (*lm).l_name.is_null() {
        b""
    } else {
        CStr::from_ptr((*lm).l_name).to_bytes()
    };
    let path: &[u8] = if name.is_empty() {
        crate::images::exe_path()
    } else {
        core::mem::transmute::<&[u8], &'static [u8]>(name)
    };
    match path.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

/// Replaces $ORIGIN and ${ORIGIN}; other dynamic string tokens are left for the loader.
fn expand_origin(name: &[u8], origin: &[u8], out: &mut [u8; PATH_BUF]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    let mut push = |s: &[u8], n: &mut usize| -> Option<()> {
        if *n + s.len() >= PATH_BUF {
            return None;
        }
        out[*n..*n + s.len()].copy_from_slice(s);
        *n += s.len();
        Some(())
    };
    while i < name.len() {
        let rest = &name[i..];
        // $ORIGIN only as a whole token ($ORIGINAL is not it), as glibc's _dl_dst_substitute.
        let boundary = |k: usize| {
            rest.get(k)
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        };
        if rest.starts_with(b"$ORIGIN") && boundary(7) {
            push(origin, &mut n)?;
            i += 7;
        } else if rest.starts_with(b"${ORIGIN}") {
            push(origin, &mut n)?;
            i += 9;
        } else {
            push(&name[i..i + 1], &mut n)?;
            i += 1;
        }
    }
    Some(n)
}
