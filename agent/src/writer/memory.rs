//! The process's memory use with the columns of its /proc/PID/statm, sampled when the
//! collector starts and with every snapshot (so every MAPAGENT_INTERVAL_MS and at exit).

use super::Writer;
use crate::sys;
use mapagent_record::records::{self as rec, mem_source, Record};

impl Writer {
    pub(super) fn mem_usage(&mut self) {
        let ts = sys::now();
        let m = match statm() {
            Some([size, resident, shared, text, _lib, data, _dt]) => rec::MemUsage {
                ts,
                size,
                resident,
                shared,
                text,
                data,
                source: mem_source::STATM,
            },
            // The process is gone (its end is being written) or /proc is not mounted, in
            // which case the collector could not have started.
            None => return,
        };
        self.out.put(&Record::MemUsage(m));
    }
}

/// The seven numbers of /proc/self/statm, in pages.
fn statm() -> Option<[u64; 7]> {
    let mut buf = Vec::with_capacity(128);
    sys::PROC_STATM.read(&mut buf).ok()?;
    let mut out = [0u64; 7];
    let mut it = buf
        .split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    for v in out.iter_mut() {
        *v = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    }
    Some(out)
}
