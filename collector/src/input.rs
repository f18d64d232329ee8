//! Loading record files: one FILE, or every *.mrec in a DIR. A file cut short (SIGKILL, a full
//! disk) yields every whole record before the cut plus a warning; anything else wrong with a
//! file is an error naming the file and the offset.

use crate::error::{io, Error, Result};
use mapagent_record::frame::{self, FrameError, Frames};
use mapagent_record::records::{Process, Record};
use std::path::{Path, PathBuf};

/// One record file, read into memory.
pub struct Recording {
    pub path: PathBuf,
    data: Vec<u8>,
}

/// A record and where it sits in its file.
pub struct Item<'a> {
    pub offset: u64,
    pub size: u32,
    pub rec: Record<'a>,
}

/// The decoded contents of a file.
pub struct Parsed<'a> {
    pub items: Vec<Item<'a>>,
    /// Set when the file ends inside a record: what was read is still good.
    pub truncated: Option<String>,
}

impl Recording {
    pub fn open(path: &Path) -> Result<Recording> {
        let data = std::fs::read(path).map_err(|e| io(path, e))?;
        Self::from_bytes(path.to_path_buf(), data)
    }

    /// A recording from bytes already in memory (`path` is only used in messages).
    pub fn from_bytes(path: PathBuf, data: Vec<u8>) -> Result<Recording> {
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

    /// Decodes every frame. Corruption is an error; truncation is reported in `truncated`.
    pub fn parse(&self) -> Result<Parsed<'_>> {
        let mut items = Vec::new();
        let mut truncated = None;
        for f in Frames::new(&self.data) {
            match f {
                Ok(f) => {
                    let rec = Record::decode(f.kind, f.payload).map_err(|e| {
                        Error::input(format!(
                            "{}: corrupt record at offset {:#x} (kind {}): {e}",
                            self.path.display(),
                            f.offset,
                            f.kind
                        ))
                    })?;
                    items.push(Item {
                        offset: f.offset,
                        size: (frame::FRAME_HEADER_LEN + f.payload.len()) as u32,
                        rec,
                    });
                }
                Err(e @ FrameError::Truncated { .. }) => {
                    truncated = Some(format!(
                        "{}: {e}; showing the {} whole records before it",
                        self.path.display(),
                        items.len()
                    ));
                }
                Err(e) => return Err(Error::input(format!("{}: {e}", self.path.display()))),
            }
        }
        Ok(Parsed { items, truncated })
    }
}

impl<'a> Parsed<'a> {
    pub fn process(&self) -> Option<&Process<'a>> {
        self.items.iter().find_map(|i| match &i.rec {
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

/// Opens every record file under `path`.
pub fn open_all(path: &Path) -> Result<Vec<Recording>> {
    record_files(path)?
        .iter()
        .map(|p| Recording::open(p))
        .collect()
}
