//! What an application can call (declared in include/mapagent.h).

use crate::agent::{self, req};
use crate::event::{Event, Kind};
use crate::payload::SlotWriter;
use crate::tls;
use core::ffi::{c_char, c_int};

/// How long mapagent_snapshot waits for the writer to finish the snapshot.
const SNAPSHOT_WAIT_NS: u64 = 30_000_000_000;

/// Takes a page-state snapshot of every mapping, labelled `label` (may be NULL), and returns
/// once it is written: 0, or -1 if the agent is not recording (not preloaded, disabled,
/// inert under setuid) or the writer did not finish in time.
#[no_mangle]
pub unsafe extern "C" fn mapagent_snapshot(label: *const c_char) -> c_int {
    std::panic::catch_unwind(|| snapshot(label)).unwrap_or(-1)
}

/// Asks the writer for `what` and waits for it: 0, or -1 if the agent is not recording, the
/// caller is the writer itself (it would wait for itself) or inside the agent, `prepare`
/// failed, or the writer took longer than SNAPSHOT_WAIT_NS.
fn ask_writer(what: u32, prepare: impl FnOnce(&'static agent::Agent) -> bool) -> c_int {
    let Some(ag) = agent::recording() else {
        return -1;
    };
    if tls::is_writer() {
        return -1;
    }
    let Some(_g) = tls::Guard::enter() else {
        return -1;
    };
    if !prepare(ag) {
        return -1;
    }
    let seq = ag.ctl.post(ag, what);
    if ag.ctl.wait(ag, seq, SNAPSHOT_WAIT_NS) {
        0
    } else {
        -1
    }
}

fn snapshot(label: *const c_char) -> c_int {
    ask_writer(req::SNAPSHOT, |ag| {
        // The label goes through the ring, in order with the events before it.
        let mut buf = [0u8; 1024];
        let mut w = SlotWriter::new(&mut buf);
        unsafe { w.cstr(label) };
        ag.push_with(Event::new(Kind::Snapshot, [0; 8]), w.written())
    })
}

/// The handler for MAPAGENT_SNAPSHOT_SIGNAL: asks the writer for a snapshot and returns
/// (async-signal-safe: an atomic and a futex wake).
pub extern "C" fn on_snapshot_signal(_sig: c_int) {
    if let Some(ag) = agent::recording() {
        ag.ctl.post(ag, req::SIGNAL_SNAPSHOT);
    }
}

/// Samples every watched global (MAPAGENT_WATCH) now and returns once the values are written:
/// 0, or -1 if the agent is not recording or did not answer within 30 s. The values are read
/// by the writer thread while this caller waits, so they are what this thread left them.
#[no_mangle]
pub unsafe extern "C" fn mapagent_watch_sample() -> c_int {
    std::panic::catch_unwind(watch_sample).unwrap_or(-1)
}

fn watch_sample() -> c_int {
    ask_writer(req::WATCH, |ag| {
        ag.ctl
            .watch_tid
            .store(tls::tid(), core::sync::atomic::Ordering::Release);
        true
    })
}
