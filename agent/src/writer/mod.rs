//! The writer thread: drains the channel, turns events into records, keeps the agent's model of
//! the address space, compares it with the kernel's when something happened that the hooks
//! cannot see, and writes the record file. It is the only agent thread; it runs with every
//! signal blocked and never takes a lock an application thread holds.

mod events;
mod keep;
mod kernel;
mod liveness;
mod memory;
mod out;
mod perf_ring;
mod process;
mod reconcile;
mod snapshot;
mod watch;

pub mod identity;

use crate::agent::{req, Agent};
use crate::event::Event;
use crate::ring::Pop;
use crate::sys;
use identity::Identities;
use mapagent_record::records::{self as rec, trigger, Record};
use mapagent_record::replay::Replayer;
use mapagent_record::{Bytes, Hex};
use out::Out;
use std::sync::atomic::Ordering;

/// How long the copies of images found missing at exit may take.
const EXIT_KEEP_BUDGET_NS: u64 = 1_000_000_000;

/// Minimum time between reconciliations that events (not requests) ask for.
const MIN_RECONCILE_NS: u64 = 20_000_000;

/// The collector's whole job for one ring: the Process record, then events until the process
/// exits, execs or vanishes.
pub fn collect(ag: &'static Agent) -> Result<(), String> {
    let mut w = Writer::start(ag)?;
    w.run()
}

pub struct Writer {
    ag: &'static Agent,
    out: Out,
    model: Replayer,
    ids: Identities,
    batch: Vec<Event>,
    /// Payloads of the batch (indexed by Event::slot) and buffers to reuse.
    payloads: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
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
    auxv: process::Auxv,
    alive: liveness::Alive,
    baseline_done: bool,
    /// An exec was announced and flushed: the file ends when it went through.
    exec_pending: bool,
    /// How the file must end now (a damaged ring).
    ended: Option<u8>,
    /// Frames that did not decode.
    broken: u64,
    /// The kernel's reports of new VMAs, those read and not yet merged, where the heap
    /// starts (to name it as maps does), and when an exec was announced (later reports are
    /// the new program's).
    kernel: Option<perf_ring::KernelReports>,
    kq: Vec<perf_ring::Report>,
    start_brk: u64,
    exec_ts: Option<u64>,
}

impl Writer {
    fn start(ag: &'static Agent) -> Result<Writer, String> {
        let out = Out::create(&ag.cfg.dir, ag.pid)?;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let alive = liveness::Alive::open(ag.ns_pid);
        let mut w = Writer {
            ag,
            out,
            model: Replayer::new(page),
            ids: Identities::default(),
            batch: Vec::with_capacity(4096),
            payloads: Vec::new(),
            spare: Vec::new(),
            triggers: Vec::new(),
            last_reconcile: 0,
            verified_at: 0,
            last_statm: 0,
            statm_offset: None,
            events_total: 0,
            lost_since: ag.start_mono,
            loaded: Default::default(),
            kept: Default::default(),
            page,
            snapshots: 0,
            last_snapshot: sys::now(),
            pending_snapshots: Vec::new(),
            watches: Default::default(),
            auxv: process::Auxv::read(),
            alive,
            baseline_done: false,
            exec_pending: false,
            ended: None,
            broken: 0,
            kernel: None,
            kq: Vec::new(),
            start_brk: 0,
            exec_ts: None,
        };
        let mut desc = process::describe(ag);
        desc.gen = w.out.gen;
        w.out.put(&Record::Process(desc.record(&w.auxv)));
        // First thing: the starting thread waits for this, while it lists its images and
        // reads its maps for the baseline. A report from before the baseline is read is
        // placed again by the baseline, which replaces everything.
        w.open_kernel();
        w.out.flush()?;
        tracing::info!(file = %w.out.path.display(), "recording");
        Ok(w)
    }

