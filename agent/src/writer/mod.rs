//! The writer thread: drains the channel, turns events into records, keeps the agent's model of
//! the address space, compares it with the kernel's when something happened that the hooks
//! cannot see, and writes the record file. It is the only agent thread; it runs with every
//! signal blocked and never takes a lock an application thread holds.

mod events;
mod keep;
mod memory;
mod out;
mod process;
mod reconcile;
mod snapshot;
mod watch;

pub mod identity;

use crate::agent::{self, req, Agent};
use crate::event::Event;
use crate::images::{self, Seen, Sink};
use crate::{sys, tls};
use identity::Identities;
use mapagent_record::records::{self as rec, image_cause, trigger, Record};
use mapagent_record::replay::Replayer;
use mapagent_record::{Bytes, Hex};
use out::Out;
use std::sync::atomic::Ordering;

/// The state of the process when recording starts, taken synchronously by the thread that
/// starts the agent (the constructor, or the fork child's handler) before the application runs
/// on: nothing the application does can race it.
pub struct Baseline {
    desc: process::Described,
    /// None in a fork child: the writer lists images itself (dl_iterate_phdr in a fork handler
    /// could meet a loader lock another parent thread held at fork time).
    images: Option<ImageList>,
    kernel: Vec<mapagent_record::Region>,
    ts: u64,
}

impl Baseline {
    pub fn take(ag: &Agent, list_images: bool) -> Baseline {
        let images = list_images.then(|| {
            let mut l = ImageList::default();
            images::list_all(&mut l);
            l
        });
        let ts = sys::now();
        let mut buf = Vec::new();
        let kernel = match sys::read_file(c"/proc/self/maps", &mut buf) {
            Ok(()) => mapagent_record::region::parse_maps(&buf).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        Baseline {
            desc: process::describe(ag),
            images,
            kernel,
            ts,
        }
    }
}

struct Start {
    ag: &'static Agent,
    /// A writer parked for a credential change, to resume; None for a fresh start.
    resume: Option<Box<Writer>>,
    /// The record file, created by the thread that starts the writer (the constructor, or the
    /// fork child's handler) before the application can close 0 and expect it back: opened
    /// by the writer alongside main, it could briefly take that number.
    out: Option<Out>,
}

/// How long the copies of images found missing at exit may take.
const EXIT_KEEP_BUDGET_NS: u64 = 1_000_000_000;

/// Minimum time between reconciliations that events (not requests) ask for.
const MIN_RECONCILE_NS: u64 = 20_000_000;

/// Starts the writer with every signal blocked (the thread inherits the mask). A bare pthread,
/// not std::thread: std registers thread-local destructors through glibc's calloc, which would
/// give the agent a malloc arena of its own (64 MiB reserved) in the application's address space.
pub fn spawn(ag: &'static Agent) -> Result<(), ()> {
    // If it fails here, the writer tries again and reports why.
    let out = Out::create(&ag.cfg.dir, ag.pid).ok();
    spawn_thread(Start {
        ag,
        resume: None,
        out,
    })
}

/// Starts a new writer thread that carries on with a parked writer's state.
pub fn resume(ag: &'static Agent, w: Box<Writer>) -> Result<(), ()> {
    spawn_thread(Start {
        ag,
        resume: Some(w),
        out: None,
    })
}

fn spawn_thread(s: Start) -> Result<(), ()> {
    let ag = s.ag;
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        let s = unsafe { Box::from_raw(arg as *mut Start) };
        run(*s);
        core::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(s));
    let Some(create) = crate::real::pthread_create() else {
        return Err(());
    };
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        // Joinable: a credential change waits for the parked writer to be gone for good.
        let mut th: libc::pthread_t = 0;
        let r = create(&mut th, &attr, start, arg as *mut libc::c_void);
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r != 0 {
            drop(Box::from_raw(arg));
            return Err(());
        }
        libc::pthread_setname_np(th, c"mapagent".as_ptr());
        ag.writer_thread.store(th as u64, Ordering::Release);
    }
    Ok(())
}

/// What the writer loop ended with.
enum Ending {
    Exited,
    /// Parked for a credential change; the request to acknowledge once the state is saved.
    Parked(u32),
}

