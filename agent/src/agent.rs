//! The one live agent of this process: its channel, pool, counters and the request protocol
//! the application side uses to ask the writer for a flush. A null pointer means "not
//! recording" (before the constructor, disabled, inert under setuid, after exit).

use crate::config::Config;
use crate::event::Event;
use crate::pool::Pool;
use crate::{sys, tls};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub struct Agent {
    pub pid: i32,
    pub cfg: Config,
    pub tx: Sender<Event>,
    pub rx: Receiver<Event>,
    pub pool: Pool,
    /// Events dropped since the writer last looked (channel or pool full).
    pub lost: AtomicU64,
    pub lost_total: AtomicU64,
    /// Mapping calls started and finished: equal means none is in flight (see writer::reconcile).
    pub started: AtomicU64,
    pub finished: AtomicU64,
    /// Calls with side effects the hooks cannot see (dlopen, dlclose, pthread_create) started
    /// and finished: a reconcile never reads the kernel's view while one is under way.
    pub slow_started: AtomicU64,
    pub slow_finished: AtomicU64,
    /// Hashes of files the writer already knows by name: the mmap hook reads a path from
    /// /proc/self/fd only for files not in here.
    pub known_files: KnownFiles,
    /// Futex word the writer sleeps on.
    pub wake: AtomicU32,
    /// Channel length past which a push wakes the writer, and whether one already did this
    /// cycle (so a burst costs one futex wake per writer cycle, never more).
    wake_mark: usize,
    pub woken: AtomicBool,
    pub ctl: Control,
    pub origin: u8,
    pub parent_pid: u32,
    pub origin_ts: u64,
    pub start_mono: u64,
    pub start_wall: u64,
    /// /proc/self/exe at start.
    pub exe: Vec<u8>,
    /// The output file, once the writer opened it (-1 before); a fork child closes the
    /// parent's copy.
    pub out_fd: AtomicI32,
    /// The baseline, handed from the starting thread to the writer.
    pub baseline: AtomicPtr<crate::writer::Baseline>,
    /// The writer thread (joinable) and, while it is parked, its state.
    pub writer_thread: AtomicU64,
    /// Its kernel thread id (to see it gone from the thread group after a join).
    pub writer_tid: AtomicU32,
    pub parked: AtomicPtr<crate::writer::Writer>,
    /// Set when a park request timed out: the writer must not park for it any more.
    pub park_cancelled: AtomicBool,
}

static AGENT: AtomicPtr<Agent> = AtomicPtr::new(core::ptr::null_mut());
static DISABLED: AtomicBool = AtomicBool::new(false);

/// The agent, if recording and the calling thread is not already inside agent code.
#[inline(always)]
pub fn recording() -> Option<&'static Agent> {
    let p = AGENT.load(Ordering::Acquire);
    if p.is_null() || tls::get().depth != 0 {
        return None;
    }
    Some(unsafe { &*p })
}

/// The agent regardless of the calling thread (lifecycle paths).
pub fn current() -> Option<&'static Agent> {
    let p = AGENT.load(Ordering::Acquire);
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Makes `a` the recording agent: hooks start handing it events. Never after the agent was
/// disabled (a writer that failed at once must not leave an agent with no writer).
pub fn install(a: &'static Agent) {
    AGENT.store(a as *const Agent as *mut Agent, Ordering::Release);
    if DISABLED.load(Ordering::Acquire) {
        AGENT.store(core::ptr::null_mut(), Ordering::Release);
    }
}

/// Stops recording (after exit or exec); hooks pass through from now on.
pub fn deactivate() {
    AGENT.store(core::ptr::null_mut(), Ordering::Release);
}

/// An internal failure: one line on stderr, the application carries on unobserved.
pub fn disable(reason: &[u8]) {
    deactivate();
    if !DISABLED.swap(true, Ordering::AcqRel) {
        sys::stderr_line(&[b"mapagent: disabled: ", reason]);
    }
}

