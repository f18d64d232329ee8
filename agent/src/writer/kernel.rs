//! The kernel timeline: the kernel's reports of new and changed VMAs (perf_ring), merged in
//! time order with the hooks' events, as KernelMap records. They make the model exact the
//! moment a change happens, including what no hook sees (brk, glibc's and ld.so's internal
//! mmaps, raw syscalls) and the kernel's own merge decisions.

use super::perf_ring::{KernelReports, Report};
use super::Writer;
use mapagent_record::records::{self as rec, ktimeline, trigger, Record};
use mapagent_record::region::{Region, PROT_WRITE};
use mapagent_record::Bytes;
use std::sync::atomic::Ordering;

impl Writer {
    /// Opens the kernel's reports on the process and says in the file whether they run, then
    /// releases the starting thread (which waits for this, see lifecycle::wait_kernel_ready).
    pub(super) fn open_kernel(&mut self) {
        let pages = self.ag.cfg.kernel_pages;
        let ts = crate::sys::now();
        let (state, errno, text) = if pages == 0 {
            (
                ktimeline::OFF,
                0,
                "MAPAGENT_KERNEL_PAGES=0: changes behind the hooks show at reconciles".to_string(),
            )
        } else {
            match KernelReports::open(self.ag.ns_pid, pages) {
                Ok(k) => {
                    let text = if k.pages < pages {
                        format!(
                            "{} pages per CPU (the locked-memory limit allows no more than that of the {pages} asked)",
                            k.pages
                        )
                    } else {
                        format!("{} pages per CPU", k.pages)
                    };
                    self.kernel = Some(k);
                    (ktimeline::ON, 0, text)
                }
                Err(e) => (
                    ktimeline::OFF,
                    e,
                    format!(
                        "perf_event_open on the process failed ({}); changes behind the hooks (brk, glibc's and ld.so's own mmaps) show at reconciles",
                        std::io::Error::from_raw_os_error(e)
                    ),
                ),
            }
        };
        if state == ktimeline::ON {
            self.start_brk = super::process::start_brk();
        }
        self.emit(Record::KernelTimeline(rec::KernelTimeline {
            ts,
            state,
            errno,
            lost: 0,
            text: Bytes(text.as_bytes()),
        }));
        if state == ktimeline::OFF && pages > 0 {
            tracing::info!("{text}");
        }
        self.ag.kernel_ready.store(1, Ordering::Release);
        crate::sys::futex_wake_shared(&self.ag.kernel_ready);
    }

    /// Moves what the kernel reported so far into the queue; true if there was something.
    pub(super) fn take_kernel(&mut self) -> bool {
        let Some(k) = self.kernel.as_mut() else {
            return false;
        };
        let before = self.kq.len();
        k.take(&mut self.kq);
        self.kq.len() > before
    }

    /// One report, in time order among the hooks' events.
    pub(super) fn handle_report(&mut self, r: Report) {
        if self.exec_ts.is_some_and(|t| r.ts() > t) {
            return; // the new program's: its own collector records them
        }
        match r {
            Report::Map {
                ts,
                tid,
                mut region,
            } => {
                self.fix_kernel_name(&mut region);
                let known = self
                    .model
                    .space
                    .find(region.start)
                    .is_some_and(|m| *m == region);
                if known {
                    return; // nothing changed (an mprotect to the same protection, say)
                }
                self.emit(Record::KernelMap(rec::KernelMap {
                    ts,
                    tid,
                    region: region.to_rec(),
                }));
            }
            Report::Lost { ts, count } => {
                let text = format!(
                    "the kernel dropped {count} reports of new VMAs (its ring was full); a reconcile follows. Raise MAPAGENT_KERNEL_PAGES (now {} per CPU)",
                    self.kernel.as_ref().map_or(0, |k| k.pages)
                );
                self.emit(Record::KernelTimeline(rec::KernelTimeline {
                    ts,
                    state: ktimeline::LOST,
                    errno: 0,
                    lost: count,
                    text: Bytes(text.as_bytes()),
                }));
                self.note_trigger(trigger::KERNEL_LOST, ts, 0);
            }
        }
    }

    /// Where the kernel's report names a VMA differently from maps.
    fn fix_kernel_name(&self, r: &mut Region) {
        let m = self.model.space.find(r.start);
        if !r.is_file() && r.name.is_empty() {
            // The first brk growth is reported before mm->brk moves, as plain anonymous memory.
            if self.start_brk != 0 && r.start == self.start_brk {
                r.name = b"[heap]".to_vec();
            } else if let Some(m) = m.filter(|m| !m.is_file() && m.name.starts_with(b"[anon:")) {
                // A name given with PR_SET_VMA_ANON_NAME stays with the VMA; perf says //anon.
                r.name = m.name.clone();
            }
        }
        // A shared mapping of a file opened read-only has VM_MAYSHARE but not VM_SHARED: perf
        // reports it private, maps shared.
        if r.is_file() && !r.shared && r.prot & PROT_WRITE == 0 {
            if let Some(m) = m.filter(|m| m.shared && m.ino == r.ino && m.name == r.name) {
                let _ = m;
                r.shared = true;
            }
        }
    }
}
