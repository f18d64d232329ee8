//! A mapped region as /proc/PID/maps shows it, and the parser for that file.

use crate::codec::Bytes;
use crate::records::{rflags, RegionRec};
use core::fmt;

pub const PROT_READ: u8 = 1;
pub const PROT_WRITE: u8 = 2;
pub const PROT_EXEC: u8 = 4;

/// What the model knows of a VMA's hidden flags (the ones maps does not print but the kernel
/// compares before merging two VMAs). Kept beside a region, never compared or recorded.
pub mod vmf {
    /// The model saw the call that made this VMA; without it (a line read from maps) the
    /// flags are unknown and the model never merges the region with a neighbour.
    pub const KNOWN: u8 = 1;
    /// VM_ACCOUNT: private and writable at some time (mprotect to read-only keeps it). Why
    /// a library's RELRO VMA stays apart from the read-only one before it.
    pub const ACCOUNT: u8 = 2;
    /// VM_NORESERVE (MAP_NORESERVE): never accounted.
    pub const NORESERVE: u8 = 4;
    /// VM_NOHUGEPAGE, which MAP_STACK sets since Linux 6.7.
    pub const NOHUGEPAGE: u8 = 8;
    /// VM_GROWSDOWN (MAP_GROWSDOWN).
    pub const GROWSDOWN: u8 = 16;
}

/// One mapping. `src` is an opaque provenance tag for the user of the model (the collector:
/// which record created the region; the agent: when); it never takes part in comparisons,
/// nor does `vmf`.
#[derive(Clone, Debug, Default)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub prot: u8,
    pub shared: bool,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    pub name: Vec<u8>,
    pub src: u64,
    pub vmf: u8,
}

impl PartialEq for Region {
    fn eq(&self, o: &Self) -> bool {
        self.start == o.start
            && self.end == o.end
            && self.offset == o.offset
            && self.same_identity(o)
    }
}
impl Eq for Region {}

impl Region {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Backed by a file (including memfd, SysV and shared-anonymous shmem files).
    pub fn is_file(&self) -> bool {
        self.ino != 0 || self.name.first() == Some(&b'/')
    }
    /// Everything but the address range and the file offset.
    pub fn same_identity(&self, o: &Self) -> bool {
        self.prot == o.prot
            && self.shared == o.shared
            && self.dev_major == o.dev_major
            && self.dev_minor == o.dev_minor
            && self.ino == o.ino
            && self.name == o.name
    }
    /// Whether the kernel certainly shows `self` followed by `next` as one VMA: adjacent,
    /// same attributes, contiguous offsets for files, and hidden flags the model knows and
    /// finds equal. Anything else stays two lines until a view of the kernel's says otherwise.
    pub fn merges_with(&self, next: &Self) -> bool {
        self.end == next.start
            && self.same_identity(next)
            && (!self.is_file() || next.offset == self.offset.wrapping_add(self.len()))
            && self.vmf & vmf::KNOWN != 0
            && self.vmf == next.vmf
    }
    /// The part of `self` inside [start, end), with the file offset moved along.
    pub fn clip(&self, start: u64, end: u64) -> Region {
        let s = self.start.max(start);
        let e = self.end.min(end);
        let mut r = self.clone();
        if self.is_file() {
            r.offset = self.offset.wrapping_add(s - self.start);
        }
        r.start = s;
        r.end = e;
        r
    }
    /// "r-xp" as maps prints it.
    pub fn perms(&self) -> String {
        perms_string(self.prot, self.shared)
    }
    /// The name maps prints, with [anon] for an unnamed anonymous region.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            if self.is_file() {
                format!(
                    "[dev {:x}:{:x} ino {}]",
                    self.dev_major, self.dev_minor, self.ino
                )
            } else {
                "[anon]".to_string()
            }
        } else {
            String::from_utf8_lossy(&self.name).into_owned()
        }
    }
    pub fn to_rec(&self) -> RegionRec<'_> {
        RegionRec {
            start: self.start,
            end: self.end,
            prot: self.prot,
            flags: if self.shared { rflags::SHARED } else { 0 },
            offset: self.offset,
            dev_major: self.dev_major,
            dev_minor: self.dev_minor,
            ino: self.ino,
            name: Bytes(&self.name),
        }
    }
    pub fn from_rec(r: &RegionRec<'_>, src: u64) -> Region {
        Region {
            start: r.start,
            end: r.end,
            prot: r.prot,
            shared: r.flags & rflags::SHARED != 0,
            offset: r.offset,
            dev_major: r.dev_major,
            dev_minor: r.dev_minor,
            ino: r.ino,
            name: r.name.0.to_vec(),
            src,
            vmf: 0,
        }
    }
}

