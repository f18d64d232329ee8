//! libmapagent.so: preload it (`LD_PRELOAD=libmapagent.so app`, or `mapagent run -- app`) and
//! it records, from inside the process, every loaded image and every change to the address
//! space into `$MAPAGENT_DIR/<pid>.mrec`.
//!
//! Layout: `hooks` are the interposed functions and stay thin; they build a fixed-size
//! `event::Event` and push it into a shared-memory ring (`ring`, `agent`). No thread of the
//! agent runs in the application: `collector` starts a process of its own per recorded
//! process (this very library, executed), where `writer` turns events into records (format:
//! the mapagent-record crate), keeps a model of the address space and reconciles it with the
//! kernel's from /proc/PID. `lifecycle` covers start, fork, exec, exit and fatal signals.
//! Everything the agent allocates comes from its own `arena`.

#![allow(clippy::missing_safety_doc)]

mod agent;
mod api;
mod arena;
mod collector;
mod config;
mod dlresolve;
mod event;
mod hooks;
mod images;
mod lifecycle;
mod log;
mod pages;
mod payload;
mod real;
mod ring;
mod sys;
mod tls;
mod writer;

#[global_allocator]
static ALLOC: arena::Arena = arena::Arena;

#[ctor::ctor(unsafe)]
fn mapagent_init() {
    // Nothing may unwind out of a constructor into the loader.
    if std::panic::catch_unwind(lifecycle::init).is_err() {
        agent::disable(b"internal error while starting");
    }
}
