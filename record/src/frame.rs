//! The file envelope: a 32-byte header, then frames. Each frame carries its own length and a
//! CRC-32C, so a file cut anywhere (SIGKILL mid-write, a full disk) reads up to its last whole
//! frame, and a flipped bit is reported at the frame where it sits.

use crate::crc32c;
use core::fmt;

pub const MAGIC: [u8; 8] = *b"MAPAGENT";
pub const VERSION_MAJOR: u16 = 1;
/// Bumped when record kinds are added; readers skip kinds they do not know.
pub const VERSION_MINOR: u16 = 5;
pub const FILE_HEADER_LEN: usize = 32;

/// "MREC" read as a little-endian u32; marks the start of every frame.
pub const FRAME_SYNC: u32 = u32::from_le_bytes(*b"MREC");
pub const FRAME_HEADER_LEN: usize = 16;
/// No frame is larger; a bigger length field means corruption.
pub const MAX_PAYLOAD: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
}

/// Writes the 32-byte file header.
pub fn encode_file_header(out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&VERSION_MINOR.to_le_bytes());
    out.extend_from_slice(&(FILE_HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&0u32.to_le_bytes()); // reserved
    let crc = crc32c::checksum(&out[start..start + 24]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Empty,
    Short(usize),
    /// Not a mapagent record; `looks_like` names what it seems to be instead, if anything.
    NotRecord {
        looks_like: Option<&'static str>,
    },
    FutureVersion {
        major: u16,
        minor: u16,
    },
    BadChecksum,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Empty => write!(f, "empty file, not a mapagent record"),
            HeaderError::Short(n) => write!(f, "file header truncated ({n} of {FILE_HEADER_LEN} bytes)"),
            HeaderError::NotRecord { looks_like: Some(k) } => {
                write!(f, "not a mapagent record (looks like {k})")
            }
            HeaderError::NotRecord { looks_like: None } => {
                write!(f, "not a mapagent record (bad magic at offset 0)")
            }
            HeaderError::FutureVersion { major, minor } => write!(
                f,
                "record format version {major}.{minor} is newer than this mapagent reads ({VERSION_MAJOR}.x); upgrade mapagent"
            ),
            HeaderError::BadChecksum => write!(f, "file header checksum mismatch at offset 0"),
        }
    }
}

fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"PERFILE2") || data.starts_with(b"PERFILE") {
        Some("a perf.data file")
    } else if data.starts_with(b"\x7fELF") {
        Some("an ELF file")
    } else if data.starts_with(b"\x1f\x8b") {
        Some("a gzip file")
    } else {
        None
    }
}

pub fn parse_file_header(data: &[u8]) -> Result<FileHeader, HeaderError> {
    if data.is_empty() {
        return Err(HeaderError::Empty);
    }
    if data.len() < 8 || data[..8] != MAGIC {
        if data.len() < 8 && MAGIC.starts_with(data) {
            return Err(HeaderError::Short(data.len()));
        }
        return Err(HeaderError::NotRecord {
            looks_like: sniff(data),
        });
    }
    if data.len() < FILE_HEADER_LEN {
        return Err(HeaderError::Short(data.len()));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    let major = u16_at(8);
    let minor = u16_at(10);
    if major > VERSION_MAJOR {
        return Err(HeaderError::FutureVersion { major, minor });
    }
    if crc32c::checksum(&data[..24]) != u32_at(24) {
        return Err(HeaderError::BadChecksum);
    }
    Ok(FileHeader {
        major,
        minor,
        flags: u32_at(16),
    })
}

/// Appends one frame; `payload` writes the record body into the buffer.
pub fn encode_frame(kind: u16, out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&FRAME_SYNC.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // len + crc, patched below
    let body = out.len();
    payload(out);
    let len = (out.len() - body) as u32;
    out[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
    let mut crc = crc32c::checksum(&out[start + 4..start + 12]);
    crc = crc32c::update(crc, &out[body..]);
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
}

/// One whole, checksum-verified frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Byte offset of the frame header in the file.
    pub offset: u64,
    pub kind: u16,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The file ends inside a frame: everything before `offset` is good.
    Truncated {
        offset: u64,
        needed: u64,
        available: u64,
    },
    BadSync {
        offset: u64,
    },
    TooLarge {
        offset: u64,
        len: u64,
    },
    BadChecksum {
        offset: u64,
        kind: u16,
    },
}

impl FrameError {
    pub fn offset(&self) -> u64 {
        match *self {
            FrameError::Truncated { offset, .. }
            | FrameError::BadSync { offset }
            | FrameError::TooLarge { offset, .. }
            | FrameError::BadChecksum { offset, .. } => offset,
        }
    }
    pub fn is_truncation(&self) -> bool {
        matches!(self, FrameError::Truncated { .. })
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::Truncated { offset, needed, available } => write!(
                f,
                "truncated at offset {offset:#x}: the last frame needs {needed} bytes, {available} present"
            ),
            FrameError::BadSync { offset } => write!(f, "corrupt record at offset {offset:#x}: no frame marker"),
            FrameError::TooLarge { offset, len } => {
                write!(f, "corrupt record at offset {offset:#x}: frame length {len} is impossible")
            }
            FrameError::BadChecksum { offset, kind } => {
                write!(f, "corrupt record at offset {offset:#x}: checksum mismatch (kind {kind})")
            }
        }
    }
}

