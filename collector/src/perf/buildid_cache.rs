//! perf's build-id cache (tools/perf/util/build-id.c): `<dir>/<path>/<build-id>/elf` holds the
//! image, and `<dir>/.build-id/<2 hex>/<38 hex>` links to its directory. perf looks there by
//! build-id when the file a map names cannot be opened (a memfd, a deleted library); it
//! rejects a file whose own build-id differs, so only the image itself goes in.

use std::io;
use std::path::{Path, PathBuf};

/// perf's default: $HOME/.debug.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".debug")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Puts `image` in the cache as the file `name` with `build_id`. Returns false if the cache
/// already has that build-id.
pub fn install(dir: &Path, build_id: &[u8], name: &[u8], image: &Path) -> io::Result<bool> {
    let h = hex(build_id);
    if h.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "build-id too short",
        ));
    }
    let link_dir = dir.join(".build-id").join(&h[..2]);
    let link = link_dir.join(&h[2..]);
    if link.symlink_metadata().is_ok() {
        return Ok(false);
    }
    // The directory is named after the file, as perf names it (without the leading '/').
    let name = String::from_utf8_lossy(name);
    let rel: PathBuf = name
        .trim_start_matches('/')
        .split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect();
    let target = dir.join(&rel).join(&h);
    std::fs::create_dir_all(&target)?;
    let elf = target.join("elf");
    if !elf.exists() && std::fs::hard_link(image, &elf).is_err() {
        std::fs::copy(image, &elf)?;
    }
    std::fs::create_dir_all(&link_dir)?;
    let up: PathBuf = std::iter::repeat_n("..", 2).collect();
    std::os::unix::fs::symlink(up.join(&rel).join(&h), &link)?;
    Ok(true)
}
