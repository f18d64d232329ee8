//! Comparing the agent's model with the kernel's view. glibc maps memory behind the hooks'
//! back (malloc arenas and large blocks, brk, ld.so loading libraries, thread stacks); those
//! changes surface here as explicit Reconcile records, never silently.

use super::Writer;
use crate::sys;
use mapagent_record::model::Diff;
use mapagent_record::records::{self as rec, change_op, trigger, Record};
use mapagent_record::region::{parse_maps, Region, PROT_WRITE};
use std::sync::atomic::Ordering;

/// A hooked call that implies changes the hooks cannot see.
#[derive(Clone, Copy, Debug)]
pub struct Trigger {
    pub kind: u8,
    /// When the call started.
    pub t0: u64,
    /// An address inside what it created (a new thread's pthread_t lies in its stack).
    pub hint: u64,
}

/// Polls `cond` (spinning briefly, then sleeping) until it holds or `deadline` passes.
fn wait_until(deadline: u64, cond: impl Fn() -> bool) {
    let mut i = 0u32;
    while !cond() && sys::now() < deadline {
        if i < 64 {
            core::hint::spin_loop();
        } else {
            // Long enough that a wait through a storm costs tens of wake-ups, not thousands.
            unsafe { libc::usleep(250) };
        }
        i += 1;
    }
}

impl Writer {
    pub(super) fn note_trigger(&mut self, kind: u8, t0: u64, hint: u64) {
        self.triggers.push(Trigger { kind, t0, hint });
    }

    /// Reads /proc/self/maps, records what differs from the model, adopts the kernel's view.
    ///
    /// The read must describe a state the events explain: no dlopen, dlclose or
    /// pthread_create may overlap it (their effects would be half done), and every mapping call
    /// that finished before it must already be in the model. Counters of started and finished
    /// calls bracket the read; a read that overlapped something is retried (for a bounded time),
    /// and if it never comes out clean its changes are placed at the read time, not earlier.
    pub(super) fn reconcile(&mut self, why: u8) {
        self.reconcile_inner(why, false);
    }

    /// A reconcile that also returns the kernel's view it read (for a page snapshot).
    pub(super) fn reconcile_view(&mut self, why: u8) -> Option<Vec<Region>> {
        self.reconcile_inner(why, true)
    }

    fn reconcile_inner(&mut self, why: u8, keep: bool) -> Option<Vec<Region>> {
        let ag = self.ag;
        let give_up = sys::now()
            + if why == trigger::EXIT {
                2_000_000
            } else {
                50_000_000
            };
        let mut buf = Vec::new();
        let (ts, clean) = loop {
            wait_until(give_up, || {
                ag.slow_started.load(Ordering::SeqCst) == ag.slow_finished.load(Ordering::SeqCst)
            });
            let slow = ag.slow_started.load(Ordering::SeqCst);
            wait_until(give_up.min(sys::now() + 5_000_000), || {
                ag.started.load(Ordering::SeqCst) == ag.finished.load(Ordering::SeqCst)
            });
            let started = ag.started.load(Ordering::SeqCst);
            let quiet = ag.finished.load(Ordering::SeqCst) == started;
            self.drain();
            let ts = sys::now();
            if sys::PROC_MAPS.read(&mut buf).is_err() {
                return None;
            }
            let clean = quiet
                && ag.started.load(Ordering::SeqCst) == started
                && ag.slow_started.load(Ordering::SeqCst) == slow
                && ag.slow_finished.load(Ordering::SeqCst) == slow;
            if clean || sys::now() > give_up {
                break (ts, clean);
            }
        };
        let Ok(kernel) = parse_maps(&buf) else {
            return None;
        };
        // A process that is exiting (or gone) shows an empty maps: that is not its address
        // space having been unmapped, and must not be recorded as such.
        if kernel.is_empty() {
            return None;
        }
        self.ids.learn(&kernel);
        let view = keep.then(|| kernel.clone());
        self.write_reconcile(kernel, ts, why, clean);
        view.or(Some(Vec::new()))
    }

    /// Records how `kernel` (read at `ts`) differs from the model and adopts it.
    pub(super) fn write_reconcile(
        &mut self,
        kernel: Vec<Region>,
        ts: u64,
        why: u8,
        quiescent: bool,
    ) {
        let diffs = self.model.space.diff(&kernel);
        let first = self.triggers.iter().min_by_key(|t| t.t0).copied();
        let why = match first {
            Some(t) if why != trigger::BASELINE => t.kind,
            _ => why,
        };
        if !diffs.is_empty() || why == trigger::BASELINE {
            let default_at = if why == trigger::BASELINE {
                0
            } else if !quiescent {
                ts
            } else {
                first
                    .map_or(self.verified_at, |t| t.t0.max(self.verified_at))
                    .min(ts)
            };
            let at = if why == trigger::BASELINE {
                vec![0; diffs.len()]
            } else {
                self.place(&diffs, default_at, ts)
            };
            let changes: Vec<rec::Change> = diffs
                .iter()
                .zip(&at)
                .map(|(d, &at)| match d {
                    Diff::Add(r) => rec::Change {
                        op: change_op::ADD,
                        region: r.to_rec(),
                        at,
                    },
                    Diff::Remove(r) => rec::Change {
                        op: change_op::REMOVE,
                        region: r.to_rec(),
                        at,
                    },
                })
                .collect();
            self.out.put(&Record::Reconcile(rec::Reconcile {
                ts,
                since: self.verified_at,
                trigger: why,
                trigger_ts: first.map_or(0, |t| t.t0),
                quiescent,
                changes,
            }));
            if why != trigger::BASELINE {
                tracing::debug!(
                    changes = diffs.len(),
                    trigger = rec::trigger::name(why),
                    quiescent,
                    "reconciled"
                );
            }
        }
        // Regions keep their creation time; new ones were created at their placement.
        let placed: std::collections::HashMap<u64, u64> =
            self.model.space.iter().map(|r| (r.start, r.src)).collect();
        let kernel = kernel
            .into_iter()
            .map(|mut r| {
                r.src = placed.get(&r.start).copied().unwrap_or(ts);
                r
            })
            .collect();
        self.model.adopt(kernel);
        self.last_reconcile = ts;
        self.verified_at = ts;
        self.triggers.clear();
        self.statm_offset = self.statm().map(|s| self.offset_from(s));
    }

