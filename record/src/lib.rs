//! The mapagent record format and address-space model, shared by the preloaded agent (which
//! writes records) and the collector (which reads them). It has no dependencies and never
//! allocates on a path the agent's hooks use: only the agent's writer thread encodes.
//!
//! A record file is a 32-byte header followed by frames (see [`frame`]); each frame holds one
//! [`records::Record`]. `docs/FORMAT.md` describes the layout byte by byte.

pub mod codec;
pub mod crc32c;
pub mod frame;
pub mod model;
pub mod records;
pub mod region;
pub mod replay;
pub mod runs;

pub use codec::{Bytes, DecodeError, Hex};
pub use records::Record;
pub use region::Region;
