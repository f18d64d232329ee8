//! Whether the recorded process still runs, seen from the collector: a pidfd (readable once
//! the process has exited), and how it ended, from /proc/PID/stat while it is a zombie.

pub struct Alive {
    pidfd: i32,
    /// /proc/PID, opened at start: a later process with the same pid is never mistaken for it.
    dir: i32,
    gone: bool,
}

impl Alive {
    pub fn open(pid: i32) -> Alive {
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        let dir = unsafe {
            libc::open(
                crate::sys::proc_path("").as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        Alive {
            pidfd,
            dir,
            gone: pidfd < 0 && dir < 0,
        }
    }

    /// False once the process has exited (for good: the answer never flips back).
    pub fn check(&mut self) -> bool {
        if self.gone {
            return false;
        }
        if self.pidfd >= 0 {
            let mut p = libc::pollfd {
                fd: self.pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut p, 1, 0) } > 0 && p.revents != 0 {
                self.gone = true;
            }
        } else if self.stat().is_none() {
            self.gone = true;
        }
        !self.gone
    }

    fn stat(&self) -> Option<Vec<u8>> {
        if self.dir < 0 {
            return None;
        }
        let fd =
            unsafe { libc::openat(self.dir, c"stat".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let mut buf = Vec::new();
        let r = crate::sys::pread_all(fd, &mut buf);
        unsafe { libc::close(fd) };
        r.ok().map(|_| buf)
    }

    /// The wait status the kernel keeps for the exited process (field 52 of stat, Linux 3.5+),
    /// if it has not been reaped yet.
    pub fn exit_status(&self) -> Option<i32> {
        let buf = self.stat()?;
        // Fields after the command name, which may itself hold spaces and parentheses.
        let close = buf.iter().rposition(|&c| c == b')')?;
        let rest = std::str::from_utf8(buf.get(close + 2..)?).ok()?;
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        // rest starts at field 3 (state); field 52 is index 49.
        if fields.first() != Some(&"Z") && fields.first() != Some(&"X") {
            return None;
        }
        fields.get(49)?.parse().ok()
    }
}
