//! Preallocated payload slots. A hook takes a free slot index from a lock-free list, fills it,
//! and sends the index with its event; the writer reads it and gives it back. No slot free
//! means the event is dropped and counted, like a full channel.

use crossbeam_channel::{bounded, Receiver, Sender};

pub const SLOT_SIZE: usize = 8192;

pub struct Pool {
    /// n * SLOT_SIZE bytes, left untouched until a slot is used (no RSS for idle slots).
    mem: *mut u8,
    n: usize,
    free_tx: Sender<u16>,
    free_rx: Receiver<u16>,
}

// Each slot is owned by exactly one side at a time (hook while filling, writer while reading),
// handed over through the channels.
unsafe impl Sync for Pool {}
unsafe impl Send for Pool {}

impl Pool {
    pub fn new(n: usize) -> Pool {
        let n = n.min(u16::MAX as usize - 1);
        let layout =
            std::alloc::Layout::from_size_align(n.max(1) * SLOT_SIZE, 4096).expect("small layout");
        let mem = unsafe { std::alloc::alloc(layout) };
        let n = if mem.is_null() { 0 } else { n };
        let (free_tx, free_rx) = bounded(n);
        for i in 0..n {
            let _ = free_tx.try_send(i as u16);
        }
        Pool {
            mem,
            n,
            free_tx,
            free_rx,
        }
    }

    /// A free slot, or None (never blocks).
    #[inline]
    pub fn take(&self) -> Option<u16> {
        self.free_rx.try_recv().ok()
    }

    pub fn give(&self, i: u16) {
        let _ = self.free_tx.try_send(i);
    }

    /// The slot's bytes. The caller must own the slot.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes(&self, i: u16) -> &mut [u8] {
        debug_assert!((i as usize) < self.n);
        core::slice::from_raw_parts_mut(self.mem.add(i as usize * SLOT_SIZE), SLOT_SIZE)
    }
}

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
