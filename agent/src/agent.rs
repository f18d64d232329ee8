//! The one live agent of this process: its ring, counters and the request protocol the
//! application side uses to ask the collector for a flush. A null pointer means "not
//! recording" (before the constructor, disabled, inert under setuid, after exit).

use crate::config::Config;
use crate::event::Event;
use crate::ring::Ring;
use crate::{sys, tls};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};

/// One recording process, as either side sees it: the application's hooks (pushing events)
/// or the collector (draining them). Its identity and the state both share live in the
/// ring's header (reached through Deref); this struct holds what each side parsed for itself.
pub struct Agent {
    pub cfg: Config,
    pub ring: Ring,
    /// Backlog in bytes past which a push wakes the collector.
    wake_mark: u64,
}

impl core::ops::Deref for Agent {
    type Target = crate::ring::Header;
    fn deref(&self) -> &crate::ring::Header {
        self.ring.hdr()
    }
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
    let ag = unsafe { &*p };
    if ag.dead.load(Ordering::Relaxed) != 0 {
        return None;
    }
    Some(ag)
}

/// The agent regardless of the calling thread (lifecycle paths).
pub fn current() -> Option<&'static Agent> {
    let p = AGENT.load(Ordering::Acquire);
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Makes `a` the recording agent: hooks start handing it events. Never after the agent was
/// disabled.
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

/// An internal failure: one line in the log, the application carries on unobserved.
pub fn disable(reason: &[u8]) {
    deactivate();
    if !DISABLED.swap(true, Ordering::AcqRel) {
        crate::log::line(&[b"disabled: ", reason]);
    }
}

impl Agent {
    /// The application's agent: a fresh ring (its descriptor returned, for the collector)
    /// with this process's identity. Leaked on purpose: hooks on other threads may still hold
    /// a reference after it is replaced (fork child) or deactivated (exit).
    pub fn new(
        cfg: Config,
        origin: u8,
        parent_pid: u32,
        origin_ts: u64,
        exe: Vec<u8>,
    ) -> Result<(&'static Agent, i32), &'static [u8]> {
        let (ring, fd) = Ring::create(cfg.buffer.saturating_mul(EVENT_BYTES))?;
        let env = crate::config::env_block(&cfg);
        let ns_pid = sys::getpid();
        let pid = sys::proc_pid().unwrap_or(ns_pid);
        let start_mono = sys::now();
        let start_wall = sys::clock(libc::CLOCK_REALTIME);
        ring.set_identity(&crate::ring::Identity {
            pid,
            ns_pid,
            parent_pid,
            origin,
            origin_ts,
            start_mono,
            start_wall,
            exe: &exe,
            env: &env,
        });
        let wake_mark = ring.cap() / 4;
        let ag = Box::leak(Box::new(Agent {
            cfg,
            ring,
            wake_mark,
        }));
        Ok((ag, fd))
    }

    /// The collector's view of a ring it was handed.
    pub fn attach(ring: Ring) -> &'static Agent {
        let cfg = Config::from_block(ring.env());
        let ag = Agent {
            cfg,
            wake_mark: ring.cap() / 4,
            ring,
        };
        Box::leak(Box::new(ag))
    }

    /// Hands an event to the collector; never blocks. A full ring drops and counts it. A
    /// backlog past a quarter of the ring wakes the collector (once per collector cycle: the
    /// only extra system call a push can make). False if it was dropped.
    #[inline]
    pub fn push(&self, ev: Event) -> bool {
        self.push_with(ev, &[])
    }

    #[inline]
    pub fn push_with(&self, ev: Event, payload: &[u8]) -> bool {
        if !self.ring.push(&ev, payload) {
            return false;
        }
        if self.ring.backlog() >= self.wake_mark
            && self.woken.load(Ordering::Relaxed) == 0
            && self.woken.swap(1, Ordering::AcqRel) == 0
        {
            self.wake_writer();
        }
        true
    }

