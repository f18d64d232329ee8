//! The record file: <dir>/<pid>.mrec, created O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600. A pid
//! that already has a file (it exec'd, or an earlier run left one) gets <pid>.<n>.mrec.
//! Frames are buffered and written whole, once per writer cycle.

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
}

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
            // Above the low numbers: an application that closes 0 and dup2()s onto it must
            // not hit the record file.
            let fd = unsafe {
                crate::sys::high_fd(libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600,
                ))
            };
            if fd >= 0 {
                let mut buf = Vec::with_capacity(256 << 10);
                frame::encode_file_header(&mut buf);
                return Ok(Out { fd, path, gen, buf });
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
        let r = sys::write_all(self.fd, &self.buf);
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf.shrink_to(256 << 10);
        }
        r.map_err(|e| format!("writing {}: {}", self.path.display(), strerror(e)))
    }

    pub fn close(&mut self) {
        if self.fd >= 0 {
            unsafe { libc::close(self.fd) };
            self.fd = -1;
        }
    }
}
