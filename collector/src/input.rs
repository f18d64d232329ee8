//! Loading record files: one FILE, or every *.mrec in a DIR. A file cut short (SIGKILL, a full
//! disk) yields every whole record before the cut plus a warning; anything else wrong with a
//! file is an error naming the file and the offset.

use crate::error::{io, Error, Result};
use mapagent_record::frame::{self, FrameError, Frames};
use mapagent_record::records::{Process, Record};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One record file, mapped or read into memory.
pub struct Recording {
    pub path: PathBuf,
    data: Data,
}

/// A file's bytes.
pub enum Data {
    Owned(Vec<u8>),
    /// Mapped read-only: no copy of a file of hundreds of megabytes. The agent and perf only
    /// ever append to their files, so a file never shrinks under the mapping (which would
    /// SIGBUS).
    Mapped(memmap2::Mmap),
}

impl Data {
    /// A regular file, mapped (an empty one, which cannot be mapped, is read). Anything else
    /// is refused before it is opened for reading: a FIFO would block the reader forever, a
    /// device could be read without end. Not populated: the pages are read as they are
    /// parsed, so a huge sparse file costs no memory up front.
    pub fn open(path: &Path) -> Result<Data> {
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        if !meta.is_file() {
            return Err(Error::input(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io(path, e))?;
        let meta = file.metadata().map_err(|e| io(path, e))?;
        if !meta.is_file() {
            return Err(Error::input(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Ok(Data::Owned(Vec::new()));
        }
        // SAFETY: mapped read-only and private; see Data::Mapped for why it cannot shrink.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) };
        Ok(Data::Mapped(map.map_err(|e| io(path, e))?))
    }
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Mapped(m) => m,
        }
    }
}

/// A record and where it sits in its file. Kept undecoded (32 bytes, not the 200-odd of a
/// decoded Record: a recording of millions of mmaps stays small); `rec()` decodes it again,
/// which is cheap and cannot fail: `parse` checked every record.
pub struct Item<'a> {
    pub offset: u64,
    pub kind: u16,
    pub payload: &'a [u8],
}

impl<'a> Item<'a> {
    pub fn rec(&self) -> Record<'a> {
        Record::decode(self.kind, self.payload).unwrap_or(Record::Unknown {
            kind: self.kind,
            payload: self.payload,
        })
    }

    /// The record as its own type, when it is of that kind: no detour through Record.
    pub fn get<T: mapagent_record::codec::Wire<'a>>(&self, kind: u16) -> Option<T> {
        if self.kind != kind {
            return None;
        }
        T::get(&mut mapagent_record::codec::Dec::new(self.payload)).ok()
    }

    /// Bytes in the file, frame header included.
    pub fn size(&self) -> u32 {
        (frame::FRAME_HEADER_LEN + self.payload.len()) as u32
    }
}

/// The decoded contents of a file.
pub struct Parsed<'a> {
    pub items: Vec<Item<'a>>,
    /// Set when the file ends inside a record: what was read is still good.
    pub truncated: Option<String>,
    /// The file could not be read at all and was left out of a directory (its warning is
    /// already printed).
    pub skipped: bool,
}

impl Recording {
    pub fn open(path: &Path) -> Result<Recording> {
        Self::check(path.to_path_buf(), Data::open(path)?)
    }

    /// A recording from bytes already in memory (`path` is only used in messages).
    pub fn from_bytes(path: PathBuf, data: Vec<u8>) -> Result<Recording> {
        Self::check(path, Data::Owned(data))
    }

    fn check(path: PathBuf, data: Data) -> Result<Recording> {
        frame::parse_file_header(&data)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        Ok(Recording { path, data })
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Checks every frame. Corruption is an error; truncation is reported in `truncated`.
    pub fn parse(&self) -> Result<Parsed<'_>> {
        let data: &[u8] = &self.data;
        // Checking frames (checksums, decoding) is most of the cost of reading a big file: the
        // two halves are checked at once when a frame boundary near the middle can be found.
        let mid = (data.len() >= PARALLEL_MIN)
            .then(|| frame::boundary_after(data, data.len() / 2))
            .flatten()
            .filter(|&m| m < data.len());
        let (first, second) = match mid {
            Some(m) => std::thread::scope(|s| {
                let second = s.spawn(|| self.check_frames(m, data.len()));
                let first = self.check_frames(frame::FILE_HEADER_LEN, m);
                (
                    first,
                    second
                        .join()
                        .unwrap_or_else(|_| self.check_frames(m, data.len())),
                )
            }),
            None => (
                self.check_frames(frame::FILE_HEADER_LEN, data.len()),
                Ok((Vec::new(), None)),
            ),
        };
        let (mut items, mut cut) = first?;
        if cut.is_none() {
            let (more, c) = second?;
            items.extend(more);
            cut = c;
        }
        let truncated = cut.map(|e| {
            format!(
                "{}: {e}; showing the {} whole records before it",
                self.path.display(),
                items.len()
            )
        });
        Ok(Parsed {
            items,
            truncated,
            skipped: false,
        })
    }

