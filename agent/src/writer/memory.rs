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
        let a = self.agent_mem(ts);
        self.out.put(&Record::AgentMem(a));
    }

    /// The agent's own mappings in the process (see AgentMem) and how much of them is there.
    fn agent_mem(&self, ts: u64) -> rec::AgentMem {
        let (lo, hi) = (self.ag.arena_start, self.ag.arena_end);
        let own = own_library();
        let page = self.page.max(1);
        let mut a = rec::AgentMem {
            ts,
            ..Default::default()
        };
        let mut scanner = crate::pages::Scanner::open(page);
        for r in self.model.space.iter() {
            let ours = (r.start < hi && lo < r.end)
                || r.name.starts_with(b"/memfd:mapagent-ring")
                || (!own.is_empty() && r.name == own);
            if !ours {
                continue;
            }
            let pages = r.len() / page;
            a.size += pages;
            if r.prot & mapagent_record::region::PROT_WRITE != 0 && !r.shared {
                a.data += pages;
            }
            if let Some(s) = scanner.as_mut() {
                let present = s.scan(r, false, false).present;
                a.resident += present;
                if r.shared || r.is_file() {
                    a.shared += present;
                }
            }
        }
        a
    }
}

/// The path of libmapagent.so, which the collector runs as (its /proc/self/exe).
fn own_library() -> Vec<u8> {
    sys::readlink(c"/proc/self/exe").unwrap_or_default()
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