/// Iterates the frames after the file header. Stops after the first error.
pub struct Frames<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// `data` is the whole file, header included.
    pub fn new(data: &'a [u8]) -> Self {
        Self::range(data, FILE_HEADER_LEN, data.len())
    }

    /// The frames from offset `start` up to `end`, both frame boundaries (see
    /// [`boundary_after`]); offsets stay those of the whole file.
    pub fn range(data: &'a [u8], start: usize, end: usize) -> Self {
        let end = end.min(data.len());
        Frames {
            data: &data[..end],
            pos: start.min(end),
            failed: false,
        }
    }
}

/// The first frame boundary at or after `target`, found by following frame lengths from the
/// first frame without checking contents; None if the headers stop making sense before it.
/// Lets a reader check the two halves of a large file at once.
pub fn boundary_after(data: &[u8], target: usize) -> Option<usize> {
    let mut pos = FILE_HEADER_LEN;
    while pos < target {
        let h = data.get(pos..pos + FRAME_HEADER_LEN)?;
        if u32::from_le_bytes([h[0], h[1], h[2], h[3]]) != FRAME_SYNC {
            return None;
        }
        let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        if len > MAX_PAYLOAD {
            return None;
        }
        pos += FRAME_HEADER_LEN + len;
    }
    (pos <= data.len()).then_some(pos)
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let offset = self.pos as u64;
        let rest = &self.data[self.pos..];
        let err = |e| Some(Err(e));
        if rest.len() < FRAME_HEADER_LEN {
            self.failed = true;
            // A cut inside the header: still report as truncation if what is there is plausible.
            let sync = FRAME_SYNC.to_le_bytes();
            let n = rest.len().min(4);
            if rest[..n] != sync[..n] {
                return err(FrameError::BadSync { offset });
            }
            return err(FrameError::Truncated {
                offset,
                needed: FRAME_HEADER_LEN as u64,
                available: rest.len() as u64,
            });
        }
        let sync = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if sync != FRAME_SYNC {
            self.failed = true;
            return err(FrameError::BadSync { offset });
        }
        let kind = u16::from_le_bytes([rest[4], rest[5]]);
        let len = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        let crc = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
        if len > MAX_PAYLOAD {
            self.failed = true;
            return err(FrameError::TooLarge {
                offset,
                len: len as u64,
            });
        }
        let total = FRAME_HEADER_LEN + len;
        if rest.len() < total {
            self.failed = true;
            return err(FrameError::Truncated {
                offset,
                needed: total as u64,
                available: rest.len() as u64,
            });
        }
        let payload = &rest[FRAME_HEADER_LEN..total];
        let got = crc32c::update(crc32c::checksum(&rest[4..12]), payload);
        if got != crc {
            self.failed = true;
            return err(FrameError::BadChecksum { offset, kind });
        }
        self.pos += total;
        Some(Ok(Frame {
            offset,
            kind,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        encode_file_header(&mut v);
        encode_frame(7, &mut v, |o| o.extend_from_slice(b"hello"));
        encode_frame(8, &mut v, |o| {
            o.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9])
        });
        v
    }

    #[test]
    fn reads_whole_file() {
        let v = sample();
        assert_eq!(parse_file_header(&v).unwrap().major, VERSION_MAJOR);
        let frames: Vec<_> = Frames::new(&v).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, b"hello");
        assert_eq!(frames[1].kind, 8);
    }

    #[test]
    fn every_cut_reads_up_to_last_whole_frame() {
        let v = sample();
        let first_end = FILE_HEADER_LEN + FRAME_HEADER_LEN + 5;
        for cut in FILE_HEADER_LEN..v.len() {
            let got: Vec<_> = Frames::new(&v[..cut]).collect();
            let ok = got.iter().filter(|r| r.is_ok()).count();
            assert_eq!(ok, if cut >= first_end { 1 } else { 0 }, "cut {cut}");
            if cut != FILE_HEADER_LEN && cut != first_end {
                assert!(
                    got.last().unwrap().as_ref().unwrap_err().is_truncation(),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn every_bit_flip_in_a_frame_is_caught() {
        let v = sample();
        for i in FILE_HEADER_LEN..v.len() {
            for bit in 0..8 {
                let mut c = v.clone();
                c[i] ^= 1 << bit;
                let r: Vec<_> = Frames::new(&c).collect();
                assert!(
                    r.iter().any(|x| x.is_err()),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(parse_file_header(b""), Err(HeaderError::Empty));
        assert_eq!(parse_file_header(b"MAPA"), Err(HeaderError::Short(4)));
        assert_eq!(
            parse_file_header(b"PERFILE2xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            Err(HeaderError::NotRecord {
                looks_like: Some("a perf.data file")
            })
        );
        let mut v = sample();
        v[8] = 9; // major 9
        assert!(matches!(
            parse_file_header(&v),
            Err(HeaderError::FutureVersion { major: 9, .. })
        ));
        let mut v = sample();
        v[17] ^= 1;
        assert_eq!(parse_file_header(&v), Err(HeaderError::BadChecksum));
    }
}
