//! Reading a perf.data written by `perf record`, as far as injecting into it needs: the
//! header, the attrs and their ids, the feature sections, and a walk over the records. Every
//! read is bounds-checked; a file mapagent cannot rewrite safely is refused with a reason.

use super::event::Trailer;
use super::{feat, rtype, sample, ATTR_SIZE, HEADER_SIZE, PERF_MAGIC};

#[derive(Debug, Clone)]
pub struct Attr<'a> {
    /// attr.size bytes of struct perf_event_attr.
    pub raw: &'a [u8],
    pub ids: &'a [u8],
    pub sample_type: u64,
    pub flags: u64,
    pub clockid: i32,
}

impl Attr<'_> {
    pub fn sample_id_all(&self) -> bool {
        self.flags & (1 << 18) != 0
    }
    pub fn use_clockid(&self) -> bool {
        self.flags & (1 << 25) != 0
    }
}

pub struct PerfInput<'a> {
    pub data: &'a [u8],
    pub attr_size: u64,
    pub attrs: Vec<Attr<'a>>,
    /// The data section: offset, size.
    pub records: (u64, u64),
    pub features: [u64; 4],
    /// (feature bit, offset, size), in table order.
    pub sections: Vec<(u32, u64, u64)>,
}

/// One record of the data section.
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset: u64,
    pub ty: u32,
    pub misc: u16,
    pub bytes: &'a [u8],
}

