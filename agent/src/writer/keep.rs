//! Copies of executable images whose file cannot be opened by its path later: code loaded from
//! a memfd, a library deleted or replaced on disk after it was loaded. perf, gdb and the
//! collector need the ELF file to name functions; the copy is taken while the image is mapped,
//! kept in <dir>/keep/<build-id> (shared by all processes writing to the directory), capped by
//! MAPAGENT_KEEP_MAX. Every copy made, shared, skipped or failed is recorded.

use super::identity::FileKey;
use super::Writer;
use crate::sys;
use core::ffi::c_int;
use mapagent_record::records::{self as rec, keep_status, Record};
use mapagent_record::{Bytes, Hex};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Where an image's bytes can be read from.
pub enum Source {
    /// A descriptor of the application's (it dlopen'ed /proc/self/fd/N), opened through
    /// /proc/PID/fd/N while it is still that file.
    Fd(c_int),
    /// A path that still reaches the mapped file: /proc/PID/exe, /proc/PID/map_files/A-B.
    Path(Vec<u8>),
}

/// Whether the kernel's name for an image (as maps shows it) no longer leads to its file.
/// (dev, inode) of the application's descriptor `fd`.
pub fn app_fd_identity(fd: c_int) -> Option<FileKey> {
    sys::path_identity(&sys::proc_path(&format!("fd/{fd}")))
}

