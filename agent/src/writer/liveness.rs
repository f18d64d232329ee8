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

    /// The wait status of the exited process: from the pidfd (PIDFD_GET_INFO with
    /// PIDFD_INFO_EXIT, Linux 6.15+), which keeps it after the parent reaped the process;
    /// else field 52 of stat (Linux 3.5+), which needs it still a zombie.
    pub fn exit_status(&self) -> Option<i32> {
        self.status_from_pidfd().or_else(|| self.status_from_stat())
    }

    fn status_from_pidfd(&self) -> Option<i32> {
        if self.pidfd < 0 {
            return None;
        }
        let mut info = PidfdInfo {
            mask: PIDFD_INFO_EXIT,
            ..PidfdInfo::default()
        };
        // SAFETY: the kernel fills at most size_of::<PidfdInfo>() bytes (the size is in the
        // request number); an older kernel fails with ENOTTY or EINVAL.
        let r = unsafe { libc::ioctl(self.pidfd, PIDFD_GET_INFO, &mut info as *mut PidfdInfo) };
        (r == 0 && info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code)
    }

    fn status_from_stat(&self) -> Option<i32> {
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

/// struct pidfd_info of <linux/pidfd.h> (Linux 6.15).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
    coredump_mask: u32,
    spare: u32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// _IOWR(0xFF, 11, struct pidfd_info)
const PIDFD_GET_INFO: libc::c_ulong =
    (3 << 30) | ((core::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