    /// When each change is taken to have happened, in one pass over the address-sorted
    /// removals and additions: a thread's stack (the region holding its pthread_t, and the
    /// guard page right below it) at that pthread_create; anything else at `default_at`; a
    /// region never changes before it existed (model regions carry their creation time); a
    /// removal and the addition that replaces it happen together.
    fn place(&self, diffs: &[Diff], default_at: u64, ts: u64) -> Vec<u64> {
        let thread_in = |lo: u64, hi: u64| {
            self.triggers
                .iter()
                .find(|t| t.kind == trigger::THREAD && t.hint >= lo && t.hint < hi)
                .map(|t| t.t0)
        };
        let mut at = vec![default_at; diffs.len()];
        let removes: Vec<usize> = (0..diffs.len())
            .filter(|&i| matches!(diffs[i], Diff::Remove(_)))
            .collect();
        let adds: Vec<usize> = (0..diffs.len())
            .filter(|&i| matches!(diffs[i], Diff::Add(_)))
            .collect();
        let region = |i: usize| match &diffs[i] {
            Diff::Add(r) | Diff::Remove(r) => r,
        };
        for &i in &removes {
            at[i] = default_at.max(region(i).src).min(ts);
        }
        for (k, &i) in adds.iter().enumerate() {
            let r = region(i);
            let above = adds
                .get(k + 1)
                .map(|&n| region(n))
                .filter(|a| a.start == r.end && r.prot == 0);
            if let Some(t0) =
                thread_in(r.start, r.end).or_else(|| above.and_then(|a| thread_in(a.start, a.end)))
            {
                at[i] = t0;
            }
        }
        // Overlapping (removal, addition) pairs, by sweeping both lists in address order.
        let mut pairs = Vec::new();
        let mut p = 0;
        for &a in &adds {
            let ra = region(a);
            while p < removes.len() && region(removes[p]).end <= ra.start {
                p += 1;
            }
            let mut q = p;
            while q < removes.len() && region(removes[q]).start < ra.end {
                pairs.push((removes[q], a));
                q += 1;
            }
        }
        for &(r, a) in &pairs {
            at[a] = at[a].max(at[r]);
        }
        for &(r, a) in &pairs {
            at[r] = at[a];
        }
        // A file deleted (or replaced) while mapped: only its name changed, at a moment no
        // mapping call marks. What was true until then stays shown until the read saw it.
        for &(r, a) in &pairs {
            let (old, new) = (region(r), region(a));
            if old.start == new.start
                && old.end == new.end
                && old.ino == new.ino
                && old.offset == new.offset
                && new.name.ends_with(b" (deleted)")
                && !old.name.ends_with(b" (deleted)")
            {
                at[r] = ts;
                at[a] = ts;
            }
        }
        at
    }

    /// /proc/self/statm: (size, data+stack) in pages.
    fn statm(&self) -> Option<(i64, i64)> {
        let mut buf = Vec::with_capacity(128);
        sys::PROC_STATM.read(&mut buf).ok()?;
        let mut it = buf.split(|&c| c == b' ');
        let num =
            |s: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(s?).ok()?.trim().parse().ok() };
        let size = num(it.next())?;
        let data = num(it.nth(4))?;
        Some((size, data))
    }

    fn offset_from(&self, (size, data): (i64, i64)) -> (i64, i64) {
        let (msize, mdata) = self.model_totals();
        (size - msize, data - mdata)
    }

    /// The model's idea of statm's size and data columns, in pages.
    fn model_totals(&self) -> (i64, i64) {
        let page = self.page as i64;
        let (mut size, mut data) = (0i64, 0i64);
        for r in self.model.space.iter() {
            if r.name == b"[vsyscall]" {
                continue; // not a VMA, not counted by the kernel
            }
            let pages = (r.len() as i64) / page;
            size += pages;
            if (r.prot & PROT_WRITE != 0 && !r.shared) || r.name == b"[stack]" {
                data += pages;
            }
        }
        (size, data)
    }

    /// Whether the kernel's totals moved in a way the hooked calls do not explain. Cheap
    /// (one small /proc read), so the writer can ask often. A quiet answer moves `verified_at`.
    ///
    /// Only a reading no hooked call overlapped has a verdict: during a storm the model lags
    /// the kernel by the calls in flight, and each false alarm would cost a reconcile that
    /// waits for quiet (the periodic one still runs).
    pub(super) fn statm_moved(&mut self, now: u64) -> bool {
        let ag = self.ag;
        let started = ag.started.load(Ordering::SeqCst);
        if ag.finished.load(Ordering::SeqCst) != started {
            return false;
        }
        let Some(s) = self.statm() else { return false };
        // Everything that finished before the read, in the model.
        self.drain();
        if ag.started.load(Ordering::SeqCst) != started {
            return false;
        }
        let off = self.offset_from(s);
        let moved = match self.statm_offset {
            Some(prev) => prev != off,
            None => {
                self.statm_offset = Some(off);
                false
            }
        };
        if !moved
            && self.ag.started.load(Ordering::SeqCst) == self.ag.finished.load(Ordering::SeqCst)
        {
            self.verified_at = now;
        }
        moved
    }
}
