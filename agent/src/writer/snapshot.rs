//! Page-state snapshots: at exit and exec, every MAPAGENT_INTERVAL_MS, on the signal named by
//! MAPAGENT_SNAPSHOT_SIGNAL, and when the application calls mapagent_snapshot(label). Each is a
//! Snapshot record, one Pages record per mapping of the kernel's view read just before (so the
//! mappings are exactly those /proc/self/smaps would show), and a SnapshotEnd.

use super::Writer;
use crate::{pages, sys};
use mapagent_record::records::{self as rec, snapshot_trigger, trigger, Record};
use mapagent_record::region::Region;
use mapagent_record::Bytes;

/// Whether mincore reports page-cache residency truthfully for file mappings: since Linux 5.0
/// only for the file's owner, a process that may write it, or one with CAP_FOWNER; anyone else
/// is told every page is resident.
const CAP_FOWNER: u32 = 3;

struct CacheTruth {
    euid: u32,
    fowner: bool,
}

impl CacheTruth {
    fn new() -> CacheTruth {
        let mut buf = Vec::new();
        let cap_eff = sys::read_file(&sys::proc_path("status"), &mut buf)
            .ok()
            .and_then(|_| {
                let line = buf
                    .split(|&c| c == b'\n')
                    .find_map(|l| l.strip_prefix(b"CapEff:"))?;
                let hex = std::str::from_utf8(line).ok()?.trim();
                u64::from_str_radix(hex, 16).ok()
            })
            .unwrap_or(0);
        CacheTruth {
            euid: unsafe { libc::geteuid() },
            fowner: cap_eff & (1 << CAP_FOWNER) != 0,
        }
    }

    fn file(&self, r: &Region) -> bool {
        if self.fowner {
            return true;
        }
        // The file by its name, if that still leads to the mapped file.
        if r.name.first() != Some(&b'/') || r.name.ends_with(b" (deleted)") {
            return false;
        }
        let Ok(path) = std::ffi::CString::new(r.name.clone()) else {
            return false;
        };
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 || st.st_ino != r.ino {
            return false;
        }
        st.st_uid == self.euid
            || unsafe {
                libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS)
            } == 0
    }
}

impl Writer {
    /// Takes a snapshot now (on the writer thread; the caller of mapagent_snapshot waits).
    pub(super) fn snapshot(&mut self, why: u8, label: &[u8], tid: u32) {
        let t0 = sys::now();
        let reconcile_why = if why == snapshot_trigger::EXIT {
            trigger::EXIT
        } else {
            trigger::SNAPSHOT
        };
        let Some(kernel) = self.reconcile_view(reconcile_why) else {
            self.warn(b"page snapshot skipped: /proc/self/maps could not be read");
            return;
        };
        // Opened per snapshot: a descriptor kept open would be inherited by fork children
        // (where it would still read this process's page tables).
        let Some(mut scanner) = pages::Scanner::open(self.page) else {
            self.warn(b"page snapshot skipped: /proc/self/pagemap could not be opened");
            return;
        };
        let swap = pages::swap_configured();
        let truth = CacheTruth::new();
        let id = self.snapshots;
        self.snapshots += 1;
        let ts = sys::now();
        self.out.put(&Record::Snapshot(rec::Snapshot {
            ts,
            id,
            trigger: why,
            tid,
            label: Bytes(label),
        }));
        let (mut regions, mut total, mut present) = (0u32, 0u64, 0u64);
        for r in &kernel {
            // The legacy vsyscall page is not in the page tables pagemap walks.
            if r.name == b"[vsyscall]" {
                continue;
            }
            let s = scanner.scan(r, swap, r.is_file() && truth.file(r));
            regions += 1;
            total += r.len() / self.page;
            present += s.present;
            self.out.put(&Record::Pages(rec::Pages {
                ts,
                id,
                start: r.start,
                end: r.end,
                known: s.known,
                method: s.method,
                runs: s.runs,
            }));
        }
        let end = sys::now();
        self.out.put(&Record::SnapshotEnd(rec::SnapshotEnd {
            ts: end,
            id,
            regions,
            pages: total,
            present,
            duration_ns: end - t0,
        }));
        self.mem_usage();
        self.sample_watches(tid, true);
        self.last_snapshot = end;
    }

    /// Snapshots asked for by mapagent_snapshot (queued while events were handled) and by the
    /// interval timer.
    pub(super) fn due_snapshots(&mut self, signal: bool) {
        // In the order asked; a snapshot's own reconcile may queue more.
        while !self.pending_snapshots.is_empty() {
            let (label, tid) = self.pending_snapshots.remove(0);
            self.snapshot(snapshot_trigger::API, &label, tid);
        }
        if signal {
            self.snapshot(snapshot_trigger::SIGNAL, b"signal", 0);
        }
        let every = self.ag.cfg.interval_ms.saturating_mul(1_000_000);
        if every > 0 && sys::now().saturating_sub(self.last_snapshot) >= every {
            self.snapshot(snapshot_trigger::INTERVAL, b"interval", 0);
        }
    }

    fn warn(&mut self, text: &[u8]) {
        self.out.put(&Record::Warning(rec::Warning {
            ts: sys::now(),
            text: Bytes(text),
        }));
    }
}
