//! One module per CLI subcommand.

pub mod check;
pub mod core;
pub mod diff;
pub mod dirty;
pub mod dump;
pub mod images;
pub mod inject;
pub mod maps;
pub mod mem;
pub mod pages;
pub mod perf;
pub mod perf_map;
pub mod run;
pub mod shm;
pub mod watch;

use crate::error::{Error, EXIT_BAD_INPUT};

/// Exit code for a command that printed its output but met a truncated file.
pub fn exit_code(truncated: bool) -> i32 {
    if truncated {
        EXIT_BAD_INPUT
    } else {
        0
    }
}

pub fn json_out<T: serde::Serialize>(v: &T) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::failure(format!("cannot write JSON: {e}")))?;
    println!("{s}");
    Ok(())
}
