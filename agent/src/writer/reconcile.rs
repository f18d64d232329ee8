//! Comparing the agent's model with the kernel's view. glibc maps memory behind the hooks'
//! back (malloc arenas and large blocks, brk, ld.so loading libraries, thread stacks); those
//! changes surface here as explicit Reconcile records, never silently.

use super::Writer;
use crate::sys;
use mapagent_record::model::Diff;
use mapagent_record::records::{self as rec, change_op, trigger, Record};
use mapagent_record::region::{parse_maps, PROT_WRITE};
use std::sync::atomic::Ordering;

impl Writer {
    /// Reads /proc/self/maps, records what differs from the model, adopts the kernel's view.
    pub(super) fn reconcile(&mut self, why: u8, trigger_ts: u64) {
        // Let mapping calls already under way finish and reach the channel, so what we find is
        // really invisible to the hooks and not an event still on its way.
        let ag = self.ag;
        let mut quiet = false;
        let mut started = 0;
        for i in 0..200 {
            started = ag.started.load(Ordering::SeqCst);
            if ag.finished.load(Ordering::SeqCst) == started {
                quiet = true;
                break;
            }
            if i > 20 {
                unsafe { libc::usleep(10) };
            } else {
                core::hint::spin_loop();
            }
        }
        self.drain();
        let ts = sys::now();
        let mut buf = Vec::new();
        if sys::read_file(c"/proc/self/maps", &mut buf).is_err() {
            return;
        }
        let quiescent = quiet && ag.started.load(Ordering::SeqCst) == started;
        let Ok(kernel) = parse_maps(&buf) else { return };
        self.ids.learn(&kernel);
        let diffs = self.model.space.diff(&kernel);
        if !diffs.is_empty() || why == trigger::BASELINE {
            let changes: Vec<rec::Change> = diffs
                .iter()
                .map(|d| match d {
                    Diff::Add(r) => rec::Change { op: change_op::ADD, region: r.to_rec() },
                    Diff::Remove(r) => rec::Change { op: change_op::REMOVE, region: r.to_rec() },
                })
                .collect();
            self.out.put(&Record::Reconcile(rec::Reconcile {
                ts,
                since: self.verified_at,
                trigger: why,
                trigger_ts,
                quiescent,
                changes,
            }));
            if why != trigger::BASELINE {
                tracing::debug!(changes = diffs.len(), trigger = rec::trigger::name(why), "reconciled");
            }
        }
        self.model.adopt(kernel);
        self.last_reconcile = ts;
        self.verified_at = ts;
        self.pending = None;
        self.statm_offset = self.statm().map(|s| self.offset_from(s));
    }

    /// /proc/self/statm: (size, data+stack) in pages.
    fn statm(&self) -> Option<(i64, i64)> {
        let mut buf = Vec::with_capacity(128);
        sys::read_file(c"/proc/self/statm", &mut buf).ok()?;
        let mut it = buf.split(|&c| c == b' ');
        let num = |s: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(s?).ok()?.trim().parse().ok() };
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
    /// (one small /proc read), so the writer can ask often.
    pub(super) fn statm_moved(&mut self, now: u64) -> bool {
        let Some(s) = self.statm() else { return false };
        let off = self.offset_from(s);
        let moved = match self.statm_offset {
            Some(prev) => prev != off,
            None => {
                self.statm_offset = Some(off);
                false
            }
        };
        if !moved {
            self.verified_at = now;
        }
        moved
    }
}
