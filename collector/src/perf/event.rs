//! Encoders for the records mapagent writes into perf.data: MMAP2, COMM, FORK, EXIT and
//! FINISHED_ROUND, each with the sample_id trailer the attr it resolves to expects.

use super::{misc, rtype, sample};

/// The sample_id trailer of non-sample records, as the first attr's sample_type shapes it
/// (uapi struct sample_id). Records mapagent writes carry id 0, which perf resolves to the
/// first attr.
#[derive(Clone, Copy, Debug)]
pub struct Trailer {
    pub sample_type: u64,
    pub sample_id_all: bool,
}

impl Trailer {
    pub fn len(&self) -> usize {
        if !self.sample_id_all {
            return 0;
        }
        let t = self.sample_type;
        [
            sample::TID,
            sample::TIME,
            sample::ID,
            sample::STREAM_ID,
            sample::CPU,
            sample::IDENTIFIER,
        ]
        .iter()
        .filter(|&&b| t & b != 0)
        .count()
            * 8
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self, out: &mut Vec<u8>, pid: u32, tid: u32, time: u64) {
        if !self.sample_id_all {
            return;
        }
        let t = self.sample_type;
        if t & sample::TID != 0 {
            out.extend_from_slice(&pid.to_le_bytes());
            out.extend_from_slice(&tid.to_le_bytes());
        }
        if t & sample::TIME != 0 {
            out.extend_from_slice(&time.to_le_bytes());
        }
        for bit in [
            sample::ID,
            sample::STREAM_ID,
            sample::CPU,
            sample::IDENTIFIER,
        ] {
            if t & bit != 0 {
                out.extend_from_slice(&0u64.to_le_bytes());
            }
        }
    }

    /// Where the time sits in a trailer of this shape, counted back from the record's end.
    pub fn time_from_end(&self) -> Option<usize> {
        if !self.sample_id_all || self.sample_type & sample::TIME == 0 {
            return None;
        }
        let after = [
            sample::ID,
            sample::STREAM_ID,
            sample::CPU,
            sample::IDENTIFIER,
        ]
        .iter()
        .filter(|&&b| self.sample_type & b != 0)
        .count();
        Some((after + 1) * 8)
    }
}

fn header(out: &mut Vec<u8>, ty: u32, misc: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&misc.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    start
}

/// A NUL-terminated string padded with NULs to a multiple of 8.
fn padded_str(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())];
    out.extend_from_slice(s);
    let pad = 8 - s.len() % 8;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn finish(out: &mut [u8], start: usize) {
    let size = (out.len() - start) as u16;
    out[start + 6..start + 8].copy_from_slice(&size.to_le_bytes());
}

/// The longest filename that keeps a record under perf's 64 KiB record size.
const MAX_NAME: usize = 4096;

pub enum FileId<'a> {
    Inode {
        maj: u32,
        min: u32,
        ino: u64,
        gen: u64,
    },
    BuildId(&'a [u8]),
}

#[allow(clippy::too_many_arguments)]
pub fn mmap2(
    out: &mut Vec<u8>,
    tr: &Trailer,
    pid: u32,
    tid: u32,
    addr: u64,
    len: u64,
    pgoff: u64,
    file: &FileId<'_>,
    prot: u32,
    flags: u32,
    filename: &[u8],
    time: u64,
) {
    let bid = matches!(file, FileId::BuildId(b) if !b.is_empty() && b.len() <= 20);
    let start = header(
        out,
        rtype::MMAP2,
        misc::USER | if bid { misc::MMAP_BUILD_ID } else { 0 },
    );
    for v in [pid, tid] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [addr, len, pgoff] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    match file {
        FileId::BuildId(b) if bid => {
            out.push(b.len() as u8);
            out.extend_from_slice(&[0u8; 3]);
            let mut id = [0u8; 20];
            id[..b.len()].copy_from_slice(b);
            out.extend_from_slice(&id);
        }
        FileId::Inode { maj, min, ino, gen } => {
            out.extend_from_slice(&maj.to_le_bytes());
            out.extend_from_slice(&min.to_le_bytes());
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&gen.to_le_bytes());
        }
        FileId::BuildId(_) => out.extend_from_slice(&[0u8; 24]),
    }
    out.extend_from_slice(&prot.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    padded_str(out, &filename[..filename.len().min(MAX_NAME)]);
    tr.write(out, pid, tid, time);
    finish(out, start);
}

/// COMM; `exec` marks it as the name an exec gave the process.
pub fn comm(
    out: &mut Vec<u8>,
    tr: &Trailer,
    pid: u32,
    tid: u32,
    name: &[u8],
    exec: bool,
    time: u64,
) {
    let start = header(
        out,
        rtype::COMM,
        misc::USER | if exec { misc::COMM_EXEC } else { 0 },
    );
    out.extend_from_slice(&pid.to_le_bytes());
    out.extend_from_slice(&tid.to_le_bytes());
    // The kernel keeps 15 characters of a task's name.
    padded_str(out, &name[..name.len().min(15)]);
    tr.write(out, pid, tid, time);
    finish(out, start);
}

/// FORK (`exit` false) or EXIT.
#[allow(clippy::too_many_arguments)]
pub fn fork_exit(
    out: &mut Vec<u8>,
    tr: &Trailer,
    exit: bool,
    pid: u32,
    ppid: u32,
    tid: u32,
    ptid: u32,
    time: u64,
) {
    let start = header(
        out,
        if exit { rtype::EXIT } else { rtype::FORK },
        misc::USER,
    );
    for v in [pid, ppid, tid, ptid] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&time.to_le_bytes());
    tr.write(out, pid, tid, time);
    finish(out, start);
}

/// A SAMPLE with sample_type IP|TID|TIME|PERIOD: one mapping event, at the mapped address.
pub fn mapping_sample(out: &mut Vec<u8>, pid: u32, tid: u32, ip: u64, time: u64) {
    let start = header(out, rtype::SAMPLE, misc::USER);
    out.extend_from_slice(&ip.to_le_bytes());
    out.extend_from_slice(&pid.to_le_bytes());
    out.extend_from_slice(&tid.to_le_bytes());
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    finish(out, start);
}

pub fn finished_round(out: &mut Vec<u8>) {
    let start = header(out, rtype::FINISHED_ROUND, 0);
    finish(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_multiples_of_eight_and_trailer_is_last() {
        let tr = Trailer {
            sample_type: sample::TID | sample::TIME | sample::ID,
            sample_id_all: true,
        };
        for name in [&b"/x"[..], b"/1234567", b"/memfd:hot (deleted)"] {
            let mut v = Vec::new();
            mmap2(
                &mut v,
                &tr,
                7,
                8,
                0x1000,
                0x2000,
                0,
                &FileId::BuildId(&[1; 20]),
                5,
                2,
                name,
                99,
            );
            assert_eq!(v.len() % 8, 0);
            assert_eq!(u16::from_le_bytes([v[6], v[7]]) as usize, v.len());
            let back = tr.time_from_end().unwrap();
            assert_eq!(
                u64::from_le_bytes(v[v.len() - back..v.len() - back + 8].try_into().unwrap()),
                99
            );
        }
    }
}