pub fn unreachable_by_path(kernel_path: &[u8], pinned: Option<FileKey>) -> bool {
    if kernel_path.starts_with(b"/memfd:") || kernel_path.ends_with(b" (deleted)") {
        return true;
    }
    if !kernel_path.starts_with(b"/") {
        return false; // the vDSO
    }
    let Ok(c) = CString::new(kernel_path) else {
        return true;
    };
    match (sys::path_identity(&c), pinned) {
        (Some(now), Some(then)) => now != then,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

impl Writer {
    /// Keeps a copy of image `id` if its file cannot be opened by `kernel_path` later.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep_image(
        &mut self,
        ts: u64,
        id: u64,
        build_id: &[u8],
        kernel_path: &[u8],
        pinned: Option<FileKey>,
        src: Source,
    ) {
        let needed = unreachable_by_path(kernel_path, pinned);
        // A descriptor from the hook is ours only if it still refers to that file: an
        // application may have closed it and reused the number.
        let src = match src {
            Source::Fd(fd) if app_fd_identity(fd) != pinned || pinned.is_none() => {
                tracing::debug!(fd, "image descriptor no longer ours; left alone");
                match self.loaded.get(&id).and_then(|i| i.source()) {
                    Some(s) => s,
                    None => return,
                }
            }
            other => other,
        };
        let src = match src {
            Source::Fd(fd) => Source::Path(sys::app_path(format!("/proc/self/fd/{fd}").as_bytes())),
            other => other,
        };
        let fd = match src {
            _ if !needed => return,
            Source::Fd(_) => return,
            Source::Path(p) => {
                let Ok(c) = CString::new(p) else { return };
                let fd = crate::sys::open_read(&c);
                if fd < 0 {
                    let why = format!(
                        "cannot open {} ({})",
                        c.to_string_lossy(),
                        super::out::strerror(sys::errno())
                    );
                    self.put_kept(
                        ts,
                        id,
                        build_id,
                        kernel_path,
                        b"",
                        0,
                        keep_status::FAILED,
                        why.as_bytes(),
                    );
                    return;
                }
                fd
            }
        };
        let (name, status, size, reason) = self.copy_out(fd, build_id, pinned);
        unsafe { libc::close(fd) };
        self.kept.insert(id);
        self.put_kept(
            ts,
            id,
            build_id,
            kernel_path,
            name.as_bytes(),
            size,
            status,
            reason.as_bytes(),
        );
    }

    /// Copies the file behind `fd` into the keep directory.
    fn copy_out(
        &mut self,
        fd: c_int,
        build_id: &[u8],
        pinned: Option<FileKey>,
    ) -> (String, u8, u64, String) {
        let name = if build_id.is_empty() {
            let (ma, mi, ino) = pinned.unwrap_or_default();
            format!("keep/noid-{ma}-{mi}-{ino}-{}", self.ag.pid)
        } else {
            format!("keep/{}", Hex(build_id))
        };
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return (
                String::new(),
                keep_status::FAILED,
                0,
                format!("fstat: {}", super::out::strerror(sys::errno())),
            );
        }
        let size = st.st_size as u64;
        let dir = match keep_dir(&self.ag.cfg.dir) {
            Ok(d) => d,
            Err(why) => return (String::new(), keep_status::FAILED, 0, why),
        };
        let dest = self.ag.cfg.dir.join(&name);
        if dest.exists() {
            return (name, keep_status::ALREADY, size, String::new());
        }
        let used = kept_bytes(&dir);
        if used.saturating_add(size) > self.ag.cfg.keep_max {
            let why = format!(
                "{} kept already, {size} more would pass MAPAGENT_KEEP_MAX={}",
                used, self.ag.cfg.keep_max
            );
            return (String::new(), keep_status::SKIPPED_CAP, size, why);
        }
        match copy_fd(fd, &dest, size) {
            Ok(()) => (name, keep_status::KEPT, size, String::new()),
            Err(e) if e == libc::EEXIST => (name, keep_status::ALREADY, size, String::new()),
            Err(e) => (
                String::new(),
                keep_status::FAILED,
                size,
                format!("writing {}: {}", dest.display(), super::out::strerror(e)),
            ),
        }
    }

    /// Records that image `id` would have been kept but was not (`why`).
    pub(super) fn put_kept_failed(
        &mut self,
        ts: u64,
        id: u64,
        build_id: &[u8],
        path: &[u8],
        why: &[u8],
    ) {
        if unreachable_by_path(path, self.loaded.get(&id).and_then(|i| i.pinned)) {
            self.put_kept(ts, id, build_id, path, b"", 0, keep_status::FAILED, why);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn put_kept(
        &mut self,
        ts: u64,
        id: u64,
        build_id: &[u8],
        path: &[u8],
        file: &[u8],
        size: u64,
        status: u8,
        reason: &[u8],
    ) {
        if status != keep_status::KEPT && status != keep_status::ALREADY {
            tracing::warn!(path = %String::from_utf8_lossy(path), reason = %String::from_utf8_lossy(reason), "image not kept");
        }
        self.out.put(&Record::KeptImage(rec::KeptImage {
            ts,
            id,
            build_id: Hex(build_id),
            path: Bytes(path),
            file: Bytes(file),
            size,
            status,
            reason: Bytes(reason),
        }));
    }
}

/// Bytes already kept in `dir` (by every process writing there), by getdents64 and fstatat.
fn kept_bytes(dir: &std::path::Path) -> u64 {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return 0;
    }
    let mut total = 0u64;
    let mut buf = vec![0u8; 16384];
    loop {
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 <= n as usize {
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = &buf[off + 19..(off + reclen).min(n as usize)];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                if let Ok(cn) = CString::new(name) {
                    let mut st: libc::stat = unsafe { core::mem::zeroed() };
                    if unsafe { libc::fstatat(fd, cn.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }
                        == 0
                    {
                        total = total.saturating_add(st.st_size as u64);
                    }
                }
            }
            off += reclen;
        }
    }
    unsafe { libc::close(fd) };
    total
}

/// MAPAGENT_DIR/keep, made 0700 like the directory itself, and refused unless it is a real
/// directory of ours that nobody else can write (a planted symlink would send the copies
/// wherever it points).
fn keep_dir(dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let keep = dir.join("keep");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&keep);
    let m = std::fs::symlink_metadata(&keep).map_err(|e| format!("{}: {e}", keep.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!(
            "{}: not a directory (a symlink?); nothing kept",
            keep.display()
        ));
    }
    if m.uid() != unsafe { libc::geteuid() } || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{}: not ours, or writable by others; nothing kept",
            keep.display()
        ));
    }
    Ok(keep)
}