    /// Whether a burst has filled the ring past the wake mark.
    pub fn channel_busy(&self) -> bool {
        self.ring.backlog() >= self.wake_mark
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

    pub fn wake_writer(&self) {
        self.ring.wake_collector();
    }

    /// Whether the collector already knows the file (dev, inode) by name.
    #[inline]
    pub fn known_contains(&self, key: u64) -> bool {
        let n = self.known.len();
        for i in 0..8 {
            match self.known[(key as usize + i) % n].load(Ordering::Acquire) {
                0 => return false,
                k if k == key => return true,
                _ => {}
            }
        }
        false
    }

    /// Collector only (single writer, so a plain load-then-store is race-free).
    pub fn known_insert(&self, key: u64) {
        let n = self.known.len();
        for i in 0..8 {
            let s = &self.known[(key as usize + i) % n];
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

/// Ring bytes per event of MAPAGENT_BUFFER (an event frame without payload is 104 bytes).
const EVENT_BYTES: usize = 128;

/// A well-mixed non-zero 64-bit key for (dev, ino), for the known-files set.
pub fn file_key(dev: u64, ino: u64) -> u64 {
    let mut h = dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino;
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    h | 1
}

pub mod req {
    pub const FLUSH: u32 = 1;
    pub const EXIT: u32 = 2;
    /// mapagent_snapshot was called (its label came through the channel).
    pub const SNAPSHOT: u32 = 4;
    /// MAPAGENT_SNAPSHOT_SIGNAL arrived.
    pub const SIGNAL_SNAPSHOT: u32 = 16;
    /// mapagent_watch_sample() was called.
    pub const WATCH: u32 = 32;
}

/// Requests from application threads to the writer, and the writer's acknowledgements.
#[derive(Default)]
#[repr(C)]
pub struct Control {
    pub pending: AtomicU32,
    pub seq: AtomicU32,
    /// Last request sequence number the writer completed; futex word for waiters.
    pub done: AtomicU32,
    pub exit_how: AtomicU32,
    pub exit_code: AtomicI32,
    /// Set by a process that left without waiting for the collector's last look (a young
    /// fork child): exit_how and exit_code say how, and the collector ends the file with
    /// them once it sees the process gone.
    pub exit_noted: AtomicU32,
    /// The thread that last called mapagent_watch_sample().
    pub watch_tid: AtomicU32,
}

impl Control {
    /// Posts a request and wakes the writer; returns its sequence number.
    pub fn post(&self, ag: &Agent, what: u32) -> u32 {
        if ag.dead.load(Ordering::Acquire) != 0 {
            return self.seq.load(Ordering::Acquire);
        }
        self.pending.fetch_or(what, Ordering::AcqRel);
        let seq = self.seq.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        ag.wake_writer();
        seq
    }

    /// Waits (bounded) until the collector completed request `seq`, or gave up.
    /// Async-signal-safe.
    pub fn wait(&self, ag: &Agent, seq: u32, timeout_ns: u64) -> bool {
        let deadline = sys::now() + timeout_ns;
        loop {
            if ag.dead.load(Ordering::Acquire) != 0 {
                return false;
            }
            let d = self.done.load(Ordering::Acquire);
            if d.wrapping_sub(seq) as i32 >= 0 {
                return true;
            }
            let now = sys::now();
            if now >= deadline {
                return false;
            }
            sys::futex_wait_shared(&self.done, d, (deadline - now).min(10_000_000));
        }
    }

    /// Writer side: takes the pending request bits and the sequence they cover.
    pub fn take(&self) -> (u32, u32) {
        let seq = self.seq.load(Ordering::Acquire);
        (self.pending.swap(0, Ordering::AcqRel), seq)
    }

    pub fn complete(&self, seq: u32) {
        self.done.store(seq, Ordering::Release);
        sys::futex_wake_shared(&self.done);
    }
}