fn run(s: Start) {
    let t = tls::get();
    t.depth = 1; // hooked calls made by the writer itself pass through
    t.flags |= tls::FLAG_WRITER;
    let ag = s.ag;
    ag.writer_tid.store(sys::gettid() as u32, Ordering::Release);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        move || -> Result<bool, String> {
            let mut w = match s.resume {
                Some(w) => w,
                None => Box::new(Writer::start(s.ag, s.out)?),
            };
            match w.run()? {
                Ending::Exited => {}
                // Hand the state over before acknowledging: the resumer reads it right after.
                Ending::Parked(seq) => {
                    ag.parked.store(Box::into_raw(w), Ordering::Release);
                    ag.ctl.complete(seq);
                    return Ok(true);
                }
            }
            Ok(false)
        },
    ));
    match &result {
        Ok(Ok(_)) => {}
        Ok(Err(msg)) => agent::disable(msg.as_bytes()),
        Err(_) => agent::disable(b"internal error in the writer thread"),
    }
    // Whatever happened (but a park, which the next writer carries on from), never leave an
    // exiting thread waiting.
    if !matches!(result, Ok(Ok(true))) {
        ag.ctl.complete(ag.ctl.seq.load(Ordering::Acquire));
    }
}

pub struct Writer {
    ag: &'static Agent,
    out: Out,
    model: Replayer,
    ids: Identities,
    batch: Vec<Event>,
    /// Hooked calls since the last reconcile that imply changes the hooks cannot see.
    triggers: Vec<reconcile::Trigger>,
    last_reconcile: u64,
    /// Last moment the agent saw the kernel's view agree with its model (a reconcile, or a
    /// statm check that showed nothing unexplained): invisible changes happened after it.
    verified_at: u64,
    last_statm: u64,
    /// statm minus the model's own totals at the last reconcile (see reconcile::statm_moved).
    statm_offset: Option<(i64, i64)>,
    events_total: u64,
    lost_since: u64,
    /// slow_started as of the last periodic image check, and when that was.
    slow_seen: u64,
    last_rescan: u64,
    /// Images loaded now, and those already kept (or tried).
    loaded: std::collections::HashMap<u64, LoadedImage>,
    kept: std::collections::HashSet<u64>,
    page: u64,
    /// Page snapshots taken, when the last one ended, and those mapagent_snapshot asked for
    /// (label, tid) still to take.
    snapshots: u32,
    last_snapshot: u64,
    pending_snapshots: Vec<(Vec<u8>, u32)>,
    watches: watch::Watches,
}

impl Writer {
    fn start(ag: &'static Agent, out: Option<Out>) -> Result<Writer, String> {
        let mut base = Self::wait_for_baseline(ag)?;
        let out = match out {
            Some(o) => o,
            None => Out::create(&ag.cfg.dir, ag.pid)?,
        };
        ag.out_fd.store(out.fd, Ordering::Release);
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let mut w = Writer {
            ag,
            out,
            model: Replayer::new(page),
            ids: Identities::default(),
            batch: Vec::with_capacity(4096),
            triggers: Vec::new(),
            last_reconcile: 0,
            verified_at: 0,
            last_statm: 0,
            statm_offset: None,
            events_total: 0,
            lost_since: ag.start_mono,
            slow_seen: 0,
            last_rescan: 0,
            loaded: Default::default(),
            kept: Default::default(),
            page,
            snapshots: 0,
            last_snapshot: sys::now(),
            pending_snapshots: Vec::new(),
            watches: Default::default(),
        };
        base.desc.gen = w.out.gen;
        w.out.put(&Record::Process(base.desc.record()));
        match base.images.take() {
            Some(list) => w.write_images(list, image_cause::STARTUP, base.ts),
            None => {
                let mut list = ImageList::default();
                images::list_all(&mut list);
                w.write_images(list, image_cause::STARTUP, sys::now());
            }
        }
        w.ids.learn(&base.kernel);
        w.write_reconcile(base.kernel, base.ts, trigger::BASELINE, true);
        w.out.flush()?;
        tracing::info!(file = %w.out.path.display(), "recording");
        Ok(w)
    }

