//! One record file as a history: the process, its images with load and unload times, and the
//! address space at any moment. Records are replayed in file order (the order the agent applied
//! them, so every Reconcile applies to exactly the model it was computed against), keeping
//! those whose time is at or before the moment asked for.

use crate::input::Parsed;
use mapagent_record::records::{exit_how, image_cause, kind, trigger, Exit, Phdr, Process, Record};
use mapagent_record::region::Region;
use mapagent_record::replay::{reconcile_changes, ReconcileChanges, Replayer};
use std::path::PathBuf;

/// Where a region came from: the record that created it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Source {
    pub kind: &'static str,
    pub ts: u64,
    pub tid: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageSpan {
    pub id: u64,
    pub path: String,
    pub load_bias: u64,
    pub build_id: String,
    pub loaded_ns: u64,
    pub unloaded_ns: Option<u64>,
    pub cause: &'static str,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    #[serde(skip)]
    pub phdrs: Vec<Phdr>,
    /// The copy the agent kept of an image that cannot be reopened by its path (relative to
    /// the record's directory).
    pub kept: Option<PathBuf>,
}

impl ImageSpan {
    /// Runtime address range covered by its PT_LOAD segments.
    pub fn extent(&self) -> (u64, u64) {
        let loads = self.phdrs.iter().filter(|p| p.p_type == 1);
        let lo = loads.clone().map(|p| p.vaddr & !0xfff).min().unwrap_or(0);
        let hi = loads
            .map(|p| p.vaddr.saturating_add(p.memsz))
            .max()
            .unwrap_or(0);
        (
            self.load_bias.wrapping_add(lo),
            self.load_bias.wrapping_add(hi),
        )
    }
    pub fn live_at(&self, t: u64) -> bool {
        self.loaded_ns <= t && self.unloaded_ns.is_none_or(|u| u > t)
    }
    pub fn is_vdso(&self) -> bool {
        self.path.starts_with("linux-vdso")
            || self.path.starts_with("linux-gate")
            || self.path == "[vdso]"
    }
}

enum Op {
    Event(usize),
    // Boxed: reconciles are rare, and a million mmaps should not each pay for their size.
    Reconcile(Box<ReconcileChanges>),
}

struct TimedOp {
    at: u64,
    src: u64,
    op: Op,
}

pub struct Timeline<'a> {
    pub file: PathBuf,
    pub process: Process<'a>,
    pub first_ts: u64,
    pub last_ts: u64,
    pub exit: Option<Exit>,
    pub exec: Option<(u64, String)>,
    pub images: Vec<ImageSpan>,
    pub reconciles: usize,
    pub lost: u64,
    /// ELF images found in anonymous executable memory: (address, kept file relative to the
    /// record's directory).
    pub anon_elf: Vec<(u64, PathBuf)>,
    /// Page snapshots, in the order taken (their pages are read on demand: see `snapshot`).
    pub snapshots: Vec<crate::snapshot::SnapshotInfo>,
    pub truncated: Option<String>,
    /// Whether the kernel's reports of new VMAs are in the file (see KernelTimeline).
    pub kernel: KernelState,
    /// What reconciles changed, with the window each change happened in (since, ts): a view
    /// at a moment inside a window cannot say whether that range had changed yet.
    pub windows: Vec<Changed>,
    parsed: &'a Parsed<'a>,
    /// What replaying needs, built on first use: `mapagent perf` over millions of mmaps never
    /// replays, and should not pay for it.
    replay: std::sync::OnceLock<Replay>,
    page: u64,
}

/// A range a reconcile changed, at a moment known only to lie in [since, until].
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Window {
    pub since: u64,
    pub until: u64,
}

/// One change a reconcile found, over [start, end), in its window.
#[derive(Clone, Debug)]
pub struct Changed {
    pub window: Window,
    pub start: u64,
    pub end: u64,
    /// An addition (the kernel had it, the model lacked it) placed at `at`.
    pub added: Option<(u64, Region)>,
}

/// The kernel timeline as the file tells it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KernelState {
    /// Reports were on from `since` (None: the agent that wrote the file had no such thing,
    /// or they were never on).
    pub on: bool,
    pub since: Option<u64>,
    /// Why they were off, in the agent's words.
    pub why_off: Option<String>,
    /// Reports the kernel dropped.
    pub lost: u64,
}

