//! dlopen, dlmopen, dlclose. The exported entry points are two-instruction naked stubs that
//! append the caller's return address as an extra argument: glibc resolves RUNPATH, $ORIGIN
//! and the namespace relative to the caller, and `dlresolve` reproduces that.

use crate::agent::{self, Agent};
use crate::dlresolve::{self, PATH_BUF};
use crate::event::{Event, Kind};
use crate::images::{self, Seen, Sink};
use crate::payload::SlotWriter;
use crate::sys;
use core::ffi::{c_char, c_int, c_long, c_void};
use mapagent_record::records::image_cause;

#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlopen(_file: *const c_char, _mode: c_int) -> *mut c_void {
    core::arch::naked_asm!("mov rdx, [rsp]", "jmp {imp}", imp = sym dlopen_from)
}

#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlmopen(_lmid: c_long, _file: *const c_char, _mode: c_int) -> *mut c_void {
    core::arch::naked_asm!("mov rcx, [rsp]", "jmp {imp}", imp = sym dlmopen_from)
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlopen(_file: *const c_char, _mode: c_int) -> *mut c_void {
    core::arch::naked_asm!("mov x2, x30", "b {imp}", imp = sym dlopen_from)
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlmopen(_lmid: c_long, _file: *const c_char, _mode: c_int) -> *mut c_void {
    core::arch::naked_asm!("mov x3, x30", "b {imp}", imp = sym dlmopen_from)
}

unsafe extern "C" fn dlopen_from(
    file: *const c_char,
    mode: c_int,
    caller: *const c_void,
) -> *mut c_void {
    open(None, file, mode, caller)
}

unsafe extern "C" fn dlmopen_from(
    lmid: c_long,
    file: *const c_char,
    mode: c_int,
    caller: *const c_void,
) -> *mut c_void {
    dlresolve::namespaces_in_use();
    open(Some(lmid), file, mode, caller)
}

unsafe fn open(
    lmid_arg: Option<c_long>,
    file: *const c_char,
    mode: c_int,
    caller: *const c_void,
) -> *mut c_void {
    let rec = agent::recording();
    let t0 = rec.map_or(0, |ag| ag.slow_begin());
    let mut buf = [0u8; PATH_BUF];
    let plan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dlresolve::plan(file, caller, &mut buf)
    }))
    .unwrap_or(dlresolve::Plan {
        rewritten: false,
        lmid: 0,
    });
    let path = if plan.rewritten {
        buf.as_ptr().cast()
    } else {
        file
    };
    let lmid = lmid_arg.unwrap_or(plan.lmid);
    let handle = if lmid_arg.is_some() || lmid != 0 {
        match crate::real::dlmopen() {
            Some(f) => f(lmid, path, mode),
            None => core::ptr::null_mut(),
        }
    } else {
        match crate::real::dlopen() {
            Some(f) => f(path, mode),
            None => core::ptr::null_mut(),
        }
    };
    let e = sys::errno();
    if let Some(ag) = rec {
        let mut pbuf = [0u8; 2 * PATH_BUF + 16];
        let mut w = SlotWriter::new(&mut pbuf);
        w.cstr(file);
        w.bytes(if plan.rewritten {
            &buf[..libc::strlen(buf.as_ptr().cast())]
        } else {
            b""
        });
        let ev = Event::new(
            Kind::Dlopen,
            [
                t0,
                mode as i64 as u64,
                lmid_arg.unwrap_or(-1) as u64,
                handle as u64,
                0,
                0,
                0,
                0,
            ],
        );
        ag.push_with(ev, w.written());
        images::rescan(&mut EventSink {
            ag,
            cause: image_cause::DLOPEN,
        });
        ag.slow_end();
    }
    sys::set_errno(e);
    handle
}

#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let rec = agent::recording();
    let t0 = rec.map_or(0, |ag| ag.slow_begin());
    let r = match crate::real::dlclose() {
        Some(f) => f(handle),
        None => -1,
    };
    let e = sys::errno();
    if let Some(ag) = rec {
        ag.push(Event::new(
            Kind::Dlclose,
            [handle as u64, r as i64 as u64, t0, 0, 0, 0, 0, 0],
        ));
        images::rescan(&mut EventSink {
            ag,
            cause: image_cause::DLCLOSE,
        });
        ag.slow_end();
    }
    sys::set_errno(e);
    r
}

/// Turns image changes seen by a hook into events (payload in the frame).
pub struct EventSink<'a> {
    pub ag: &'a Agent,
    pub cause: u8,
}

/// Most program headers a slot carries (real images have about ten).
const MAX_PHDRS: usize = 64;

impl Sink for EventSink<'_> {
    fn load(&mut self, s: &Seen<'_>) -> bool {
        // Pin the file's identity now: by the time the collector looks, another image may sit
        // at this address, or the file may be gone.
        let (ma, mi, ino) = s
            .cname
            .and_then(crate::sys::path_identity)
            .unwrap_or((0, 0, 0));
        let mut buf = [0u8; crate::payload::SLOT_SIZE];
        let mut w = SlotWriter::new(&mut buf);
        w.u64(s.key);
        w.u64(s.bias);
        w.u64((ma as u64) << 32 | mi as u64);
        w.u64(ino);
        let phdrs = &s.phdrs[..s.phdrs.len().min(MAX_PHDRS)];
        w.u64(phdrs.len() as u64);
        for p in phdrs {
            w.u64(p.p_type as u64 | (p.p_flags as u64) << 32);
            w.u64(p.p_offset);
            w.u64(p.p_vaddr);
            w.u64(p.p_filesz);
            w.u64(p.p_memsz);
            w.u64(p.p_align);
        }
        w.bytes(s.build_id);
        w.bytes(s.name);
        let ev = Event::new(Kind::ImageLoad, [self.cause as u64, 0, 0, 0, 0, 0, 0, 0]);
        self.ag.push_with(ev, w.written())
    }

    fn unload(&mut self, key: u64, bias: u64) {
        self.ag.push(Event::new(
            Kind::ImageUnload,
            [key, bias, self.cause as u64, 0, 0, 0, 0, 0],
        ));
    }
}