    fn wait_for_baseline(ag: &Agent) -> Result<Box<Baseline>, String> {
        let deadline = sys::now() + 10_000_000_000;
        loop {
            let p = ag.baseline.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                return Ok(unsafe { Box::from_raw(p) });
            }
            if sys::now() > deadline {
                return Err("no baseline from the starting thread".into());
            }
            sys::futex_wait(&ag.wake, 0, 5_000_000);
            ag.wake.store(0, Ordering::Release);
        }
    }

    fn run(&mut self) -> Result<Ending, String> {
        // Where memory use starts (again after a fork: the child's own line begins here).
        self.mem_usage();
        self.resolve_watches(true);
        self.sample_watches(0, true);
        let mut sleep_ns = 1_000_000u64;
        let mut last_cycle = sys::now();
        loop {
            let (requests, seq) = self.ag.ctl.take();
            let n = self.drain();
            self.retry_watches();
            self.rescan_images();
            self.note_lost();
            let now = sys::now();
            let since_reconcile = now.saturating_sub(self.last_reconcile);
            if requests & req::EXIT != 0 {
                // The last look at the pages (with its own final reconcile).
                self.snapshot(rec::snapshot_trigger::EXIT, b"exit", 0);
            } else if requests & req::FLUSH != 0 {
                // An exec ends this program's image: its last look too.
                self.snapshot(rec::snapshot_trigger::EXIT, b"exec", 0);
            } else if let Some(t) = self
                .triggers
                .first()
                .filter(|_| since_reconcile >= MIN_RECONCILE_NS)
            {
                // Triggered checks are rate-limited: images are already placed exactly, and
                // what a check finds keeps the time of the call that triggered it.
                self.reconcile(t.kind);
            } else if now.saturating_sub(self.last_statm) >= 5_000_000 {
                self.last_statm = now;
                if self.statm_moved(now) {
                    self.reconcile(trigger::STATM);
                } else if self.ag.cfg.reconcile_ms > 0
                    && since_reconcile >= self.ag.cfg.reconcile_ms * 1_000_000
                {
                    self.reconcile(trigger::PERIODIC);
                }
            }
            if requests & req::EXIT == 0 {
                self.due_snapshots(requests & req::SIGNAL_SNAPSHOT != 0);
                if requests & req::WATCH != 0 {
                    self.sample_watches(self.ag.ctl.watch_tid.load(Ordering::Acquire), true);
                }
                let every = self.ag.cfg.watch_ms.saturating_mul(1_000_000);
                if every > 0 && sys::now().saturating_sub(self.watches.last_sample) >= every {
                    self.sample_watches(0, false);
                }
            }
            if requests & req::EXIT != 0 {
                self.finish();
                self.out.flush()?;
                self.out.close();
                agent::deactivate();
                self.ag.ctl.complete(seq);
                return Ok(Ending::Exited);
            }
            self.out.flush()?;
            if requests & req::PARK != 0 && !self.ag.park_cancelled.swap(false, Ordering::AcqRel) {
                // Acknowledged by the thread function once the state is saved.
                return Ok(Ending::Parked(seq));
            }
            self.ag.ctl.complete(seq);
            // The hot path never wakes the writer (that would be a syscall); requests do.
            // Otherwise sleep so that the channel would be about a quarter full at the rate
            // events arrived last cycle: rarely awake (an awake writer costs the application
            // mm-lock and TLB traffic), never letting a burst overflow. Capped by
            // MAPAGENT_FLUSH_MS.
            let t = sys::now();
            let elapsed = t.saturating_sub(last_cycle).max(1);
            last_cycle = t;
            let cap = self.ag.cfg.flush_ms * 1_000_000;
            sleep_ns = if n == 0 {
                (sleep_ns * 2).min(cap)
            } else {
                let quarter = (self.ag.cfg.buffer / 4) as u64;
                (quarter.saturating_mul(elapsed) / n as u64).clamp(200_000, cap)
            };
            // Wake in time for the next interval snapshot and watch sample.
            let every = self.ag.cfg.interval_ms.saturating_mul(1_000_000);
            if every > 0 {
                let due = self.last_snapshot.saturating_add(every).saturating_sub(t);
                sleep_ns = sleep_ns.min(due.max(100_000));
            }
            let every = self.ag.cfg.watch_ms.saturating_mul(1_000_000);
            if every > 0 {
                let due = self
                    .watches
                    .last_sample
                    .saturating_add(every)
                    .saturating_sub(t);
                sleep_ns = sleep_ns.min(due.max(100_000));
            }
            // Arm the burst wake again, then sleep unless a burst or a request arrived during
            // this cycle (a wake that came in meanwhile left `wake` at 1: futex_wait returns).
            self.ag.woken.store(false, Ordering::SeqCst);
            if self.ag.channel_busy() || self.ag.ctl.pending.load(Ordering::SeqCst) != 0 {
                continue;
            }
            if self.ag.wake.swap(0, Ordering::SeqCst) == 0 {
                sys::futex_wait(&self.ag.wake, 0, sleep_ns);
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

    fn note_lost(&mut self) {
        let n = self.ag.lost.swap(0, Ordering::AcqRel);
        if n > 0 {
            let ts = sys::now();
            self.ag.lost_total.fetch_add(n, Ordering::Relaxed);
            self.out.put(&Record::Lost(rec::Lost {
                ts,
                count: n,
                since: self.lost_since,
            }));
            self.lost_since = ts;
            tracing::warn!(
                count = n,
                "events dropped: channel full (raise MAPAGENT_BUFFER)"
            );
        }
    }

    /// Loads the hooks could not see (glibc's internal dlopen for NSS, iconv...). Skipped
    /// while interposed dlopen/dlclose calls are active: their hooks report what they did.
    fn rescan_images(&mut self) {
        // Rarely: each walk takes the loader's lock, and such loads are rare.
        let now = sys::now();
        if now.saturating_sub(self.last_rescan) < 250_000_000 {
            return;
        }
        self.last_rescan = now;
        let slow = self.ag.slow_started.load(Ordering::SeqCst);
        let busy = slow != self.ag.slow_finished.load(Ordering::SeqCst) || slow != self.slow_seen;
        self.slow_seen = slow;
        if busy {
            return;
        }
        let mut found = ImageList::default();
        images::try_rescan(&mut found);
        // A hooked call that started during the walk is what loaded or unloaded these.
        let overlapped = self.ag.slow_started.load(Ordering::SeqCst) != slow;
        let ts = sys::now();
        let unloaded = std::mem::take(&mut found.unloaded);
        let loads = ImageList {
            loaded: found.loaded,
            unloaded: Vec::new(),
        };
        let (load_cause, unload_cause) = if overlapped {
            (image_cause::DLOPEN, image_cause::DLCLOSE)
        } else {
            (image_cause::RESCAN, image_cause::RESCAN)
        };
        self.write_images(loads, load_cause, ts);
        self.write_images(
            ImageList {
                loaded: Vec::new(),
                unloaded,
            },
            unload_cause,
            ts,
        );
    }

    fn write_images(&mut self, found: ImageList, cause: u8, ts: u64) {
        for img in &found.loaded {
            self.put_image(
                ts,
                cause,
                img.key,
                img.bias,
                &img.phdrs,
                &img.build_id,
                &img.name,
                None,
                None,
            );
        }
        for &(key, bias) in &found.unloaded {
            self.loaded.remove(&key);
            self.emit(Record::ImageUnload(rec::ImageUnload {
                ts,
                id: key,
                bias,
                cause,
            }));
        }
        if cause != image_cause::STARTUP && (!found.loaded.is_empty() || !found.unloaded.is_empty())
        {
            // Loaded or unloaded behind the hooks' back (or the walk a dlopen asked for ran
            // here): check now.
            self.note_trigger(trigger::PERIODIC, ts, 0);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn put_image(
        &mut self,
        ts: u64,
        cause: u8,
        key: u64,
        bias: u64,
        phdrs: &[rec::Phdr],
        build_id: &[u8],
        name: &[u8],
        file: Option<identity::FileKey>,
        keep: Option<keep::Source>,
    ) {
        // The file as the kernel names it (canonical, absolute; dlopen may have been given a
        // relative path or a symlink): from the mapping of the first loaded segment, or from
        // the file system if the image is already gone.
        let first = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD);
        // When the hook pinned (dev, inode), only a mapping of that very file counts.
        let mapped = first
            .and_then(|p| {
                self.ids
                    .region_at(bias.wrapping_add(p.vaddr) & !(self.page - 1))
            })
            .filter(|r| r.is_file() && !r.name.is_empty())
            .filter(|r| file.is_none_or(|k| k == (r.dev_major, r.dev_minor, r.ino)));
        let range = mapped.as_ref().map(|r| (r.start, r.end));
        // Not in the model yet (ld.so maps behind the hooks' back): the descriptor the hook
        // pinned names the file as the kernel does, even after the application closed the fd
        // it passed to dlopen ("/proc/self/fd/4" -> "/memfd:lib (deleted)").
        let pinned_name = match (&keep, file) {
            (Some(keep::Source::Fd(fd)), Some(k)) if sys::fd_identity(*fd) == Some(k) => {
                let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
                sys::readlink(&link).map(|p| (p, k.0, k.1, k.2))
            }
            _ => None,
        };
        let (path, dev_major, dev_minor, ino) = match (mapped, pinned_name) {
            (Some(r), _) => (r.name, r.dev_major, r.dev_minor, r.ino),
            (None, Some(p)) => p,
            (None, None) => match on_disk(name) {
                found if file.is_none_or(|k| k == (found.1, found.2, found.3)) => found,
                _ => {
                    let k = file.unwrap_or_default();
                    (name.to_vec(), k.0, k.1, k.2)
                }
            },
        };
        let r = Record::Image(rec::Image {
            ts,
            id: key,
            cause,
            bias,
            path: Bytes(&path),
            dev_major,
            dev_minor,
            ino,
            build_id: Hex(build_id),
            phdrs: phdrs.to_vec(),
        });
        self.emit(r);
        let pinned = (ino != 0).then_some((dev_major, dev_minor, ino));
        let main = key == unsafe { libc::getauxval(libc::AT_PHDR) };
        let img = LoadedImage {
            path: path.clone(),
            pinned,
            build_id: build_id.to_vec(),
            range,
            main,
        };
        let src = keep.or_else(|| img.source());
        self.loaded.insert(key, img);
        if let Some(src) = src {
            self.keep_image(ts, key, build_id, &path, pinned, src);
        }
    }

    /// The last records of a file.
    fn finish(&mut self) {
        self.note_lost();
        // Images still loaded whose file was deleted or replaced since they were loaded: the
        // last chance to keep a copy.
        let ts = sys::now();
        type Pending = (
            u64,
            Vec<u8>,
            Vec<u8>,
            Option<identity::FileKey>,
            keep::Source,
        );
        let pending: Vec<Pending> = self
            .loaded
            .iter()
            .filter(|(id, _)| !self.kept.contains(id))
            .filter_map(|(&id, img)| {
                Some((
                    id,
                    img.build_id.clone(),
                    img.path.clone(),
                    img.pinned,
                    img.source()?,
                ))
            })
            .collect();
        // Bounded: the exiting thread waits for us (EXIT_WAIT_NS), and an upgrade that replaced
        // every library must not turn exit into a long copy.
        let deadline = ts + EXIT_KEEP_BUDGET_NS;
        for (id, bid, path, pinned, src) in pending {
            if sys::now() > deadline {
                let why = b"not copied: out of time at exit (1 s budget)";
                self.put_kept_failed(ts, id, &bid, &path, why);
                continue;
            }
            self.keep_image(ts, id, &bid, &path, pinned, src);
        }
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

/// Canonical path, device and inode of an image file (as maps would name it), or the name
/// as given when it cannot be found (the vDSO, a deleted file).
/// The kernel's own name for it (an O_PATH descriptor read back through /proc), so it
/// matches maps exactly and glibc's malloc is never involved (realpath would be).
fn on_disk(name: &[u8]) -> (Vec<u8>, u32, u32, u64) {
    if name.is_empty() || name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") {
        return (name.to_vec(), 0, 0, 0);
    }
    let Ok(c) = std::ffi::CString::new(name) else {
        return (name.to_vec(), 0, 0, 0);
    };
    let fd = unsafe { sys::high_fd(libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)) };
    if fd < 0 {
        return (name.to_vec(), 0, 0, 0);
    }
    let id = sys::fd_identity(fd);
    let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    let path = sys::readlink(&link).unwrap_or_else(|| name.to_vec());
    unsafe { libc::close(fd) };
    match id {
        Some((ma, mi, ino)) => (path, ma, mi, ino),
        None => (path, 0, 0, 0),
    }
}

/// What the writer remembers of a loaded image (to keep a copy of it later if need be).
pub struct LoadedImage {
    path: Vec<u8>,
    pub(super) pinned: Option<identity::FileKey>,
    build_id: Vec<u8>,
    /// The mapping of its first segment, when the kernel showed it.
    range: Option<(u64, u64)>,
    main: bool,
}

impl LoadedImage {
    /// A path that still reaches the mapped file, whatever happened to its name.
    fn source(&self) -> Option<keep::Source> {
        if self.main {
            return Some(keep::Source::Path(b"/proc/self/exe".to_vec()));
        }
        let (s, e) = self.range?;
        Some(keep::Source::Path(
            format!("/proc/self/map_files/{s:x}-{e:x}").into_bytes(),
        ))
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