    /// The frames between two boundaries, checked and decoded once; the frame error that cut
    /// them short, if the file is truncated.
    fn check_frames(
        &self,
        start: usize,
        end: usize,
    ) -> Result<(Vec<Item<'_>>, Option<FrameError>)> {
        // A frame is at least 20 bytes: an upper bound on the count.
        let mut items = crate::bigvec::with_capacity((end - start) / 20);
        for f in Frames::range(&self.data, start, end) {
            match f {
                Ok(f) => {
                    Record::validate(f.kind, f.payload).map_err(|e| {
                        Error::input(format!(
                            "{}: corrupt record at offset {:#x} (kind {}): {e}",
                            self.path.display(),
                            f.offset,
                            f.kind
                        ))
                    })?;
                    items.push(Item {
                        offset: f.offset,
                        kind: f.kind,
                        payload: f.payload,
                    });
                }
                Err(e @ FrameError::Truncated { .. }) => return Ok((items, Some(e))),
                Err(e) => return Err(Error::input(format!("{}: {e}", self.path.display()))),
            }
        }
        Ok((items, None))
    }
}

/// Files smaller than this are checked on one thread.
const PARALLEL_MIN: usize = 16 << 20;

impl<'a> Parsed<'a> {
    pub fn process(&self) -> Option<Process<'a>> {
        self.items.iter().find_map(|i| match i.rec() {
            Record::Process(p) => Some(p),
            _ => None,
        })
    }
}

/// Every record file named by `path` (a file, or a directory of *.mrec files), sorted.
pub fn record_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mrec"))
        .collect();
    if files.is_empty() {
        return Err(Error::input(format!(
            "{}: no record files (*.mrec) in this directory",
            path.display()
        )));
    }
    files.sort();
    Ok(files)
}

/// Opens every record file under `path`. In a directory, a file that cannot be read (empty,
/// foreign, not a regular file) is skipped with one warning naming it, and the rest are
/// read; a directory where no file can be read is an error.
pub fn open_all(path: &Path) -> Result<(Vec<Recording>, usize)> {
    let files = record_files(path)?;
    if files.len() == 1 && files[0] == path {
        return Ok((vec![Recording::open(path)?], 0));
    }
    let mut out = Vec::new();
    let mut first_error = None;
    for f in &files {
        match Recording::open(f) {
            Ok(r) => out.push(r),
            Err(e) => {
                eprintln!("mapagent: warning: {e}; skipped");
                first_error.get_or_insert(e);
            }
        }
    }
    match (out.is_empty(), first_error) {
        (true, Some(_)) => Err(Error::input(format!(
            "{}: none of its {} record files could be read",
            path.display(),
            files.len()
        ))),
        _ => {
            let skipped = files.len() - out.len();
            Ok((out, skipped))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapagent_record::records::Munmap;

    /// A file of `n` munmap records, big enough to be checked on two threads.
    fn big(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        frame::encode_file_header(&mut v);
        for i in 0..n {
            Record::Munmap(Munmap {
                ts: i,
                tid: 1,
                addr: i << 12,
                len: 4096,
                ret: 0,
                errno: 0,
            })
            .encode(&mut v);
        }
        v
    }

    fn parse(v: Vec<u8>) -> Result<(usize, Option<String>, Vec<u64>)> {
        let r = Recording::from_bytes("t.mrec".into(), v)?;
        let p = r.parse()?;
        let ts = p.items.iter().filter_map(|i| i.rec().ts()).collect();
        Ok((p.items.len(), p.truncated, ts))
    }

    const N: u64 = 500_000;

    #[test]
    fn halves_read_as_one() {
        let v = big(N);
        assert!(
            v.len() > PARALLEL_MIN,
            "the test must take the two-thread path"
        );
        let (n, cut, ts) = parse(v).unwrap();
        assert_eq!(n as u64, N);
        assert!(cut.is_none());
        assert!(ts.iter().copied().eq(0..N), "records in file order");
    }

    #[test]
    fn cut_in_second_half_keeps_everything_before() {
        let mut v = big(N);
        let len = v.len();
        v.truncate(len - 7);
        let (n, cut, _) = parse(v).unwrap();
        assert_eq!(n as u64, N - 1);
        assert!(cut
            .unwrap()
            .contains(&format!("showing the {} whole records", N - 1)));
    }

    #[test]
    fn corruption_in_either_half_is_an_error_at_its_offset() {
        for at in [1000, big(N).len() * 3 / 4] {
            let mut v = big(N);
            // The first frame boundary after `at`, then a byte of that frame's payload.
            let f = frame::boundary_after(&v, at).unwrap();
            v[f + frame::FRAME_HEADER_LEN + 2] ^= 0x40;
            let e = parse(v).unwrap_err().to_string();
            assert!(e.contains(&format!("{f:#x}")), "{at}: {e}");
        }
    }
}
