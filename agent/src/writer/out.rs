//! The record file: <dir>/<pid>.mrec, created O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600. A pid
//! that already has a file (it exec'd, or an earlier run left one) gets <pid>.<n>.mrec.
//! Frames are buffered and written whole, once per writer cycle.
//!
//! The file keeps a little disk space reserved past its end (fallocate, KEEP_SIZE), so that
//! when the disk fills the collector can still write what it holds, release the reserve and
//! put its one line in mapagent.log saying why the record stops there.

use crate::sys;
use core::ffi::c_int;
use mapagent_record::{frame, Record};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Out {
    pub fd: c_int,
    pub path: PathBuf,
    pub gen: u32,
    buf: Vec<u8>,
    /// Bytes written, and the end of the space reserved for the file (0: not supported).
    written: u64,
    reserved: u64,
}

/// Space kept reserved past the end of the file: the next flush and the log line fit in it.
const RESERVE_MIN: u64 = 16 << 10;
/// Of the reserve, kept back for mapagent.log's line when the disk is full: two pages, as the
/// hole punched from an unaligned end of file frees only the whole pages inside it.
const LOG_ROOM: u64 = 8192;
/// Reserved at once when there is room (one fallocate per this many bytes written).
const RESERVE_STEP: u64 = 1 << 20;

fn mkdir_p(dir: &Path) -> Result<(), c_int> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    if unsafe { libc::mkdir(c.as_ptr(), 0o700) } == 0 {
        return Ok(());
    }
    match sys::errno() {
        libc::EEXIST => Ok(()),
        libc::ENOENT => {
            if let Some(parent) = dir.parent() {
                mkdir_p(parent)?;
            }
            if unsafe { libc::mkdir(c.as_ptr(), 0o700) } == 0 || sys::errno() == libc::EEXIST {
                Ok(())
            } else {
                Err(sys::errno())
            }
        }
        e => Err(e),
    }
}

pub fn strerror(e: c_int) -> String {
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) }
        .to_string_lossy()
        .into_owned()
}

impl Out {
    pub fn create(dir: &Path, pid: i32) -> Result<Out, String> {
        mkdir_p(dir).map_err(|e| format!("cannot create {}: {}", dir.display(), strerror(e)))?;
        for gen in 0..1000u32 {
            let name = if gen == 0 {
                format!("{pid}.mrec")
            } else {
                format!("{pid}.{gen}.mrec")
            };
            let path = dir.join(name);
            let c =
                CString::new(path.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd >= 0 {
                let mut buf = Vec::with_capacity(256 << 10);
                frame::encode_file_header(&mut buf);
                return Ok(Out {
                    fd,
                    path,
                    gen,
                    buf,
                    written: 0,
                    reserved: u64::MAX,
                });
            }
            if sys::errno() != libc::EEXIST {
                return Err(format!(
                    "cannot create {}: {}",
                    path.display(),
                    strerror(sys::errno())
                ));
            }
        }
        Err(format!(
            "too many record files for pid {pid} in {}",
            dir.display()
        ))
    }

    pub fn put(&mut self, r: &Record<'_>) {
        r.encode(&mut self.buf);
    }

    /// Writes out what is buffered; on error the caller disables the agent.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut take = self.buf.len();
        let mut full = false;
        let need = self.written + take as u64 + RESERVE_MIN;
        if need > self.reserved || self.reserved == u64::MAX {
            match self.reserve(need) {
                Ok(()) => {}
                Err(libc::ENOSPC) if self.reserved != u64::MAX => {
                    // What fits in the reserve is written, less room for the log line
                    // (released below); a frame cut here reads up to the cut.
                    let room = self.reserved.saturating_sub(self.written + LOG_ROOM);
                    take = take.min(room as usize);
                    full = true;
                }
                Err(libc::ENOSPC) => full = true,
                Err(_) => self.reserved = 0, // this filesystem cannot: write without one
            }
        }
        let r = sys::write_all(self.fd, &self.buf[..take]);
        self.written += take as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf.shrink_to(256 << 10);
        }
        if full {
            self.release();
            return Err(format!(
                "writing {}: {}",
                self.path.display(),
                strerror(libc::ENOSPC)
            ));
        }
        r.map_err(|e| format!("writing {}: {}", self.path.display(), strerror(e)))
    }

    /// Reserves space up to at least `need`, a step ahead when there is room.
    fn reserve(&mut self, need: u64) -> Result<(), c_int> {
        if self.reserved == 0 {
            return Ok(());
        }
        let mode = libc::FALLOC_FL_KEEP_SIZE;
        let at = self.written as libc::off_t;
        for end in [need.max(self.written + RESERVE_STEP), need] {
            if unsafe { libc::fallocate(self.fd, mode, at, (end - self.written) as libc::off_t) }
                == 0
            {
                self.reserved = end;
                return Ok(());
            }
            if sys::errno() != libc::ENOSPC {
                return Err(sys::errno());
            }
        }
        Err(libc::ENOSPC)
    }

    /// Gives the reserve past the end of the file back to the filesystem.
    fn release(&mut self) {
        if self.reserved > self.written && self.reserved != u64::MAX {
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            let len = (self.reserved - self.written) as libc::off_t;
            unsafe { libc::fallocate(self.fd, mode, self.written as libc::off_t, len) };
        }
        self.reserved = self.written;
    }

    pub fn close(&mut self) {
        if self.fd >= 0 {
            self.release();
            unsafe { libc::close(self.fd) };
            self.fd = -1;
        }
    }
}
