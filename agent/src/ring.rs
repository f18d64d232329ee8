//! The channel between the hooks (in the application) and the collector (a process of its own):
//! a memfd that both map MAP_SHARED. The application keeps no descriptor of it: it is mapped,
//! handed to the collector at spawn, and closed.
//!
//! Layout: a `Header` (the process's identity, the counters and request words both sides use,
//! the known-files set) and then a byte ring of frames. Everything is an offset, never a
//! pointer: the two processes map it at different addresses.
//!
//! Producers (any application thread) reserve a frame with a compare-and-swap on `head`, fill
//! it and publish it by writing its first word last. The collector is the only consumer: it
//! copies a frame out, zeroes it (so a reservation always starts on zeroes, and a frame not
//! published yet reads as 0) and only then moves `tail`. No lock, no allocation, no system call
//! on the producer side but an occasional futex wake; a full ring drops the frame and counts it.

use crate::event::Event;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

pub const MAGIC: u64 = 0x676e_6972_616d_7061; // "apmaring"
/// Bytes of MAPAGENT_* settings the header carries for the collector.
pub const ENV_MAX: usize = 16 << 10;
pub const EXE_MAX: usize = 4096;
pub const KNOWN_FILES: usize = 4096;
/// Largest payload one frame carries (a path, an image's headers, a label).
pub const PAYLOAD_MAX: usize = 8192;
/// Frame header: the publish word (len << 32 | 1) and the payload length.
const FRAME_HDR: usize = 16;

#[repr(C)]
pub struct Header {
    pub magic: u64,
    /// Layout check: both sides run the same library file, but say so.
    pub layout: u64,
    pub map_size: u64,
    pub data_off: u64,
    pub cap: u64,
    /// The pid as /proc names the process (the root namespace's, where /proc is the host's):
    /// the record file's name and every /proc path the collector reads.
    pub pid: i32,
    pub parent_pid: u32,
    pub origin: u32,
    pub exe_len: u32,
    /// getpid() in the process: the pid syscalls from the collector take (pidfd_open,
    /// process_vm_readv); it differs from `pid` inside a pid namespace (Chromium's sandbox).
    pub ns_pid: i32,
    pub _pad0: u32,
    pub origin_ts: u64,
    pub start_mono: u64,
    pub start_wall: u64,
    pub env_len: u64,
    /// The agent's allocator region in the application (for the Process record).
    pub arena_start: u64,
    pub arena_end: u64,
    /// Frames dropped since the collector last looked, and in all.
    pub lost: AtomicU64,
    pub lost_total: AtomicU64,
    /// Mapping calls started and finished: equal means none is in flight (see reconcile).
    pub started: AtomicU64,
    pub finished: AtomicU64,
    /// Calls with side effects the hooks cannot see (dlopen, dlclose, pthread_create).
    pub slow_started: AtomicU64,
    pub slow_finished: AtomicU64,
    /// Futex word the collector sleeps on (a shared futex: two processes).
    pub wake: AtomicU32,
    /// Set by a producer that woke the collector this cycle (one wake per cycle at most).
    pub woken: AtomicU32,
    /// The collector's pid once it runs; 0 before.
    pub collector: AtomicI32,
    /// The collector gave up (or never started): hooks stop recording.
    pub dead: AtomicU32,
    /// Futex word: the collector has its kernel reports running (or gave up on them); the
    /// starting thread waits for it, so no VMA made after the baseline goes unreported.
    pub kernel_ready: AtomicU32,
    pub _pad1: u32,
    pub ctl: crate::agent::Control,
    pub head: AtomicU64,
    pub tail: AtomicU64,
    pub env: [u8; ENV_MAX],
    pub exe: [u8; EXE_MAX],
    pub known: [AtomicU64; KNOWN_FILES],
}

fn layout_id() -> u64 {
    (core::mem::size_of::<Header>() as u64) << 32
        | (core::mem::size_of::<Event>() as u64) << 16
        | core::mem::offset_of!(Header, head) as u64
}

pub struct Ring {
    base: *mut u8,
    len: usize,
    /// The memfd's inode (collector side; 0 in the application).
    pub ino: u64,
}

unsafe impl Sync for Ring {}
unsafe impl Send for Ring {}

/// Who the ring's process is, for the collector.
pub struct Identity<'a> {
    pub pid: i32,
    pub ns_pid: i32,
    pub parent_pid: u32,
    pub origin: u8,
    pub origin_ts: u64,
    pub start_mono: u64,
    pub start_wall: u64,
    pub exe: &'a [u8],
    /// The MAPAGENT_* settings, NUL-separated NAME=VALUE.
    pub env: &'a [u8],
}