pub fn perms_string(prot: u8, shared: bool) -> String {
    let mut s = String::with_capacity(4);
    s.push(if prot & PROT_READ != 0 { 'r' } else { '-' });
    s.push(if prot & PROT_WRITE != 0 { 'w' } else { '-' });
    s.push(if prot & PROT_EXEC != 0 { 'x' } else { '-' });
    s.push(if shared { 's' } else { 'p' });
    s
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x}-{:x} {} {:08x} {:02x}:{:02x} {} {}",
            self.start,
            self.end,
            self.perms(),
            self.offset,
            self.dev_major,
            self.dev_minor,
            self.ino,
            self.display_name()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsParseError {
    pub line: usize,
    pub what: &'static str,
}

impl fmt::Display for MapsParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "maps line {}: {}", self.line, self.what)
    }
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = (c as char).to_digit(16)? as u64;
        v = (v << 4) | d;
    }
    Some(v)
}

fn dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Parses one line of /proc/PID/maps.
pub fn parse_maps_line(line: &[u8]) -> Option<Region> {
    let mut rest = line;
    let mut field = || {
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
        let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let (f, r) = rest.split_at(end);
        rest = r;
        f
    };
    let range = field();
    let perms = field();
    let offset = hex(field())?;
    let dev = field();
    let ino = dec(field())?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = hex(&range[..dash])?;
    let end = hex(&range[dash + 1..])?;
    let colon = dev.iter().position(|&c| c == b':')?;
    let dev_major = hex(&dev[..colon])? as u32;
    let dev_minor = hex(&dev[colon + 1..])? as u32;
    if perms.len() != 4 || end < start {
        return None;
    }
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= PROT_READ;
    }
    if perms[1] == b'w' {
        prot |= PROT_WRITE;
    }
    if perms[2] == b'x' {
        prot |= PROT_EXEC;
    }
    let shared = perms[3] == b's';
    let name_start = rest.iter().position(|&c| c != b' ').unwrap_or(rest.len());
    let name = rest[name_start..].to_vec();
    let mut r = Region {
        start,
        end,
        prot,
        shared,
        offset,
        dev_major,
        dev_minor,
        ino,
        name,
        src: 0,
        vmf: 0,
    };
    if !r.is_file() {
        r.offset = 0;
    }
    Some(r)
}

/// Parses a whole maps file.
pub fn parse_maps(text: &[u8]) -> Result<Vec<Region>, MapsParseError> {
    let mut out = Vec::new();
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(parse_maps_line(line).ok_or(MapsParseError {
            line: i + 1,
            what: "not a maps line",
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines() {
        let text = b"55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234567                    /usr/bin/cat\n\
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n\
7ffd8b9e2000-7ffd8ba03000 rw-p 00000000 00:00 0                          [stack]\n\
7f1000000000-7f1000001000 rw-s 00000000 00:01 5                          /memfd:ring buf (deleted)\n";
        let r = parse_maps(text).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].start, 0x55d0c0a00000);
        assert_eq!(r[0].perms(), "r--p");
        assert_eq!(r[0].ino, 1234567);
        assert_eq!(r[0].name, b"/usr/bin/cat");
        assert!(r[1].name.is_empty());
        assert_eq!(r[1].display_name(), "[anon]");
        assert_eq!(r[2].name, b"[stack]");
        assert!(r[3].shared);
        assert_eq!(r[3].name, b"/memfd:ring buf (deleted)");
        assert!(parse_maps(b"garbage\n").is_err());
    }

    #[test]
    fn merges_only_what_the_model_knows() {
        let known = |s, e, prot, ino, off, f| Region {
            start: s,
            end: e,
            prot,
            ino,
            offset: off,
            vmf: f,
            ..Default::default()
        };
        let k = vmf::KNOWN;
        assert!(known(0x1000, 0x2000, 3, 0, 0, k).merges_with(&known(0x2000, 0x3000, 3, 0, 0, k)));
        assert!(!known(0x1000, 0x2000, 3, 0, 0, k).merges_with(&known(0x2000, 0x3000, 1, 0, 0, k)));
        // Read off maps: two lines may be two VMAs for reasons maps does not show.
        assert!(!known(0x1000, 0x2000, 3, 0, 0, 0).merges_with(&known(0x2000, 0x3000, 3, 0, 0, 0)));
        // RELRO after rodata: same file, contiguous, both r--p, one accounted.
        assert!(!known(0x1000, 0x2000, 1, 9, 0, k).merges_with(&known(
            0x2000,
            0x3000,
            1,
            9,
            0x1000,
            k | vmf::ACCOUNT
        )));
        assert!(
            known(0x1000, 0x2000, 1, 9, 0, k).merges_with(&known(0x2000, 0x3000, 1, 9, 0x1000, k))
        );
        // Same file, offsets not contiguous (a ring buffer mapped twice): two lines.
        assert!(!known(0x1000, 0x2000, 1, 9, 0, k).merges_with(&known(0x2000, 0x3000, 1, 9, 0, k)));
    }
}
