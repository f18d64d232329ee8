//! System V shared memory segments, the same on every kernel: shmctl(SHM_INFO) for the highest
//! index in use, then SHM_STAT_ANY per index (Linux 4.17+: no permission check, so segments
//! of other users with mode 0600 are listed too), SHM_STAT where the kernel lacks it, and
//! /proc/sysvipc/shm (through the procfs crate) as a last resort and for rss/swap.

use crate::error::{Error, Result};
use serde::Serialize;

// <linux/shm.h>: not in the libc crate.
const SHM_STAT: libc::c_int = 13;
const SHM_INFO: libc::c_int = 14;
const SHM_STAT_ANY: libc::c_int = 15;
/// shm_perm.mode flags: marked for destruction (IPC_RMID with attachments), locked in RAM.
const SHM_DEST: u32 = 0o1000;
const SHM_LOCKED: u32 = 0o2000;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Segment {
    pub key: i32,
    pub shmid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits with the SHM_DEST (0o1000) and SHM_LOCKED (0o2000) flags.
    pub mode: u32,
    pub dest: bool,
    pub locked: bool,
    pub size: u64,
    pub nattch: u64,
    /// Creator and last shmat/shmdt caller.
    pub cpid: i32,
    pub lpid: i32,
    /// Seconds since the epoch; 0: never.
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    /// Bytes resident and swapped, from /proc/sysvipc/shm (None where it is not readable).
    pub rss: Option<u64>,
    pub swap: Option<u64>,
}

/// How the list was read.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Source {
    ShmStatAny,
    ShmStat,
    ProcSysvipc,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::ShmStatAny => "shmctl(SHM_STAT_ANY)",
            Source::ShmStat => "shmctl(SHM_STAT)",
            Source::ProcSysvipc => "/proc/sysvipc/shm",
        }
    }
}

/// Every segment in this IPC namespace, by shmid.
pub fn list() -> Result<(Vec<Segment>, Source)> {
    let proc = procfs_segments();
    let mut out = match by_shmctl() {
        Some(v) => v,
        None => match &proc {
            Some(p) => (p.clone(), Source::ProcSysvipc),
            None => {
                return Err(Error::failure(
                    "cannot list System V shared memory: shmctl(SHM_INFO) failed and /proc/sysvipc/shm is not readable",
                ))
            }
        },
    };
    // rss and swap exist only in /proc (the kernel computes them for it).
    if let Some(p) = &proc {
        for s in &mut out.0 {
            if let Some(q) = p.iter().find(|q| q.shmid == s.shmid) {
                s.rss = q.rss;
                s.swap = q.swap;
            }
        }
    }
    out.0.sort_by_key(|s| s.shmid);
    Ok(out)
}

fn by_shmctl() -> Option<(Vec<Segment>, Source)> {
    // SAFETY: SHM_INFO fills a struct shm_info, smaller than shmid_ds, through the same pointer.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    let max = unsafe { libc::shmctl(0, SHM_INFO, &mut ds) };
    if max < 0 {
        return None;
    }
    for (cmd, source) in [
        (SHM_STAT_ANY, Source::ShmStatAny),
        (SHM_STAT, Source::ShmStat),
    ] {
        let mut out = Vec::new();
        let mut unsupported = false;
        for idx in 0..=max {
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: a valid shmid_ds to fill; with *_STAT the first argument is an index.
            let id = unsafe { libc::shmctl(idx, cmd, &mut ds) };
            if id < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    // A hole in the index space, or a segment we may not see (SHM_STAT).
                    Some(libc::EINVAL) | Some(libc::EACCES) | Some(libc::EIDRM) => {
                        // EINVAL on index 0..=max for every index means the command is unknown.
                        continue;
                    }
                    _ => {
                        unsupported = true;
                        break;
                    }
                }
            }
            out.push(segment(id, &ds));
        }
        if unsupported {
            continue;
        }
        // A kernel without SHM_STAT_ANY answers EINVAL for every index, holes or not.
        if out.is_empty() && cmd == SHM_STAT_ANY && !stat_any_known() {
            continue;
        }
        return Some((out, source));
    }
    None
}

/// Whether the kernel knows SHM_STAT_ANY (4.17+), asked on a segment made for the purpose
/// only when the listing came back empty.
fn stat_any_known() -> bool {
    // SAFETY: a private 1-byte segment, removed at once.
    unsafe {
        let id = libc::shmget(libc::IPC_PRIVATE, 1, 0o600);
        if id < 0 {
            return true; // cannot tell: trust the empty answer
        }
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        let max = libc::shmctl(0, SHM_INFO, &mut ds);
        let mut known = false;
        for idx in 0..=max.max(0) {
            if libc::shmctl(idx, SHM_STAT_ANY, &mut ds) == id {
                known = true;
                break;
            }
        }
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
        known
    }
}

// shmatt_t is u64 here but c_ulong elsewhere: the cast is for other targets.
#[allow(clippy::unnecessary_cast)]
fn segment(id: i32, ds: &libc::shmid_ds) -> Segment {
    let mode = ds.shm_perm.mode as u32;
    Segment {
        key: ds.shm_perm.__key,
        shmid: id,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        mode,
        dest: mode & SHM_DEST != 0,
        locked: mode & SHM_LOCKED != 0,
        size: ds.shm_segsz as u64,
        nattch: ds.shm_nattch as u64,
        cpid: ds.shm_cpid,
        lpid: ds.shm_lpid,
        atime: ds.shm_atime,
        dtime: ds.shm_dtime,
        ctime: ds.shm_ctime,
        rss: None,
        swap: None,
    }
}

fn procfs_segments() -> Option<Vec<Segment>> {
    use procfs::Current;
    let segs = procfs::SharedMemorySegments::current().ok()?;
    Some(
        segs.0
            .into_iter()
            .map(|q| {
                // The kernel prints perms in octal; procfs reads the digits as decimal.
                let mode = u32::from_str_radix(&q.perms.to_string(), 8).unwrap_or(0);
                Segment {
                    key: q.key,
                    shmid: q.shmid as i32,
                    uid: q.uid as u32,
                    gid: q.gid as u32,
                    cuid: q.cuid as u32,
                    cgid: q.cgid as u32,
                    mode,
                    dest: mode & SHM_DEST != 0,
                    locked: mode & SHM_LOCKED != 0,
                    size: q.size,
                    nattch: q.nattch as u64,
                    cpid: q.cpid,
                    lpid: q.lpid,
                    atime: q.atime as i64,
                    dtime: q.dtime as i64,
                    ctime: q.ctime as i64,
                    rss: Some(q.rss),
                    swap: Some(q.swap),
                }
            })
            .collect(),
    )
}

/// "rw-r-----" from permission bits.
pub fn perms(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn perms_text() {
        assert_eq!(super::perms(0o640), "rw-r-----");
        assert_eq!(super::perms(0o1600 & 0o777), "rw-------");
    }
}