impl Agent {
    /// A new agent, leaked on purpose: hooks on other threads may still hold a reference after
    /// it is replaced (fork child) or deactivated (exit).
    pub fn new(
        cfg: Config,
        origin: u8,
        parent_pid: u32,
        origin_ts: u64,
        exe: Vec<u8>,
    ) -> &'static Agent {
        let (tx, rx) = bounded(cfg.buffer);
        let wake_mark = (cfg.buffer / 4).max(1);
        Box::leak(Box::new(Agent {
            pid: sys::getpid(),
            pool: Pool::new(64),
            cfg,
            tx,
            rx,
            lost: AtomicU64::new(0),
            lost_total: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            slow_started: AtomicU64::new(0),
            slow_finished: AtomicU64::new(0),
            known_files: KnownFiles::new(),
            wake: AtomicU32::new(0),
            wake_mark,
            woken: AtomicBool::new(false),
            ctl: Control::default(),
            origin,
            parent_pid,
            origin_ts,
            start_mono: sys::now(),
            start_wall: sys::clock(libc::CLOCK_REALTIME),
            exe,
            out_fd: AtomicI32::new(-1),
            baseline: AtomicPtr::new(core::ptr::null_mut()),
            writer_thread: AtomicU64::new(0),
            writer_tid: AtomicU32::new(0),
            parked: AtomicPtr::new(core::ptr::null_mut()),
            park_cancelled: AtomicBool::new(false),
        }))
    }

    /// Hands the baseline to the writer thread, which waits for it.
    pub fn hand_over(&self, base: crate::writer::Baseline) {
        self.baseline
            .store(Box::into_raw(Box::new(base)), Ordering::Release);
        self.wake_writer();
    }

    /// Like push; false if the event was dropped (the caller releases what it carried).
    #[inline]
    /// Hands an event to the writer; never blocks. A full channel drops and counts it. The
    /// writer sleeps as long as the event rate allows; a burst that fills a quarter of the
    /// channel wakes it (once per writer cycle: the only extra system call a push can make).
    /// Returns false if it was dropped (the caller releases what else the event carried).
    pub fn push(&self, ev: Event) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => {
                if self.tx.len() >= self.wake_mark
                    && !self.woken.load(Ordering::Relaxed)
                    && !self.woken.swap(true, Ordering::AcqRel)
                {
                    self.wake_writer();
                }
                true
            }
            Err(TrySendError::Full(ev)) | Err(TrySendError::Disconnected(ev)) => {
                if ev.slot != crate::event::NO_SLOT {
                    self.pool.give(ev.slot);
                }
                self.lost.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether a burst has filled the channel past the wake mark.
    pub fn channel_busy(&self) -> bool {
        self.rx.len() >= self.wake_mark
    }

    /// Marks the start of a call with invisible side effects; returns its start time.
    #[inline]
    pub fn slow_begin(&self) -> u64 {
        self.slow_started.fetch_add(1, Ordering::SeqCst);
        sys::now()
    }

    #[inline]
    pub fn slow_end(&self) {
        self.slow_finished.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts an event that could not even be built (no pool slot).
    pub fn drop_one(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn wake_writer(&self) {
        self.wake.store(1, Ordering::Release);
        sys::futex_wake(&self.wake);
    }
}

/// A fixed-size, lock-free set of file identities (dev, inode), written by the writer and
/// read by hooks. Never shrinks; when full, hooks just do the lookup themselves.
pub struct KnownFiles {
    slots: Box<[AtomicU64]>,
}

const KNOWN_FILES: usize = 4096;

impl KnownFiles {
    fn new() -> Self {
        KnownFiles {
            slots: (0..KNOWN_FILES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A well-mixed non-zero 64-bit key for (dev, ino).
    pub fn key(dev: u64, ino: u64) -> u64 {
        let mut h = dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino;
        h ^= h >> 31;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 29;
        h | 1
    }

    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        let n = self.slots.len();
        for i in 0..8 {
            match self.slots[(key as usize + i) % n].load(Ordering::Acquire) {
                0 => return false,
                k if k == key => return true,
                _ => {}
            }
        }
        false
    }

    /// Writer only (single writer, so a plain load-then-store is race-free).
    pub fn insert(&self, key: u64) {
        let n = self.slots.len();
        for i in 0..8 {
            let s = &self.slots[(key as usize + i) % n];
            match s.load(Ordering::Acquire) {
                0 => {
                    s.store(key, Ordering::Release);
                    return;
                }
                k if k == key => return,
                _ => {}
            }
        }
    }
}

pub mod req {
    pub const FLUSH: u32 = 1;
    pub const EXIT: u32 = 2;
    /// mapagent_snapshot was called (its label came through the channel).
    pub const SNAPSHOT: u32 = 4;
    /// Save state and end the writer thread (a credential change is coming).
    pub const PARK: u32 = 8;
    /// MAPAGENT_SNAPSHOT_SIGNAL arrived.
    pub const SIGNAL_SNAPSHOT: u32 = 16;
    /// mapagent_watch_sample() was called.
    pub const WATCH: u32 = 32;
}

/// Requests from application threads to the writer, and the writer's acknowledgements.
#[derive(Default)]
pub struct Control {
    pub pending: AtomicU32,
    pub seq: AtomicU32,
    /// Last request sequence number the writer completed; futex word for waiters.
    pub done: AtomicU32,
    pub exit_how: AtomicU32,
    pub exit_code: AtomicI32,
    /// The thread that last called mapagent_watch_sample().
    pub watch_tid: AtomicU32,
}

impl Control {
    /// Posts a request and wakes the writer; returns its sequence number.
    pub fn post(&self, ag: &Agent, what: u32) -> u32 {
        self.pending.fetch_or(what, Ordering::AcqRel);
        let seq = self.seq.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        ag.wake_writer();
        seq
    }

    /// Waits (bounded) until the writer completed request `seq`. Async-signal-safe.
    pub fn wait(&self, seq: u32, timeout_ns: u64) -> bool {
        let deadline = sys::now() + timeout_ns;
        loop {
            let d = self.done.load(Ordering::Acquire);
            if d.wrapping_sub(seq) as i32 >= 0 {
                return true;
            }
            let now = sys::now();
            if now >= deadline {
                return false;
            }
            sys::futex_wait(&self.done, d, (deadline - now).min(10_000_000));
        }
    }

    /// Writer side: takes the pending request bits and the sequence they cover.
    pub fn take(&self) -> (u32, u32) {
        let seq = self.seq.load(Ordering::Acquire);
        (self.pending.swap(0, Ordering::AcqRel), seq)
    }

    pub fn complete(&self, seq: u32) {
        self.done.store(seq, Ordering::Release);
        sys::futex_wake(&self.done);
    }
}