impl KernelState {
    /// One line for the header of a view built on the model.
    pub fn describe(&self) -> String {
        match (&self.why_off, self.on) {
            (_, true) if self.lost > 0 => format!(
                "kernel timeline: on, {} reports lost (corrected at the next reconcile)",
                self.lost
            ),
            (_, true) => "kernel timeline: on (every VMA exactly when the kernel made it)".into(),
            (Some(why), false) => format!("kernel timeline: off: {why}"),
            (None, false) => {
                "kernel timeline: not in this file (changes behind the hooks show at reconciles)"
                    .into()
            }
        }
    }
}

#[derive(Default)]
struct Replay {
    sources: Vec<Source>,
    ops: Vec<TimedOp>,
}

fn cause_name(c: u8) -> &'static str {
    match c {
        image_cause::STARTUP => "startup",
        image_cause::DLOPEN => "dlopen",
        image_cause::RESCAN => "rescan",
        image_cause::DLCLOSE => "dlclose",
        _ => "unknown",
    }
}

/// Kinds whose time is all `build` needs (mapping changes, a snapshot's pages), and every one
/// of them starts with it.
fn is_mapping_kind(k: u16) -> bool {
    matches!(
        k,
        kind::MMAP
            | kind::MUNMAP
            | kind::MREMAP
            | kind::MPROTECT
            | kind::SHMAT
            | kind::SHMDT
            | kind::KERNEL_MAP
            | kind::PAGES
    )
}