/// Copies `size` bytes from `fd` into a new file at `dest` (O_EXCL: concurrent keepers of the
/// same build-id do not clobber each other; a partial copy is removed).
fn copy_fd(fd: c_int, dest: &std::path::Path, size: u64) -> Result<(), c_int> {
    let c = CString::new(dest.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    let tmp =
        CString::new([dest.as_os_str().as_bytes(), b".tmp"].concat()).map_err(|_| libc::EINVAL)?;
    let out = unsafe {
        libc::open(
            tmp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if out < 0 {
        return Err(sys::errno());
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let res = loop {
        if off >= size {
            break Ok(());
        }
        let want = buf.len().min((size - off) as usize);
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), want, off as libc::off_t) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            break Err(sys::errno());
        }
        if n == 0 {
            break Ok(());
        }
        if let Err(e) = sys::write_all(out, &buf[..n as usize]) {
            break Err(e);
        }
        off += n as u64;
    };
    unsafe { libc::close(out) };
    let res = res.and_then(|()| {
        // link(2) refuses to replace: the first keeper of a build-id wins.
        if unsafe { libc::link(tmp.as_ptr(), c.as_ptr()) } != 0 {
            Err(sys::errno())
        } else {
            Ok(())
        }
    });
    unsafe { libc::unlink(tmp.as_ptr()) };
    res
}

const ELF_MAX: u64 = 256 << 20;

/// Copies `len` bytes at `addr` of our own address space without risking a fault (a region the
/// application just unmapped gives EFAULT).
fn read_self(addr: u64, buf: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let n = unsafe { libc::process_vm_readv(sys::target_ns(), &local, 1, &remote, 1, 0) };
    n == buf.len() as isize
}

/// Size of an ELF file image from its header: the furthest of the section headers, program
/// headers and the segments' file ranges.
fn elf_file_size(h: &[u8; 64], addr: u64, limit: u64) -> Option<u64> {
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
    if h[..4] != *b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let (phoff, shoff, phentsize, phnum, shentsize, shnum) = (
        u64_at(32),
        u64_at(40),
        u16_at(54),
        u16_at(56),
        u16_at(58),
        u16_at(60),
    );
    let mut size = shoff
        .checked_add(shentsize.checked_mul(shnum)?)?
        .max(phoff.checked_add(phentsize.checked_mul(phnum)?)?);
    if phentsize == 56 && phnum <= 64 {
        let mut ph = vec![0u8; (56 * phnum) as usize];
        if read_self(addr.checked_add(phoff)?, &mut ph) {
            for p in ph.chunks_exact(56) {
                let off = u64::from_le_bytes(p[8..16].try_into().ok()?);
                let filesz = u64::from_le_bytes(p[32..40].try_into().ok()?);
                size = size.max(off.saturating_add(filesz));
            }
        }
    }
    (size > 64 && size <= limit).then_some(size)
}

impl Writer {
    /// An anonymous region made executable that starts with an ELF image (code copied into
    /// memory by an in-memory loader): keep the image, so its symbols can name samples there
    /// (mapagent perf-map). Recorded as a KeptImage with path "//anon" and id = its address.
    pub(super) fn keep_anon_elf(&mut self, ts: u64, addr: u64) {
        let Some(r) = self.model.space.find(addr).cloned() else {
            return;
        };
        if r.is_file() || r.start != addr || self.kept.contains(&addr) {
            return;
        }
        let mut h = [0u8; 64];
        if !read_self(addr, &mut h) {
            return;
        }
        let Some(size) = elf_file_size(&h, addr, r.len().min(ELF_MAX)) else {
            return;
        };
        let mut image = vec![0u8; size as usize];
        if !read_self(addr, &mut image) {
            self.kept.insert(addr);
            let why = b"unmapped before it could be read";
            self.put_kept(
                ts,
                addr,
                b"",
                b"//anon",
                b"",
                size,
                keep_status::FAILED,
                why,
            );
            return;
        }
        let bid = elf_build_id(&image).unwrap_or_default();
        self.kept.insert(addr);
        let name = if bid.is_empty() {
            format!("keep/anon-{}-{addr:x}", self.ag.pid)
        } else {
            format!("keep/{}", Hex(&bid))
        };
        let dest = self.ag.cfg.dir.join(&name);
        let kept_dir = keep_dir(&self.ag.cfg.dir);
        let (status, why) = if let Err(why) = kept_dir {
            (keep_status::FAILED, why)
        } else if dest.exists() {
            (keep_status::ALREADY, String::new())
        } else if kept_bytes(&self.ag.cfg.dir.join("keep")).saturating_add(size)
            > self.ag.cfg.keep_max
        {
            (
                keep_status::SKIPPED_CAP,
                format!("MAPAGENT_KEEP_MAX={} reached", self.ag.cfg.keep_max),
            )
        } else {
            match std::fs::write(&dest, &image) {
                Ok(()) => (keep_status::KEPT, String::new()),
                Err(e) => (
                    keep_status::FAILED,
                    format!("writing {}: {e}", dest.display()),
                ),
            }
        };
        let file = if status <= keep_status::ALREADY {
            name.as_bytes()
        } else {
            b""
        };
        self.put_kept(
            ts,
            addr,
            &bid,
            b"//anon",
            file,
            size,
            status,
            why.as_bytes(),
        );
    }
}

/// The GNU build-id note of an ELF file image, from its section headers.
fn elf_build_id(f: &[u8]) -> Option<Vec<u8>> {
    use object::read::elf::{FileHeader, SectionHeader};
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(f).ok()?;
    let e = hdr.endian().ok()?;
    let sections = hdr.sections(e, f).ok()?;
    for s in sections.iter() {
        if let Ok(Some(mut notes)) = s.notes(e, f) {
            while let Ok(Some(n)) = notes.next() {
                if n.name() == b"GNU" && n.n_type(e) == object::elf::NT_GNU_BUILD_ID {
                    return Some(n.desc().to_vec());
                }
            }
        }
    }
    None
}
