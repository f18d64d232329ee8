//! The writer thread: drains the channel, turns events into records, keeps the agent's model of
//! the address space, compares it with the kernel's when something happened that the hooks
//! cannot see, and writes the record file. It is the only agent thread; it runs with every
//! signal blocked and never takes a lock an application thread holds.

mod events;
mod out;
mod process;
mod reconcile;

pub mod identity;

use crate::agent::{self, req, Agent};
use crate::event::Event;
use crate::images::{self, Seen, Sink};
use crate::{sys, tls};
use identity::Identities;
use mapagent_record::replay::Replayer;
use mapagent_record::records::{self as rec, image_cause, trigger, Record};
use mapagent_record::{Bytes, Hex};
use out::Out;
use std::sync::atomic::Ordering;

/// Starts the writer with every signal blocked (the thread inherits the mask). A bare pthread,
/// not std::thread: std registers thread-local destructors through glibc's calloc, which would
/// give the agent a malloc arena of its own (64 MiB reserved) in the application's address space.
pub fn spawn(ag: &'static Agent) -> Result<(), ()> {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        run(unsafe { &*(arg as *const Agent) });
        core::ptr::null_mut()
    }
    let Some(create) = crate::real::pthread_create() else { return Err(()) };
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut th: libc::pthread_t = 0;
        let r = create(&mut th, &attr, start, ag as *const Agent as *mut libc::c_void);
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r != 0 {
            return Err(());
        }
        libc::pthread_setname_np(th, c"mapagent".as_ptr());
    }
    Ok(())
}

fn run(ag: &'static Agent) {
    let t = tls::get();
    t.depth = 1; // hooked calls made by the writer itself pass through
    t.flags |= tls::FLAG_WRITER;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
        let mut w = Writer::start(ag)?;
        w.run()
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => agent::disable(msg.as_bytes()),
        Err(_) => agent::disable(b"internal error in the writer thread"),
    }
    // Whatever happened, never leave an exiting thread waiting.
    ag.ctl.complete(ag.ctl.seq.load(Ordering::Acquire));
}

pub struct Writer {
    ag: &'static Agent,
    out: Out,
    model: Replayer,
    ids: Identities,
    batch: Vec<Event>,
    /// The earliest hooked call since the last reconcile that implies changes the hooks
    /// cannot see (dlopen, pthread_create...): (trigger, time).
    pending: Option<(u8, u64)>,
    last_reconcile: u64,
    /// Last moment the agent saw the kernel's view agree with its model (a reconcile, or a
    /// statm check that showed nothing unexplained): invisible changes happened after it.
    verified_at: u64,
    last_statm: u64,
    /// statm minus the model's own totals at the last reconcile (see reconcile::statm_moved).
    statm_offset: Option<(i64, i64)>,
    events_total: u64,
    lost_since: u64,
    page: u64,
}

impl Writer {
    fn start(ag: &'static Agent) -> Result<Writer, String> {
        let out = Out::create(&ag.cfg.dir, ag.pid)?;
        ag.out_fd.store(out.fd, Ordering::Release);
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let mut w = Writer {
            ag,
            out,
            model: Replayer::new(page),
            ids: Identities::default(),
            batch: Vec::with_capacity(4096),
            pending: None,
            last_reconcile: 0,
            verified_at: 0,
            last_statm: 0,
            statm_offset: None,
            events_total: 0,
            lost_since: ag.start_mono,
            page,
        };
        let p = process::describe(ag, w.out.gen);
        w.out.put(&Record::Process(p.record()));
        w.list_images(image_cause::STARTUP, true);
        w.reconcile(trigger::BASELINE, 0);
        w.out.flush()?;
        tracing::info!(file = %w.out.path.display(), "recording");
        Ok(w)
    }

    fn run(&mut self) -> Result<(), String> {
        let mut idle_ms = 1u64;
        loop {
            let (requests, seq) = self.ag.ctl.take();
            let n = self.drain();
            self.rescan_images();
            self.note_lost();
            let now = sys::now();
            let forced = requests & (req::FLUSH | req::EXIT | req::SNAPSHOT) != 0;
            if let Some((t, ts)) = self.pending {
                self.reconcile(t, ts);
            } else if forced {
                let t = if requests & req::EXIT != 0 { trigger::EXIT } else { trigger::SNAPSHOT };
                self.reconcile(t, 0);
            } else if now.saturating_sub(self.last_statm) >= 5_000_000 {
                self.last_statm = now;
                if self.statm_moved(now) {
                    self.reconcile(trigger::STATM, 0);
                } else if self.ag.cfg.reconcile_ms > 0
                    && now.saturating_sub(self.last_reconcile) >= self.ag.cfg.reconcile_ms * 1_000_000
                {
                    self.reconcile(trigger::PERIODIC, 0);
                }
            }
            if requests & req::EXIT != 0 {
                self.finish();
                self.out.flush()?;
                self.out.close();
                agent::deactivate();
                self.ag.ctl.complete(seq);
                return Ok(());
            }
            self.out.flush()?;
            self.ag.ctl.complete(seq);
            // Poll fast while events flow, back off to MAPAGENT_FLUSH_MS when idle. The hot path
            // never wakes the writer (that would be a syscall); requests do.
            idle_ms = if n > 0 { 1 } else { (idle_ms * 2).min(self.ag.cfg.flush_ms) };
            self.ag.wake.store(0, Ordering::Release);
            if self.ag.ctl.pending.load(Ordering::Acquire) == 0 {
                sys::futex_wait(&self.ag.wake, 0, idle_ms * 1_000_000);
            }
        }
    }

