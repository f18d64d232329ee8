//! mapagent, the collector: reads what libmapagent.so recorded and turns it into what people
//! use. Each CLI subcommand maps onto a module under `cmd`; `input` reads record files and
//! `timeline` replays them.

pub mod bigvec;
pub mod cmd;
pub mod error;
pub mod input;
pub mod perf;
pub mod progress;
pub mod select;
pub mod text;
pub mod timeline;

pub use error::{Error, Result};