impl<'a> Timeline<'a> {
    pub fn build(file: PathBuf, parsed: &'a Parsed<'a>) -> Option<Timeline<'a>> {
        let process = parsed.process()?;
        let ps = process.page_size as u64;
        let page = if (4096..=1 << 30).contains(&ps) && ps.is_power_of_two() {
            process.page_size as u64
        } else {
            4096
        };
        let mut t = Timeline {
            file,
            first_ts: process.start_mono_ns,
            last_ts: process.start_mono_ns,
            process,
            exit: None,
            exec: None,
            images: Vec::new(),
            reconciles: 0,
            lost: 0,
            anon_elf: Vec::new(),
            snapshots: Vec::new(),
            truncated: parsed.truncated.clone(),
            kernel: KernelState::default(),
            windows: Vec::new(),
            parsed,
            replay: Default::default(),
            page,
        };
        for (index, item) in parsed.items.iter().enumerate() {
            if is_mapping_kind(item.kind) {
                if let Some(ts) = item.payload.first_chunk::<8>() {
                    t.last_ts = t.last_ts.max(u64::from_le_bytes(*ts));
                }
                continue;
            }
            let rec = item.rec();
            if let Some(ts) = rec.ts() {
                t.last_ts = t.last_ts.max(ts);
            }
            match &rec {
                Record::Reconcile(rc) => {
                    t.reconciles += 1;
                    if rc.trigger != trigger::BASELINE {
                        for c in &rc.changes {
                            let add = c.op == mapagent_record::records::change_op::ADD;
                            t.windows.push(Changed {
                                window: Window {
                                    since: rc.since,
                                    until: rc.ts,
                                },
                                start: c.region.start,
                                end: c.region.end,
                                added: add.then(|| {
                                    (
                                        if c.at == 0 { rc.ts } else { c.at },
                                        Region::from_rec(&c.region, 0),
                                    )
                                }),
                            });
                        }
                    }
                }
                Record::Image(im) => {
                    // The same image reported twice (startup listing racing a dlopen): keep one.
                    if t.images
                        .iter()
                        .any(|x| x.id == im.id && x.load_bias == im.bias && x.unloaded_ns.is_none())
                    {
                        continue;
                    }
                    t.images.push(ImageSpan {
                        id: im.id,
                        path: im.path.lossy().into_owned(),
                        load_bias: im.bias,
                        build_id: im.build_id.to_string(),
                        loaded_ns: im.ts,
                        unloaded_ns: None,
                        cause: cause_name(im.cause),
                        dev_major: im.dev_major,
                        dev_minor: im.dev_minor,
                        inode: im.ino,
                        phdrs: im.phdrs.clone(),
                        kept: None,
                    });
                }
                Record::ImageUnload(u) => {
                    if let Some(img) =
                        t.images.iter_mut().rev().find(|x| {
                            x.id == u.id && x.load_bias == u.bias && x.unloaded_ns.is_none()
                        })
                    {
                        img.unloaded_ns = Some(u.ts);
                    }
                }
                Record::Lost(l) => t.lost = t.lost.saturating_add(l.count),
                Record::KeptImage(k) if !k.file.is_empty() => {
                    let file = PathBuf::from(k.file.lossy().into_owned());
                    if k.path.0 == b"//anon" {
                        t.anon_elf.push((k.id, file));
                    } else {
                        // The image it copies: the latest with that id (an id is an address,
                        // reused when another library loads where one was unloaded).
                        let bid = k.build_id.to_string();
                        if let Some(im) = t
                            .images
                            .iter_mut()
                            .rev()
                            .find(|i| i.id == k.id && i.build_id == bid)
                        {
                            im.kept = Some(file);
                        }
                    }
                }
                Record::KernelTimeline(k) => match k.state {
                    mapagent_record::records::ktimeline::ON => {
                        t.kernel.on = true;
                        t.kernel.since.get_or_insert(k.ts);
                    }
                    mapagent_record::records::ktimeline::OFF => {
                        t.kernel.on = false;
                        t.kernel.why_off = Some(k.text.lossy().into_owned());
                    }
                    _ => t.kernel.lost = t.kernel.lost.saturating_add(k.lost),
                },
                Record::Exit(e) => t.exit = Some(*e),
                Record::Exec(e) => t.exec = Some((e.ts, e.path.lossy().into_owned())),
                Record::Snapshot(s) => t.snapshots.push(crate::snapshot::SnapshotInfo {
                    id: s.id,
                    ts: s.ts,
                    trigger: s.trigger,
                    tid: s.tid,
                    label: s.label.lossy().into_owned(),
                    item: index,
                    end: None,
                }),
                Record::SnapshotEnd(e) => {
                    if let Some(s) = t.snapshots.iter_mut().rev().find(|s| s.id == e.id) {
                        s.end = Some(*e);
                    }
                }
                _ => {}
            }
        }
        Some(t)
    }

    fn replay(&self) -> &Replay {
        self.replay.get_or_init(|| self.build_replay())
    }

    /// Every change to the address space with the moment it takes effect and the record it
    /// came from.
    fn build_replay(&self) -> Replay {
        let items = &self.parsed.items;
        // Upper bounds: untouched capacity costs no memory, regrowth copies would.
        let mut r = Replay {
            sources: crate::bigvec::with_capacity(items.len()),
            ops: crate::bigvec::with_capacity(items.len()),
        };
        // Images loaded and not yet unloaded, to skip a second report of one (as `build` does).
        let mut live: Vec<(u64, u64)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let rec = item.rec();
            let mut src = |kind, ts, tid| {
                r.sources.push(Source {
                    kind,
                    ts,
                    tid,
                    offset: item.offset,
                });
                (r.sources.len() - 1) as u64
            };
            let (at, src) = match &rec {
                Record::Mmap(m) => (m.ts, src("mmap", m.ts, m.tid)),
                Record::Shmat(m) => (m.ts, src("shmat", m.ts, m.tid)),
                Record::Munmap(m) => (m.ts, 0),
                Record::Mprotect(m) => (m.ts, 0),
                Record::Mremap(m) => (m.ts, 0),
                Record::Shmdt(m) => (m.ts, 0),
                Record::KernelMap(k) => (k.ts, src("kernel", k.ts, k.tid)),
                Record::KernelTimeline(k) => (k.ts, 0),
                Record::Reconcile(rc) => {
                    let kind = if rc.trigger == trigger::BASELINE {
                        "baseline"
                    } else {
                        "reconcile"
                    };
                    let s = src(kind, rc.ts, 0);
                    // Each group of changes at the moment the agent placed it.
                    for g in reconcile_changes(rc, s) {
                        r.ops.push(TimedOp {
                            at: g.at,
                            src: s,
                            op: Op::Reconcile(Box::new(g)),
                        });
                    }
                    continue;
                }
                Record::Image(im) => {
                    if live.contains(&(im.id, im.bias)) {
                        continue;
                    }
                    live.push((im.id, im.bias));
                    (im.ts, src("dlopen", im.ts, 0))
                }
                Record::ImageUnload(u) => {
                    live.retain(|&x| x != (u.id, u.bias));
                    (u.ts, 0)
                }
                _ => continue,
            };
            r.ops.push(TimedOp {
                at,
                src,
                op: Op::Event(i),
            });
        }
        r
    }

    /// The process's page size.
    pub fn page_size(&self) -> u64 {
        self.page
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Every record, undecoded, in file order.
    pub fn items(&self) -> &'a [crate::input::Item<'a>] {
        &self.parsed.items
    }

    /// Every record, in file order.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + '_ {
        self.parsed.items.iter().map(|i| i.rec())
    }

    /// The kept copy of an image, as a path one can open.
    pub fn kept_file(&self, im: &ImageSpan) -> Option<PathBuf> {
        Some(self.beside(im.kept.as_ref()?))
    }

    /// A path relative to the record file's directory, as a path one can open.
    pub fn beside(&self, rel: &std::path::Path) -> PathBuf {
        self.file
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(rel)
    }

    /// The moment the process image stopped being recorded.
    pub fn end_ts(&self) -> u64 {
        self.exit
            .map(|e| e.ts)
            .or(self.exec.as_ref().map(|e| e.0))
            .unwrap_or(self.last_ts)
    }

    /// How the recording ended, in words.
    pub fn ending(&self) -> String {
        match (&self.exit, &self.exec) {
            (Some(e), _) => match e.how {
                exit_how::EXIT => format!("exit({})", e.code),
                exit_how::UNDERSCORE_EXIT => format!("_exit({})", e.code),
                exit_how::SIGNAL => format!("killed by signal {}", e.code),
                exit_how::VANISHED if e.code > 0 => {
                    format!("vanished: killed by signal {} (no exit path ran)", e.code)
                }
                exit_how::VANISHED => "vanished (no exit path ran; status unknown)".to_string(),
                _ => "ended".to_string(),
            },
            (None, Some((_, p))) => format!("exec {p}"),
            (None, None) if self.truncated.is_some() => "cut short (file truncated)".to_string(),
            (None, None) => "no exit record (killed, or still running)".to_string(),
        }
    }

    /// The address space at `t` (None = at the end of the recording).
    pub fn space_at(&self, t: Option<u64>) -> Replayer {
        let mut rp = Replayer::new(self.page);
        let limit = t.unwrap_or(u64::MAX);
        for op in &self.replay().ops {
            if op.at > limit {
                continue;
            }
            match &op.op {
                Op::Event(i) => {
                    rp.apply_event(&self.parsed.items[*i].rec(), op.src);
                }
                Op::Reconcile(c) => rp.apply_changes(c),
            }
        }
        rp
    }

    /// The window of a reconcile change over [start, end) that `t` falls in, if any.
    pub fn uncertain(&self, start: u64, end: u64, t: u64) -> Option<Window> {
        self.windows
            .iter()
            .find(|c| c.window.since <= t && t < c.window.until && c.start < end && start < c.end)
            .map(|c| c.window)
    }

    /// Regions a later reconcile found that may already have existed at `t` (it lies in the
    /// window) but are placed after it.
    pub fn pending_at(&self, t: u64) -> Vec<(Window, &Region)> {
        self.windows
            .iter()
            .filter(|c| c.window.since <= t && t < c.window.until)
            .filter_map(|c| match &c.added {
                Some((at, r)) if *at > t => Some((c.window, r)),
                _ => None,
            })
            .collect()
    }

    pub fn source(&self, src: u64) -> Option<&Source> {
        self.replay().sources.get(src as usize)
    }

    /// The loaded image a region belongs to at `t`, if any.
    pub fn image_for(&self, r: &Region, t: u64) -> Option<&ImageSpan> {
        let name = String::from_utf8_lossy(&r.name);
        self.images.iter().filter(|im| im.live_at(t)).find(|im| {
            let (lo, hi) = im.extent();
            let same_file = if im.is_vdso() {
                r.name == b"[vdso]"
            } else {
                name == im.path || (im.inode != 0 && im.inode == r.ino)
            };
            same_file && r.start < hi && r.end > lo
        })
    }
}
