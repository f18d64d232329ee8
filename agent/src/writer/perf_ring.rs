//! The kernel's own reports of the process's VMAs, the way `perf record` learns about
//! mappings: one software dummy perf event per CPU on the process, inherited by every thread it
//! starts later (not by fork children: each has its own collector), reporting each VMA that an
//! mmap, mprotect, brk or shmat creates or changes as PERF_RECORD_MMAP2 into a ring the
//! collector maps and drains. The collector opens the events from outside: the application
//! holds no descriptor of them.

use mapagent_record::region::Region;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_DUMMY: u64 = 9;
const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_TIME: u64 = 1 << 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
// perf_event_attr's bit field.
const INHERIT: u64 = 1 << 1;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const MMAP: u64 = 1 << 8;
const MMAP_DATA: u64 = 1 << 17;
const SAMPLE_ID_ALL: u64 = 1 << 18;
const MMAP2: u64 = 1 << 23;
const USE_CLOCKID: u64 = 1 << 25;
const INHERIT_THREAD: u64 = 1 << 35;

const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_MMAP2: u32 = 10;
const PERF_RECORD_MISC_MMAP_BUILD_ID: u16 = 1 << 14;

/// perf_event_attr up to PERF_ATTR_SIZE_VER5 (112 bytes: clockid is the newest field used).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved2: u16,
}
const _: () = assert!(core::mem::size_of::<PerfEventAttr>() == 112);

/// Offsets in perf_event_mmap_page.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

/// What the kernel said.
pub enum Report {
    /// A VMA as it is now (after the call that made or changed it).
    Map { ts: u64, tid: u32, region: Region },
    /// Reports it dropped: the ring was full.
    Lost { ts: u64, count: u64 },
}

impl Report {
    pub fn ts(&self) -> u64 {
        match self {
            Report::Map { ts, .. } | Report::Lost { ts, .. } => *ts,
        }
    }
}

struct CpuRing {
    fd: i32,
    base: *mut u8,
    len: usize,
    data_off: usize,
    data_size: usize,
}

pub struct KernelReports {
    rings: Vec<CpuRing>,
    /// Data pages per CPU actually mapped (fewer than asked if the locked-memory limit said
    /// so).
    pub pages: u32,
    pid: u32,
    scratch: Vec<u8>,
}

unsafe impl Send for KernelReports {}

impl Drop for KernelReports {
    fn drop(&mut self) {
        for r in &self.rings {
            unsafe {
                libc::munmap(r.base.cast(), r.len);
                libc::close(r.fd);
            }
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn open_one(pid: i32, cpu: i32) -> Result<i32, i32> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: core::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_DUMMY,
        sample_period: 1,
        sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
        flags: INHERIT
            | INHERIT_THREAD
            | EXCLUDE_KERNEL
            | EXCLUDE_HV
            | MMAP
            | MMAP_DATA
            | MMAP2
            | SAMPLE_ID_ALL
            | USE_CLOCKID,
        clockid: libc::CLOCK_MONOTONIC,
        ..Default::default()
    };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            cpu,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as i32)
    }
}

impl KernelReports {
    /// Opens the reports on process `pid` (as the collector's pid namespace names it) with
    /// `pages` data pages per CPU, fewer if the locked-memory limit allows no more. All CPUs
    /// or none: a CPU without its event would lose the reports of threads running there.
    pub fn open(pid: i32, pages: u32) -> Result<KernelReports, i32> {
        let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.clamp(1, 4096) as i32;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let mut fds = Vec::new();
        for cpu in 0..ncpu {
            match open_one(pid, cpu) {
                Ok(fd) => fds.push(fd),
                // An offline or absent CPU runs nothing.
                Err(libc::ENODEV) | Err(libc::ENXIO) => {}
                Err(e) => {
                    close_all(&fds);
                    return Err(e);
                }
            }
        }
        if fds.is_empty() {
            return Err(libc::ENODEV);
        }
        let mut pages = pages.max(1).next_power_of_two();
        loop {
            match map_all(&fds, pages, page) {
                Ok(rings) => {
                    return Ok(KernelReports {
                        rings,
                        pages,
                        pid: pid as u32,
                        scratch: Vec::new(),
                    })
                }
                // perf_event_mlock_kb and RLIMIT_MEMLOCK: smaller rings may still fit.
                Err(libc::EPERM) | Err(libc::ENOMEM) if pages > 1 => pages /= 2,
                Err(e) => {
                    close_all(&fds);
                    return Err(e);
                }
            }
        }
    }

    /// Appends every report the kernel has written since the last call.
    pub fn take(&mut self, out: &mut Vec<Report>) {
        for i in 0..self.rings.len() {
            self.take_ring(i, out);
        }
    }

    fn take_ring(&mut self, i: usize, out: &mut Vec<Report>) {
        let (base, data_off, size) = {
            let r = &self.rings[i];
            (r.base, r.data_off, r.data_size)
        };
        let head_p = unsafe { &*(base.add(DATA_HEAD) as *const core::sync::atomic::AtomicU64) };
        let tail_p = unsafe { &*(base.add(DATA_TAIL) as *const core::sync::atomic::AtomicU64) };
        let head = head_p.load(core::sync::atomic::Ordering::Acquire);
        let mut tail = tail_p.load(core::sync::atomic::Ordering::Relaxed);
        let data = unsafe { core::slice::from_raw_parts(base.add(data_off), size) };
        let mask = size as u64 - 1;
        while tail.wrapping_add(8) <= head {
            let mut hdr = [0u8; 8];
            copy_wrapped(data, (tail & mask) as usize, &mut hdr);
            let ty = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let misc = u16::from_le_bytes([hdr[4], hdr[5]]);
            let len = u16::from_le_bytes([hdr[6], hdr[7]]) as u64;
            if len < 8 || tail.wrapping_add(len) > head {
                // A torn or impossible header: skip what is there rather than spin.
                tail = head;
                break;
            }
            self.scratch.resize(len as usize, 0);
            copy_wrapped(data, (tail & mask) as usize, &mut self.scratch);
            if let Some(r) = parse(ty, misc, &self.scratch, self.pid) {
                out.push(r);
            }
            tail = tail.wrapping_add(len);
        }
        tail_p.store(tail, core::sync::atomic::Ordering::Release);
    }
}

