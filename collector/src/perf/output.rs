//! Writing a perf.data: header, ids, attrs, the data section (streamed), then the feature
//! index table (exactly where the data ends, one entry per set bit in bit order) and the
//! feature payloads; the header is patched last.

use super::{ATTR_SIZE, HEADER_SIZE, PERF_MAGIC};
use std::io::{self, Seek, SeekFrom, Write};

pub struct AttrOut {
    /// struct perf_event_attr, ATTR_SIZE bytes.
    pub raw: Vec<u8>,
    pub ids: Vec<u8>,
}

pub struct PerfOut<W: Write + Seek> {
    w: W,
    attrs: (u64, u64),
    data_start: u64,
    data_len: u64,
}

impl<W: Write + Seek> PerfOut<W> {
    pub fn begin(mut w: W, attrs: &[AttrOut]) -> io::Result<Self> {
        w.write_all(&[0u8; HEADER_SIZE])?;
        let mut pos = HEADER_SIZE as u64;
        let mut id_secs = Vec::new();
        for a in attrs {
            w.write_all(&a.ids)?;
            id_secs.push((pos, a.ids.len() as u64));
            pos += a.ids.len() as u64;
        }
        let attrs_off = pos;
        for (a, (off, len)) in attrs.iter().zip(id_secs) {
            let mut raw = a.raw.clone();
            raw.resize(ATTR_SIZE, 0);
            raw[4..8].copy_from_slice(&(ATTR_SIZE as u32).to_le_bytes());
            w.write_all(&raw)?;
            w.write_all(&off.to_le_bytes())?;
            w.write_all(&len.to_le_bytes())?;
            pos += (ATTR_SIZE + 16) as u64;
        }
        Ok(PerfOut {
            w,
            attrs: (attrs_off, pos - attrs_off),
            data_start: pos,
            data_len: 0,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.data_len += bytes.len() as u64;
        Ok(())
    }

    /// Writes the features (bit, payload) and the header; returns the writer.
    pub fn finish(mut self, mut features: Vec<(u32, Vec<u8>)>) -> io::Result<W> {
        features.sort_by_key(|f| f.0);
        features.dedup_by_key(|f| f.0);
        let table = self.data_start + self.data_len;
        let mut payload_at = table + 16 * features.len() as u64;
        let mut bitmap = [0u64; 4];
        for (bit, data) in &features {
            bitmap[(*bit / 64) as usize] |= 1 << (bit % 64);
            self.w.write_all(&payload_at.to_le_bytes())?;
            self.w.write_all(&(data.len() as u64).to_le_bytes())?;
            payload_at += data.len() as u64;
        }
        for (_, data) in &features {
            self.w.write_all(data)?;
        }
        let mut h = Vec::with_capacity(HEADER_SIZE);
        h.extend_from_slice(PERF_MAGIC);
        h.extend_from_slice(&(HEADER_SIZE as u64).to_le_bytes());
        h.extend_from_slice(&((ATTR_SIZE + 16) as u64).to_le_bytes());
        h.extend_from_slice(&self.attrs.0.to_le_bytes());
        h.extend_from_slice(&self.attrs.1.to_le_bytes());
        h.extend_from_slice(&self.data_start.to_le_bytes());
        h.extend_from_slice(&self.data_len.to_le_bytes());
        h.extend_from_slice(&[0u8; 16]); // event_types
        for b in bitmap {
            h.extend_from_slice(&b.to_le_bytes());
        }
        self.w.flush()?;
        self.w.seek(SeekFrom::Start(0))?;
        self.w.write_all(&h)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// The perf_event_attr of a standalone mapagent perf.data: a software event whose samples are
/// the recorded mapping events (IP|TID|TIME|PERIOD, period 1), user space only, with
/// mmap2/comm/task side-band records carrying a TID|TIME trailer, on CLOCK_MONOTONIC.
pub fn dummy_attr() -> Vec<u8> {
    let mut a = vec![0u8; ATTR_SIZE];
    a[0..4].copy_from_slice(&1u32.to_le_bytes()); // PERF_TYPE_SOFTWARE
    a[4..8].copy_from_slice(&(ATTR_SIZE as u32).to_le_bytes());
    a[8..16].copy_from_slice(&9u64.to_le_bytes()); // PERF_COUNT_SW_DUMMY
    a[16..24].copy_from_slice(&1u64.to_le_bytes()); // sample_period
    let st = 1 /* IP */ | super::sample::TID | super::sample::TIME | (1 << 8) /* PERIOD */;
    a[24..32].copy_from_slice(&st.to_le_bytes());
    let flags: u64 = (1 << 0) // disabled
        | (1 << 5) // exclude_kernel: no kernel maps to expect
        | (1 << 8) // mmap
        | (1 << 9) // comm
        | (1 << 13) // task
        | (1 << 18) // sample_id_all
        | (1 << 23) // mmap2
        | (1 << 24) // comm_exec
        | (1 << 25); // use_clockid
    a[40..48].copy_from_slice(&flags.to_le_bytes());
    a[92..96].copy_from_slice(&(super::CLOCK_MONOTONIC as u32).to_le_bytes());
    a
}
