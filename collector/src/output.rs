//! Every file the CLI writes: never over one of its inputs, a record file or anything but a
//! regular file, never through a symlink, and never half-written. The data goes to a new
//! file beside the target (O_EXCL|O_NOFOLLOW) and is renamed over it when complete: rename
//! replaces a planted symlink instead of following it, and a failure leaves the target as it
//! was.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file being written; `commit` puts it in place, dropping it without commit removes it.
pub struct Output {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Output {
    /// Checks `dest` against `inputs` and opens the temporary file that will become it.
    pub fn create(dest: &Path, inputs: &[&Path]) -> Result<(Output, File)> {
        refuse(dest, inputs)?;
        let name = dest
            .file_name()
            .ok_or_else(|| Error::input(format!("{}: not a file name", dest.display())))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.mapagent-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| crate::error::io(&tmp, e))?;
        Ok((
            Output {
                tmp,
                dest: dest.to_path_buf(),
                done: false,
            },
            file,
        ))
    }

    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            Error::failure(format!(
                "{}: cannot put it in place: {e}",
                self.dest.display()
            ))
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` as above.
pub fn write(dest: &Path, inputs: &[&Path], bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let (out, mut f) = Output::create(dest, inputs)?;
    f.write_all(bytes)
        .map_err(|e| Error::failure(format!("writing {}: {e}", dest.display())))?;
    drop(f);
    out.commit()
}

/// Why `dest` must not be written, if it must not.
fn refuse(dest: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(m) = std::fs::symlink_metadata(dest) else {
        return Ok(()); // a new file
    };
    let no = |why: &str| {
        Err(Error::input(format!(
            "{}: {why}; not writing it",
            dest.display()
        )))
    };
    if m.file_type().is_symlink() {
        return no("is a symbolic link");
    }
    if !m.file_type().is_file() {
        return no("exists and is not a regular file");
    }
    for i in inputs {
        if let Ok(im) = std::fs::metadata(i) {
            if im.dev() == m.dev() && im.ino() == m.ino() {
                return no("is also an input");
            }
        }
    }
    let mut head = [0u8; 8];
    if let Ok(mut f) = File::open(dest) {
        use std::io::Read;
        if f.read_exact(&mut head).is_ok() && head == mapagent_record::frame::MAGIC {
            return no("is a mapagent record file");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_inputs_records_symlinks_and_non_files() {
        let d = std::env::temp_dir().join(format!("mapagent-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let input = d.join("in.data");
        std::fs::write(&input, b"PERFILE2 and more").unwrap();
        assert!(write(&input, &[&input], b"x").is_err());
        assert_eq!(
            std::fs::read(&input).unwrap(),
            b"PERFILE2 and more",
            "input intact"
        );
        let rec = d.join("1.mrec");
        std::fs::write(&rec, b"MAPAGENT....").unwrap();
        assert!(write(&rec, &[], b"x").is_err());
        let victim = d.join("victim");
        std::fs::write(&victim, b"secret").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(write(&link, &[], b"x").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
        assert!(write(&d, &[], b"x").is_err(), "a directory");
        let fresh = d.join("new.out");
        write(&fresh, &[&input], b"ok").unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"ok");
        write(&fresh, &[&input], b"again").unwrap();
        assert_eq!(
            std::fs::read(&fresh).unwrap(),
            b"again",
            "an earlier output is replaced"
        );
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            5,
            "no temporary left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
