//! mapagent, the collector: reads what libmapagent.so recorded and turns it into what people
//! use. Each CLI subcommand maps onto a module under `cmd`; `input` reads record files and
//! `timeline` replays them.

pub mod bigvec;
pub mod check;
pub mod cmd;
pub mod core;
pub mod derive;
pub mod diff;
pub mod dirty;
pub mod elfimage;
pub mod error;
pub mod input;
pub mod mem;
pub mod output;
pub mod page_map;
pub mod perf;
pub mod progress;
pub mod select;
pub mod shm;
pub mod snapshot;
pub mod text;
pub mod timeline;
pub mod watch;

pub use error::{Error, Result};
