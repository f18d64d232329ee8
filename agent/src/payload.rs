//! Payloads: a hook fills a buffer on its stack with u64s and length-prefixed byte strings,
//! and the ring carries it behind the event; the collector reads it back.

pub const SLOT_SIZE: usize = crate::ring::PAYLOAD_MAX;

/// Fills a slot with u64s and length-prefixed byte strings; byte strings are cut to fit.
pub struct SlotWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    pub truncated: bool,
}

impl<'a> SlotWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SlotWriter {
            buf,
            pos: 0,
            truncated: false,
        }
    }
    /// What was written so far: the frame's payload.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }
    pub fn u64(&mut self, v: u64) {
        if self.pos + 8 <= self.buf.len() {
            self.buf[self.pos..self.pos + 8].copy_from_slice(&v.to_le_bytes());
            self.pos += 8;
        } else {
            self.truncated = true;
        }
    }
    pub fn bytes(&mut self, b: &[u8]) {
        let room = self.buf.len().saturating_sub(self.pos + 4);
        let n = b.len().min(room);
        if n < b.len() {
            self.truncated = true;
        }
        if self.pos + 4 > self.buf.len() {
            return;
        }
        self.buf[self.pos..self.pos + 4].copy_from_slice(&(n as u32).to_le_bytes());
        self.buf[self.pos + 4..self.pos + 4 + n].copy_from_slice(&b[..n]);
        self.pos += 4 + n;
    }
    /// Copies a NUL-terminated C string without reading past SLOT_SIZE bytes of it.
    pub unsafe fn cstr(&mut self, p: *const libc::c_char) {
        if p.is_null() {
            self.bytes(b"");
            return;
        }
        let n = libc::strnlen(p, SLOT_SIZE);
        self.bytes(core::slice::from_raw_parts(p.cast::<u8>(), n));
    }
}

/// Reads back what a SlotWriter wrote.
pub struct SlotReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SlotReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        SlotReader { buf, pos: 0 }
    }
    pub fn u64(&mut self) -> u64 {
        let v = self
            .buf
            .get(self.pos..self.pos + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])));
        self.pos += 8;
        v.unwrap_or(0)
    }
    pub fn bytes(&mut self) -> &'a [u8] {
        let Some(l) = self.buf.get(self.pos..self.pos + 4) else {
            return b"";
        };
        let n = u32::from_le_bytes(l.try_into().unwrap_or([0; 4])) as usize;
        let s = self.buf.get(self.pos + 4..self.pos + 4 + n).unwrap_or(b"");
        self.pos += 4 + n;
        s
    }
}
