//! One error type for the CLI: a single line saying what went wrong and where, and the exit
//! code it maps to (2 for bad input, 1 for everything else).

use std::fmt;

#[derive(Debug)]
pub struct Error {
    pub msg: String,
    pub code: i32,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_FAILURE: i32 = 1;

impl Error {
    /// Bad input: missing, truncated, corrupt or unsupported files, bad arguments.
    pub fn input(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: EXIT_BAD_INPUT,
        }
    }
    pub fn failure(msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            code: EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `path: what` for an I/O error on a path.
pub fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    Error::input(format!("{}: {}", path.display(), what))
}
