//! The process's memory use with the columns of /proc/self/statm, sampled when the writer
//! starts and with every snapshot (so every MAPAGENT_INTERVAL_MS and at exit). Without /proc,
//! the figures come from the agent's own model of the address space, residency from mincore.

use super::Writer;
use crate::sys;
use mapagent_record::records::{self as rec, mem_source, Record};
use mapagent_record::region::PROT_WRITE;

const PROT_EXEC: u8 = 4;

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
            None => self.counted_from_model(ts),
        };
        self.out.put(&Record::MemUsage(m));
    }

    /// statm's columns from the model: size and data counted as the kernel counts them
    /// (writable private mappings and the stack), text the main program's executable
    /// mappings; resident by mincore, shared the resident part of file or shared mappings
    /// (mincore reports page-cache residency for files: an upper bound).
    fn counted_from_model(&self, ts: u64) -> rec::MemUsage {
        let page = self.page;
        let mut m = rec::MemUsage {
            ts,
            size: 0,
            resident: 0,
            shared: 0,
            text: 0,
            data: 0,
            source: mem_source::MODEL,
        };
        // The lowest file mapping is the main program (it is mapped before anything else).
        let exe = self
            .model
            .space
            .iter()
            .find(|r| r.is_file())
            .map(|r| (r.dev_major, r.dev_minor, r.ino));
        let mut vec = vec![0u8; 4096];
        for r in self.model.space.iter() {
            if r.name == b"[vsyscall]" {
                continue;
            }
            let pages = r.len() / page;
            m.size += pages;
            if (r.prot & PROT_WRITE != 0 && !r.shared) || r.name == b"[stack]" {
                m.data += pages;
            }
            if r.prot & PROT_EXEC != 0 && exe == Some((r.dev_major, r.dev_minor, r.ino)) {
                m.text += pages;
            }
            let mut done = 0u64;
            while done < pages {
                let n = (pages - done).min(vec.len() as u64);
                let addr = r.start + done * page;
                // SAFETY: a range of a mapping the model holds; mincore only reads page tables.
                let rc = unsafe {
                    libc::mincore(
                        addr as *mut libc::c_void,
                        (n * page) as usize,
                        vec.as_mut_ptr(),
                    )
                };
                if rc != 0 {
                    break;
                }
                let res = vec
                    .get(..n as usize)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|&&v| v & 1 != 0)
                    .count() as u64;
                m.resident += res;
                if r.is_file() || r.shared {
                    m.shared += res;
                }
                done += n;
            }
        }
        m
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
