//! The interposed functions. Each stays thin: call the real thing, then hand what happened to
//! `record` (mapping calls) or to the module that owns the work (images, lifecycle).

pub mod dl;
pub mod mem;
pub mod proc;