fn u16_at(d: &[u8], o: u64) -> Option<u16> {
    let o = usize::try_from(o).ok()?;
    Some(u16::from_le_bytes(
        d.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(d: &[u8], o: u64) -> Option<u32> {
    let o = usize::try_from(o).ok()?;
    Some(u32::from_le_bytes(
        d.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u64_at(d: &[u8], o: u64) -> Option<u64> {
    let o = usize::try_from(o).ok()?;
    Some(u64::from_le_bytes(
        d.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn slice(d: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let s = usize::try_from(off).ok()?;
    let e = s.checked_add(usize::try_from(len).ok()?)?;
    d.get(s..e)
}

impl<'a> PerfInput<'a> {
    pub fn parse(data: &'a [u8]) -> Result<PerfInput<'a>, String> {
        if data.len() < 16 {
            return Err("too short for a perf.data file".into());
        }
        if &data[..8] != PERF_MAGIC {
            return Err(match &data[..8] {
                b"2ELIFREP" => "written on a machine of the other byte order; not supported".into(),
                b"PERFFILE" => "an old (version 1) perf.data; not supported".into(),
                b"MAPAGENT" => "this is a mapagent record, not a perf.data file".into(),
                _ => "not a perf.data file (bad magic at offset 0)".into(),
            });
        }
        let hsize = u64_at(data, 8).unwrap_or(0);
        if hsize == 16 {
            return Err("a pipe-mode perf.data (perf record -o -): it has no header to rewrite; record to a file".into());
        }
        if hsize != HEADER_SIZE as u64 || data.len() < HEADER_SIZE {
            return Err(format!("unsupported perf.data header size {hsize}"));
        }
        let attr_size = u64_at(data, 16).unwrap_or(0);
        let (attrs_off, attrs_len) = (u64_at(data, 24).unwrap_or(0), u64_at(data, 32).unwrap_or(0));
        let records = (u64_at(data, 40).unwrap_or(0), u64_at(data, 48).unwrap_or(0));
        let mut features = [0u64; 4];
        for (i, f) in features.iter_mut().enumerate() {
            *f = u64_at(data, 72 + 8 * i as u64).unwrap_or(0);
        }
        if attr_size < 16 + 64 || attr_size > 16 + ATTR_SIZE as u64 {
            return Err(format!("attr size {attr_size} is not one perf 6.1 writes"));
        }
        if slice(data, records.0, records.1).is_none() {
            return Err(format!(
                "data section {:#x}+{:#x} lies outside the file",
                records.0, records.1
            ));
        }
        let n = attrs_len / attr_size;
        if n == 0 || n > 4096 {
            return Err(format!("{n} event attributes"));
        }
        let mut attrs = Vec::new();
        for i in 0..n {
            // Offsets come from the file: saturate, so a wild one reads as out of bounds.
            let off = attrs_off.saturating_add(i * attr_size);
            let size = u32_at(data, off.saturating_add(4)).ok_or("attrs section truncated")? as u64;
            let size = if size == 0 { 64 } else { size };
            if size + 16 != attr_size {
                return Err(format!(
                    "attr {i} has size {size}, the header says {}",
                    attr_size - 16
                ));
            }
            let raw = slice(data, off, size).ok_or("attrs section truncated")?;
            let (ids_off, ids_len) = (
                u64_at(data, off.saturating_add(size)).unwrap_or(0),
                u64_at(data, off.saturating_add(size).saturating_add(8)).unwrap_or(0),
            );
            let ids = slice(data, ids_off, ids_len).ok_or("event ids lie outside the file")?;
            let flags = u64_at(raw, 40).unwrap_or(0);
            if flags & (1 << 31) != 0 || u64_at(raw, 24).unwrap_or(0) & (1 << 20) != 0 {
                return Err(
                    "records AUX area data (aux_output / PERF_SAMPLE_AUX): not supported".into(),
                );
            }
            attrs.push(Attr {
                raw,
                ids,
                sample_type: u64_at(raw, 24).unwrap_or(0),
                flags,
                clockid: u32_at(raw, 92).unwrap_or(0) as i32,
            });
        }
        let bit = |b: u32| features[(b / 64) as usize] & (1 << (b % 64)) != 0;
        for (b, what) in [
            (
                feat::AUXTRACE,
                "AUX area tracing data (intel_pt, cs_etm...)",
            ),
            (feat::STAT, "perf stat data"),
            (feat::DIR_FORMAT, "directory format (perf record --threads)"),
            (feat::COMPRESSED, "compressed records (perf record -z)"),
        ] {
            if bit(b) {
                return Err(format!("holds {what}: mapagent cannot rewrite it safely"));
            }
        }
        // The feature table sits right after the data section, one entry per set bit.
        let mut sections = Vec::new();
        let mut at = records.0 + records.1;
        for b in 0..256u32 {
            if bit(b) {
                let off = u64_at(data, at).ok_or("feature table truncated")?;
                let size = u64_at(data, at.saturating_add(8)).ok_or("feature table truncated")?;
                if slice(data, off, size).is_none() {
                    return Err(format!("feature {b} lies outside the file"));
                }
                sections.push((b, off, size));
                at = at.saturating_add(16);
            }
        }
        Ok(PerfInput {
            data,
            attr_size,
            attrs,
            records,
            features,
            sections,
        })
    }

    pub fn feature(&self, bit: u32) -> Option<&'a [u8]> {
        let (_, off, size) = self.sections.iter().find(|s| s.0 == bit)?;
        slice(self.data, *off, *size)
    }

    /// The trailer shape of non-sample records mapagent adds (they carry id 0: the first attr).
    pub fn trailer(&self) -> Trailer {
        let a = &self.attrs[0];
        Trailer {
            sample_type: a.sample_type,
            sample_id_all: a.sample_id_all(),
        }
    }

    /// Whether the recording's times are CLOCK_MONOTONIC (perf record -k CLOCK_MONOTONIC).
    pub fn monotonic(&self) -> bool {
        self.attrs
            .iter()
            .all(|a| a.use_clockid() && a.clockid == super::CLOCK_MONOTONIC)
    }

    /// Every record of the data section, in file order. Stops with an error on damage or on
    /// a record kind whose payload perf does not count in its size (AUXTRACE).
    pub fn records(&self) -> Records<'a> {
        Records {
            data: self.data,
            pos: self.records.0,
            end: self.records.0 + self.records.1,
        }
    }

    /// The time in a non-sample record's trailer, when its attr has one.
    pub fn record_time(&self, r: &RawRecord<'_>) -> Option<u64> {
        let tr = self.trailer();
        let back = tr.time_from_end()? as u64;
        let len = r.bytes.len() as u64;
        if r.ty == rtype::SAMPLE || len < 8 + back {
            return None;
        }
        u64_at(r.bytes, len - back)
    }

    /// The pid of a sample record.
    pub fn sample_pid(&self, r: &RawRecord<'_>) -> Option<u32> {
        let t = self.attrs[0].sample_type;
        if t & sample::TID == 0 {
            return None;
        }
        let mut off = 8u64;
        for b in [sample::IDENTIFIER, 1 /* IP */] {
            if t & b != 0 {
                off += 8;
            }
        }
        u32_at(r.bytes, off)
    }

    /// The time of a sample record (its TIME field, after IDENTIFIER, IP and TID).
    pub fn sample_time(&self, r: &RawRecord<'_>) -> Option<u64> {
        let t = self.attrs[0].sample_type;
        if t & sample::TIME == 0 {
            return None;
        }
        let mut off = 8u64;
        for b in [sample::IDENTIFIER, 1 /* IP */, sample::TID] {
            if t & b != 0 {
                off += 8;
            }
        }
        u64_at(r.bytes, off)
    }
}

pub struct Records<'a> {
    data: &'a [u8],
    pos: u64,
    end: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawRecord<'a>, String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let at = self.pos;
        let fail = |this: &mut Self, m: String| {
            this.pos = this.end;
            Some(Err(m))
        };
        let (Some(ty), Some(misc), Some(size)) = (
            u32_at(self.data, at),
            u16_at(self.data, at + 4),
            u16_at(self.data, at + 6),
        ) else {
            return fail(self, format!("record header truncated at offset {at:#x}"));
        };
        if size < 8 || at + size as u64 > self.end {
            return fail(
                self,
                format!("record at offset {at:#x} has an impossible size {size}"),
            );
        }
        match ty {
            rtype::AUX
            | rtype::ITRACE_START
            | rtype::AUX_OUTPUT_HW_ID
            | rtype::AUXTRACE_INFO
            | rtype::AUXTRACE
            | rtype::AUXTRACE_ERROR => {
                return fail(
                    self,
                    format!("AUX area tracing record (type {ty}) at offset {at:#x}: not supported"),
                )
            }
            rtype::COMPRESSED => {
                return fail(
                    self,
                    format!("compressed record at offset {at:#x}: not supported"),
                )
            }
            _ => {}
        }
        let bytes = slice(self.data, at, size as u64).expect("checked above");
        self.pos += size as u64;
        Some(Ok(RawRecord {
            offset: at,
            ty,
            misc,
            bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header whose attribute section starts near u64::MAX (found by cargo fuzz): an error,
    /// not an arithmetic overflow.
    #[test]
    fn wild_offsets_are_errors() {
        let mut d = vec![0u8; HEADER_SIZE + 64];
        d[..8].copy_from_slice(PERF_MAGIC);
        let put = |d: &mut Vec<u8>, o: usize, v: u64| d[o..o + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut d, 8, HEADER_SIZE as u64);
        put(&mut d, 16, 16 + ATTR_SIZE as u64);
        for attrs_off in [u64::MAX - 3, u64::MAX - 200, 1 << 63] {
            put(&mut d, 24, attrs_off);
            put(&mut d, 32, 16 + ATTR_SIZE as u64);
            put(&mut d, 40, HEADER_SIZE as u64);
            put(&mut d, 48, 0);
            assert!(PerfInput::parse(&d).is_err());
        }
    }
}