impl Ring {
    /// A new ring of at least `cap` bytes: a memfd, mapped shared, descriptor returned to the
    /// caller (who hands it to the collector and closes it).
    pub fn create(cap: usize) -> Result<(Ring, i32), &'static [u8]> {
        let cap = cap.next_power_of_two().clamp(64 << 10, 1 << 30);
        let data_off = (core::mem::size_of::<Header>() + 4095) & !4095;
        let len = data_off + cap;
        let fd = unsafe {
            libc::syscall(
                libc::SYS_memfd_create,
                c"mapagent-ring".as_ptr(),
                libc::MFD_CLOEXEC,
            )
        } as i32;
        if fd < 0 {
            return Err(b"memfd_create failed");
        }
        if unsafe { libc::ftruncate(fd, len as i64) } != 0 {
            unsafe { libc::close(fd) };
            return Err(b"cannot size the ring");
        }
        let ring = match Ring::map(fd, len) {
            Some(r) => r,
            None => {
                unsafe { libc::close(fd) };
                return Err(b"cannot map the ring");
            }
        };
        let h = ring.hdr_mut();
        h.magic = MAGIC;
        h.layout = layout_id();
        h.map_size = len as u64;
        h.data_off = data_off as u64;
        h.cap = cap as u64;
        Ok((ring, fd))
    }

    fn map(fd: i32, len: usize) -> Option<Ring> {
        let p = unsafe {
            crate::sys::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Ring {
            base: p.cast(),
            len,
            ino: 0,
        })
    }

    /// The collector's side: maps a ring it was handed and checks it.
    pub fn open(fd: i32) -> Result<Ring, &'static str> {
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err("no ring descriptor");
        }
        let len = st.st_size as usize;
        if len < core::mem::size_of::<Header>() + 4096 {
            return Err("ring too small");
        }
        let mut r = Ring::map(fd, len).ok_or("cannot map the ring")?;
        r.ino = st.st_ino;
        let h = r.hdr();
        let cap = h.cap as usize;
        if h.magic != MAGIC
            || h.layout != layout_id()
            || h.map_size as usize != len
            || !cap.is_power_of_two()
            || h.data_off as usize + cap != len
        {
            return Err("ring from another version of the agent");
        }
        Ok(r)
    }

    pub fn hdr(&self) -> &Header {
        unsafe { &*(self.base as *const Header) }
    }

    #[allow(clippy::mut_from_ref)]
    fn hdr_mut(&self) -> &mut Header {
        unsafe { &mut *(self.base as *mut Header) }
    }

    /// Fills the identity fields (application side, before the collector starts).
    pub fn set_identity(&self, id: &Identity<'_>) {
        let (exe, env) = (id.exe, id.env);
        let h = self.hdr_mut();
        h.pid = id.pid;
        h.ns_pid = id.ns_pid;
        h.parent_pid = id.parent_pid;
        h.origin = id.origin as u32;
        h.origin_ts = id.origin_ts;
        h.start_mono = id.start_mono;
        h.start_wall = id.start_wall;
        let n = exe.len().min(EXE_MAX);
        h.exe[..n].copy_from_slice(&exe[..n]);
        h.exe_len = n as u32;
        let n = env.len().min(ENV_MAX);
        h.env[..n].copy_from_slice(&env[..n]);
        h.env_len = n as u64;
        let (a, b) = crate::arena::range();
        h.arena_start = a;
        h.arena_end = b;
    }

    pub fn exe(&self) -> &[u8] {
        let h = self.hdr();
        &h.exe[..(h.exe_len as usize).min(EXE_MAX)]
    }

    pub fn env(&self) -> &[u8] {
        let h = self.hdr();
        &h.env[..(h.env_len as usize).min(ENV_MAX)]
    }

    #[inline]
    fn data(&self) -> *mut u8 {
        unsafe { self.base.add(self.hdr().data_off as usize) }
    }

    /// Unmaps (a fork child drops its parent's ring).
    pub unsafe fn unmap(&self) {
        crate::sys::munmap(self.base.cast(), self.len);
    }

    /// Copies `src` into the ring at byte position `pos` (wrapping).
    unsafe fn put_bytes(&self, pos: u64, src: &[u8]) {
        let cap = self.hdr().cap as usize;
        let at = pos as usize & (cap - 1);
        let first = src.len().min(cap - at);
        core::ptr::copy_nonoverlapping(src.as_ptr(), self.data().add(at), first);
        if first < src.len() {
            core::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data(), src.len() - first);
        }
    }

    unsafe fn get_bytes(&self, pos: u64, dst: &mut [u8]) {
        let cap = self.hdr().cap as usize;
        let at = pos as usize & (cap - 1);
        let first = dst.len().min(cap - at);
        core::ptr::copy_nonoverlapping(self.data().add(at), dst.as_mut_ptr(), first);
        if first < dst.len() {
            core::ptr::copy_nonoverlapping(
                self.data(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }

    unsafe fn zero(&self, pos: u64, len: usize) {
        let cap = self.hdr().cap as usize;
        let at = pos as usize & (cap - 1);
        let first = len.min(cap - at);
        core::ptr::write_bytes(self.data().add(at), 0, first);
        if first < len {
            core::ptr::write_bytes(self.data(), 0, len - first);
        }
    }

    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        let cap = self.hdr().cap;
        unsafe { &*(self.data().add((pos & (cap - 1)) as usize) as *const AtomicU64) }
    }

    /// Publishes one event with its payload; false if the ring is full (counted as lost).
    /// Never blocks, never allocates; async-signal-safe.
    #[inline]
    pub fn push(&self, ev: &Event, payload: &[u8]) -> bool {
        let h = self.hdr();
        // Hooks send at most PAYLOAD_MAX; the baseline's maps may be larger, up to a quarter
        // of the ring (cut there: the first reconcile completes it).
        let payload = &payload[..payload.len().min(h.cap as usize / 4)];
        let len = ((FRAME_HDR + core::mem::size_of::<Event>() + payload.len() + 7) & !7) as u64;
        let mut head = h.head.load(Ordering::Relaxed);
        loop {
            let tail = h.tail.load(Ordering::Acquire);
            if head.wrapping_sub(tail) + len > h.cap {
                h.lost.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match h.head.compare_exchange_weak(
                head,
                head + len,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        unsafe {
            let ev_bytes = core::slice::from_raw_parts(
                (ev as *const Event).cast::<u8>(),
                core::mem::size_of::<Event>(),
            );
            self.put_bytes(head + 8, &(payload.len() as u64).to_le_bytes());
            self.put_bytes(head + FRAME_HDR as u64, ev_bytes);
            self.put_bytes(head + (FRAME_HDR + ev_bytes.len()) as u64, payload);
        }
        self.word(head).store(len << 32 | 1, Ordering::Release);
        true
    }

    /// Bytes published or reserved and not consumed yet.
    pub fn backlog(&self) -> u64 {
        let h = self.hdr();
        h.head
            .load(Ordering::Acquire)
            .wrapping_sub(h.tail.load(Ordering::Acquire))
    }

    pub fn cap(&self) -> u64 {
        self.hdr().cap
    }

    /// Collector side: takes the next published frame, if any. A frame whose header is damaged
    /// (a length the ring cannot hold) ends the ring: `Broken`.
    pub fn pop(&self, payload: &mut Vec<u8>) -> Pop {
        let h = self.hdr();
        let tail = h.tail.load(Ordering::Relaxed);
        if tail == h.head.load(Ordering::Acquire) {
            return Pop::Empty;
        }
        let w = self.word(tail).load(Ordering::Acquire);
        if w == 0 {
            return Pop::Empty; // reserved, not published yet
        }
        let len = w >> 32;
        let evsz = core::mem::size_of::<Event>() as u64;
        if w & 1 == 0 || len < FRAME_HDR as u64 + evsz || len > h.cap || !len.is_multiple_of(8) {
            return Pop::Broken;
        }
        let mut raw = [0u8; 8];
        unsafe { self.get_bytes(tail + 8, &mut raw) };
        let plen = u64::from_le_bytes(raw);
        if plen > len - FRAME_HDR as u64 - evsz {
            return Pop::Broken;
        }
        let mut evb = [0u8; core::mem::size_of::<Event>()];
        unsafe { self.get_bytes(tail + FRAME_HDR as u64, &mut evb) };
        payload.clear();
        payload.resize(plen as usize, 0);
        unsafe {
            self.get_bytes(tail + FRAME_HDR as u64 + evsz, payload);
            self.zero(tail, len as usize);
        }
        h.tail.store(tail + len, Ordering::Release);
        match Event::from_bytes(&evb) {
            Some(e) => Pop::Event(e),
            None => Pop::Skipped,
        }
    }

    pub fn wake_collector(&self) {
        let h = self.hdr();
        h.wake.store(1, Ordering::Release);
        crate::sys::futex_wake_shared(&h.wake);
    }
}

pub enum Pop {
    Empty,
    Event(Event),
    /// A frame that did not decode (skipped, counted by the caller).
    Skipped,
    /// The ring's bookkeeping is damaged: nothing after this can be trusted.
    Broken,
}