fn close_all(fds: &[i32]) {
    for &fd in fds {
        unsafe { libc::close(fd) };
    }
}

fn map_all(fds: &[i32], pages: u32, page: usize) -> Result<Vec<CpuRing>, i32> {
    let len = (pages as usize + 1) * page;
    let mut rings = Vec::with_capacity(fds.len());
    for &fd in fds {
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let e = errno();
            for r in &rings {
                let r: &CpuRing = r;
                unsafe { libc::munmap(r.base.cast(), r.len) };
            }
            return Err(e);
        }
        let base = base as *mut u8;
        let rd = |off: usize| unsafe { core::ptr::read_volatile(base.add(off) as *const u64) };
        let (mut data_off, mut data_size) = (rd(DATA_OFFSET) as usize, rd(DATA_SIZE) as usize);
        if data_off == 0 || data_size == 0 || data_off + data_size > len {
            // Kernels before 4.1 leave these zero: the data follows the first page.
            (data_off, data_size) = (page, pages as usize * page);
        }
        rings.push(CpuRing {
            fd,
            base,
            len,
            data_off,
            data_size,
        });
    }
    Ok(rings)
}

fn copy_wrapped(data: &[u8], at: usize, out: &mut [u8]) {
    let first = out.len().min(data.len() - at);
    out[..first].copy_from_slice(&data[at..at + first]);
    let rest = out.len() - first;
    if rest > 0 {
        out[first..].copy_from_slice(&data[..rest]);
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// One record (header included). The sample_id trailer (TID, TIME) is its last 16 bytes.
fn parse(ty: u32, misc: u16, b: &[u8], pid: u32) -> Option<Report> {
    let n = b.len();
    if n < 8 + 16 {
        return None;
    }
    let ts = u64_at(b, n - 8)?;
    match ty {
        PERF_RECORD_LOST => Some(Report::Lost {
            ts,
            count: u64_at(b, 16)?,
        }),
        PERF_RECORD_MMAP2 => {
            if u32_at(b, 8)? != pid {
                return None;
            }
            let tid = u32_at(b, 12)?;
            let (addr, len, pgoff) = (u64_at(b, 16)?, u64_at(b, 24)?, u64_at(b, 32)?);
            let (maj, min, ino) = if misc & PERF_RECORD_MISC_MMAP_BUILD_ID != 0 {
                (0, 0, 0)
            } else {
                (u32_at(b, 40)?, u32_at(b, 44)?, u64_at(b, 48)?)
            };
            let (prot, flags) = (u32_at(b, 64)?, u32_at(b, 68)?);
            let name = b.get(72..n - 16)?;
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            let mut region = Region {
                start: addr,
                end: addr.checked_add(len)?,
                prot: (prot & 7) as u8,
                shared: flags & libc::MAP_SHARED as u32 != 0,
                offset: pgoff,
                dev_major: maj,
                dev_minor: min,
                ino,
                name: if name == b"//anon" {
                    Vec::new()
                } else {
                    name.to_vec()
                },
                src: 0,
                vmf: 0,
            };
            if !region.is_file() {
                // maps prints 0 where perf gives the VMA's page offset (its address).
                (region.offset, region.dev_major, region.dev_minor) = (0, 0, 0);
            }
            Some(Report::Map { ts, tid, region })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mmap2(pid: u32, name: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&PERF_RECORD_MMAP2.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes()); // size, patched below
        b.extend_from_slice(&pid.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        for v in [0x7000u64, 0x2000, 0x7000] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        let mut n = name.to_vec();
        n.push(0);
        while n.len() % 8 != 0 {
            n.push(0);
        }
        b.extend_from_slice(&n);
        b.extend_from_slice(&pid.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&12345u64.to_le_bytes());
        let len = b.len() as u16;
        b[6..8].copy_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn anonymous_report_reads_as_maps_does() {
        let b = mmap2(42, b"//anon");
        let Some(Report::Map { ts, tid, region }) = parse(PERF_RECORD_MMAP2, 0, &b, 42) else {
            panic!("not parsed");
        };
        assert_eq!((ts, tid), (12345, 7));
        assert_eq!((region.start, region.end, region.prot), (0x7000, 0x9000, 3));
        assert!(region.name.is_empty() && region.offset == 0 && !region.shared);
        assert!(
            parse(PERF_RECORD_MMAP2, 0, &b, 43).is_none(),
            "another process's"
        );
        assert!(
            parse(PERF_RECORD_MMAP2, 0, &b[..20], 42).is_none(),
            "cut short"
        );
    }

    #[test]
    fn wrapped_copy() {
        let data = [1u8, 2, 3, 4];
        let mut out = [0u8; 3];
        copy_wrapped(&data, 3, &mut out);
        assert_eq!(out, [4, 1, 2]);
    }
}