    /// Until the starting thread's baseline frame is processed (bounded: a process that
    /// dies or never sends one ends the file).
    fn wait_for_baseline(&mut self) -> Result<(), String> {
        let deadline = sys::now() + 10_000_000_000;
        while !self.baseline_done {
            self.drain();
            if self.baseline_done {
                break;
            }
            if !self.alive.check() || sys::now() > deadline {
                return Err("no baseline from the starting thread".into());
            }
            sys::futex_wait_shared(&self.ag.wake, 0, 2_000_000);
            self.ag.wake.store(0, Ordering::Release);
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        if let Err(e) = self.wait_for_baseline() {
            self.ag.kernel_ready.store(1, Ordering::Release);
            crate::sys::futex_wake_shared(&self.ag.kernel_ready);
            self.vanished();
            self.out.flush()?;
            return Err(e);
        }
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
            self.note_lost();
            // The process is gone (killed, or it died without running its exit handlers):
            // everything it published is drained above; say how it ended.
            if !self.alive.check() || self.ended.is_some() {
                self.drain();
                self.note_lost();
                match self.ended.take() {
                    Some(how) => self.finish_as(how),
                    None => self.vanished(),
                }
                self.out.flush()?;
                self.out.close();
                return Ok(());
            }
            let now = sys::now();
            let since_reconcile = now.saturating_sub(self.last_reconcile);
            if requests & req::EXIT != 0 {
                // The last look at the pages (with its own final reconcile).
                self.snapshot(rec::snapshot_trigger::EXIT, b"exit", 0);
            } else if requests & req::FLUSH != 0 {
                // An exec ends this program's image: its last look too. The file ends once the
                // exec went through (the ring leaves the process with its old image).
                self.snapshot(rec::snapshot_trigger::EXIT, b"exec", 0);
                self.exec_pending = true;
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
                self.ag.ctl.complete(seq);
                return Ok(());
            }
            self.out.flush()?;
            self.ag.ctl.complete(seq);
            if self.exec_pending && self.exec_done() {
                self.out.close();
                return Ok(());
            }
            // The hot path never wakes the writer (that would be a syscall); requests do.
            // Otherwise sleep so that the channel would be about a quarter full at the rate
            // events arrived last cycle: rarely awake (an awake writer costs the application
            // mm-lock and TLB traffic), never letting a burst overflow. Capped by
            // MAPAGENT_FLUSH_MS.
            let t = sys::now();
            let elapsed = t.saturating_sub(last_cycle).max(1);
            last_cycle = t;
            // Capped also so that a process that vanished is noticed soon, and an exec.
            let cap = if self.exec_pending {
                1_000_000
            } else {
                (self.ag.cfg.flush_ms * 1_000_000).min(100_000_000)
            };
            sleep_ns = if n == 0 {
                (sleep_ns * 2).min(cap)
            } else {
                // n counts events; a quarter of the ring holds about cap/4/128 of them.
                let quarter = self.ag.ring.cap() / 4 / 128;
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
            self.ag.woken.store(0, Ordering::SeqCst);
            if self.ag.channel_busy() || self.ag.ctl.pending.load(Ordering::SeqCst) != 0 {
                continue;
            }
            if self.ag.wake.swap(0, Ordering::SeqCst) == 0 {
                sys::futex_wait_shared(&self.ag.wake, 0, sleep_ns);
            }
        }
    }

    /// Takes everything in the ring and processes it in time order.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut got = false;
            loop {
                let mut p = self.spare.pop().unwrap_or_default();
                match self.ag.ring.pop(&mut p) {
                    Pop::Empty => {
                        self.spare.push(p);
                        break;
                    }
                    Pop::Event(mut ev) => {
                        if !p.is_empty() && self.payloads.len() < u16::MAX as usize - 1 {
                            ev.slot = self.payloads.len() as u16;
                            self.payloads.push(p);
                        } else {
                            self.spare.push(p);
                        }
                        self.batch.push(ev);
                        got = true;
                    }
                    Pop::Skipped => {
                        self.spare.push(p);
                        self.broken += 1;
                    }
                    Pop::Broken => {
                        // The application overwrote the ring's bookkeeping: stop reading it.
                        self.spare.push(p);
                        self.broken += 1;
                        self.ended = Some(rec::exit_how::DISABLED);
                        break;
                    }
                }
                if self.batch.len() >= 8192 {
                    break;
                }
            }
            // After the hooks' ring: every report of a call whose event was just taken is in
            // the kernel's ring by now (the kernel writes it during the call).
            let reported = self.take_kernel();
            if !got && !reported {
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
        // The kernel's reports go in time order among the events: a report is stamped
        // inside its call, the call's event after it returns.
        let mut kq = std::mem::take(&mut self.kq);
        kq.sort_by_key(|r| r.ts());
        let mut kq = kq.into_iter().peekable();
        for ev in &batch {
            while let Some(r) = kq.next_if(|r| r.ts() <= ev.ts) {
                self.handle_report(r);
            }
            // Taken out of the batch (each is used once), then its buffer is reused.
            let p = (ev.slot != crate::event::NO_SLOT)
                .then(|| self.payloads.get_mut(ev.slot as usize).map(std::mem::take))
                .flatten();
            self.handle(ev, p.as_deref());
            if let Some(p) = p.filter(|_| self.spare.len() < 256) {
                self.spare.push(p);
            }
        }
        for r in kq {
            self.handle_report(r);
        }
        self.events_total += batch.len() as u64;
        batch.clear();
        self.batch = batch;
        self.payloads.clear();
        self.ids.end_batch();
    }

    /// After an exec flush: whether the process has left the image this ring belongs to
    /// (the ring is no longer in its maps).
    fn exec_done(&mut self) -> bool {
        if !self.alive.check() {
            return true;
        }
        let mut buf = Vec::new();
        if sys::read_file(&sys::proc_path("maps"), &mut buf).is_err() {
            return true;
        }
        let ino = format!(" {} ", self.ag.ring.ino);
        !buf.split(|&c| c == b'\n').any(|l| {
            l.windows(b"/memfd:mapagent-ring".len())
                .any(|w| w == b"/memfd:mapagent-ring")
                && l.windows(ino.len()).any(|w| w == ino.as_bytes())
        })
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
                "events dropped: ring full (raise MAPAGENT_BUFFER)"
            );
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
            (Some(keep::Source::Fd(fd)), Some(k)) if keep::app_fd_identity(*fd) == Some(k) => {
                sys::readlink(&sys::proc_path(&format!("fd/{fd}"))).map(|p| (p, k.0, k.1, k.2))
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
        let main = key == self.auxv.get(libc::AT_PHDR);
        let img = LoadedImage {
            path: path.clone(),
            pinned,
            build_id: build_id.to_vec(),
            range,
            main,
            bias,
            seq: self.events_total + self.loaded.len() as u64,
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
        let (how, code) = (
            ctl.exit_how.load(Ordering::Acquire) as u8,
            ctl.exit_code.load(Ordering::Acquire),
        );
        self.put_exit(how, code);
    }

    fn put_exit(&mut self, how: u8, code: i32) {
        self.out.put(&Record::Exit(rec::Exit {
            ts: sys::now(),
            how,
            code,
            lost_total: self.ag.lost_total.load(Ordering::Acquire),
            events_total: self.events_total,
        }));
    }

    /// The process is gone without an exit the agent saw: end the file saying so, with the
    /// signal that killed it when the kernel still has its wait status.
    fn vanished(&mut self) {
        if self.ag.ctl.exit_noted.load(Ordering::Acquire) != 0 {
            // It said how it ended and left without waiting (a young fork child).
            let how = self.ag.ctl.exit_how.load(Ordering::Acquire) as u8;
            let code = self.ag.ctl.exit_code.load(Ordering::Acquire);
            self.put_exit(how, code);
            return;
        }
        let code = match self.alive.exit_status() {
            Some(st) if libc::WIFSIGNALED(st) => libc::WTERMSIG(st),
            Some(st) if libc::WIFEXITED(st) => {
                // It exited without our exit handler (it was never reached, or _exit
                // through a path we do not hook).
                self.put_exit(rec::exit_how::UNDERSCORE_EXIT, libc::WEXITSTATUS(st));
                return;
            }
            _ => -1,
        };
        self.put_exit(rec::exit_how::VANISHED, code);
    }

    fn finish_as(&mut self, how: u8) {
        self.put_exit(how, 0);
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
    let Ok(c) = std::ffi::CString::new(sys::app_path(name)) else {
        return (name.to_vec(), 0, 0, 0);
    };
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
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
    pub(super) path: Vec<u8>,
    pub(super) pinned: Option<identity::FileKey>,
    build_id: Vec<u8>,
    /// The mapping of its first segment, when the kernel showed it.
    range: Option<(u64, u64)>,
    pub(super) main: bool,
    pub(super) bias: u64,
    /// Load order (symbol lookup follows it).
    pub(super) seq: u64,
}

impl LoadedImage {
    /// A path that still reaches the mapped file, whatever happened to its name.
    fn source(&self) -> Option<keep::Source> {
        if self.main {
            return Some(keep::Source::Path(sys::app_path(b"/proc/self/exe")));
        }
        let (s, e) = self.range?;
        Some(keep::Source::Path(
            format!("/proc/{}/map_files/{s:x}-{e:x}", sys::target()).into_bytes(),
        ))
    }
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