    /// Takes everything in the channel and processes it in time order.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut got = false;
            while let Ok(ev) = self.ag.rx.try_recv() {
                self.batch.push(ev);
                got = true;
                if self.batch.len() >= 8192 {
                    break;
                }
            }
            if !got {
                break;
            }
            n += self.batch.len();
            self.process_batch();
        }
        n
    }

    fn process_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        batch.sort_by_key(|e| e.ts);
        for ev in &batch {
            self.handle(ev);
            if ev.slot != crate::event::NO_SLOT {
                self.ag.pool.give(ev.slot);
            }
        }
        self.events_total += batch.len() as u64;
        batch.clear();
        self.batch = batch;
        self.ids.end_batch();
    }

    fn note_trigger(&mut self, t: u8, ts: u64) {
        match self.pending {
            Some((_, old)) if old <= ts => {}
            _ => self.pending = Some((t, ts)),
        }
    }

    fn note_lost(&mut self) {
        let n = self.ag.lost.swap(0, Ordering::AcqRel);
        if n > 0 {
            let ts = sys::now();
            self.ag.lost_total.fetch_add(n, Ordering::Relaxed);
            self.out.put(&Record::Lost(rec::Lost { ts, count: n, since: self.lost_since }));
            self.lost_since = ts;
            tracing::warn!(count = n, "events dropped: channel full (raise MAPAGENT_BUFFER)");
        }
    }

    /// Loads the hooks could not see (glibc's internal dlopen for NSS, iconv...).
    fn rescan_images(&mut self) {
        let mut found = ImageList::default();
        images::rescan(&mut found);
        self.write_images(found, image_cause::RESCAN);
    }

    fn list_images(&mut self, cause: u8, all: bool) {
        let mut found = ImageList::default();
        if all {
            images::list_all(&mut found);
        } else {
            images::rescan(&mut found);
        }
        self.write_images(found, cause);
    }

    fn write_images(&mut self, found: ImageList, cause: u8) {
        let ts = sys::now();
        for img in &found.loaded {
            self.put_image(ts, cause, img.key, img.bias, &img.phdrs, &img.build_id, &img.name);
        }
        for &(key, bias) in &found.unloaded {
            self.out.put(&Record::ImageUnload(rec::ImageUnload { ts, id: key, bias, cause }));
        }
        if cause == image_cause::RESCAN && (!found.loaded.is_empty() || !found.unloaded.is_empty()) {
            // Loaded behind the hooks' back at an unknown time: check now, attribute to `since`.
            self.pending.get_or_insert((trigger::PERIODIC, 0));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn put_image(&mut self, ts: u64, cause: u8, key: u64, bias: u64, phdrs: &[rec::Phdr], build_id: &[u8], name: &[u8]) {
        // Device and inode from the mapping of the first loaded segment.
        let first = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD);
        let (dev_major, dev_minor, ino) = first
            .and_then(|p| self.ids.region_at(bias.wrapping_add(p.vaddr) & !(self.page - 1)))
            .filter(|r| r.is_file())
            .map(|r| (r.dev_major, r.dev_minor, r.ino))
            .unwrap_or((0, 0, 0));
        self.out.put(&Record::Image(rec::Image {
            ts,
            id: key,
            cause,
            bias,
            path: Bytes(name),
            dev_major,
            dev_minor,
            ino,
            build_id: Hex(build_id),
            phdrs: phdrs.to_vec(),
        }));
    }

    /// The last records of a file.
    fn finish(&mut self) {
        self.note_lost();
        let ctl = &self.ag.ctl;
        self.out.put(&Record::Exit(rec::Exit {
            ts: sys::now(),
            how: ctl.exit_how.load(Ordering::Acquire) as u8,
            code: ctl.exit_code.load(Ordering::Acquire),
            lost_total: self.ag.lost_total.load(Ordering::Acquire),
            events_total: self.events_total,
        }));
    }
}

/// Images found by a walk on the writer thread (allocation is fine here: our own arena).
#[derive(Default)]
pub struct ImageList {
    loaded: Vec<OwnedImage>,
    unloaded: Vec<(u64, u64)>,
}

pub struct OwnedImage {
    key: u64,
    bias: u64,
    name: Vec<u8>,
    phdrs: Vec<rec::Phdr>,
    build_id: Vec<u8>,
}

pub fn phdr_rec(p: &libc::Elf64_Phdr) -> rec::Phdr {
    rec::Phdr {
        p_type: p.p_type,
        p_flags: p.p_flags,
        offset: p.p_offset,
        vaddr: p.p_vaddr,
        filesz: p.p_filesz,
        memsz: p.p_memsz,
        align: p.p_align,
    }
}

impl Sink for ImageList {
    fn load(&mut self, s: &Seen<'_>) -> bool {
        self.loaded.push(OwnedImage {
            key: s.key,
            bias: s.bias,
            name: s.name.to_vec(),
            phdrs: s.phdrs.iter().map(phdr_rec).collect(),
            build_id: s.build_id.to_vec(),
        });
        true
    }
    fn unload(&mut self, key: u64, bias: u64) {
        self.unloaded.push((key, bias));
    }
}
