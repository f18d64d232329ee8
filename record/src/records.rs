//! Every record kind, its number and its fields. This file is the format: `docs/FORMAT.md`
//! describes the same thing in prose. Times are CLOCK_MONOTONIC nanoseconds; `tid` is the
//! kernel thread id; `errno` is 0 on success.

use crate::codec::{Bytes, Dec, DecodeError, Hex, Wire};
use crate::frame;
use crate::wire_struct;

/// Record kind numbers. Never reuse a number.
pub mod kind {
    pub const PROCESS: u16 = 1;
    pub const IMAGE: u16 = 2;
    pub const IMAGE_UNLOAD: u16 = 3;
    pub const MMAP: u16 = 4;
    pub const MUNMAP: u16 = 5;
    pub const MREMAP: u16 = 6;
    pub const MPROTECT: u16 = 7;
    pub const MEMFD_CREATE: u16 = 8;
    pub const SHMAT: u16 = 9;
    pub const SHMDT: u16 = 10;
    pub const DLOPEN: u16 = 11;
    pub const DLCLOSE: u16 = 12;
    pub const THREAD: u16 = 13;
    pub const RECONCILE: u16 = 14;
    pub const LOST: u16 = 15;
    pub const EXEC: u16 = 16;
    pub const EXIT: u16 = 17;
    pub const WARNING: u16 = 18;
    pub const KEPT_IMAGE: u16 = 19;
    pub const SNAPSHOT: u16 = 20;
    pub const PAGES: u16 = 21;
    pub const SNAPSHOT_END: u16 = 22;
    pub const MEM_USAGE: u16 = 23;
    pub const WATCH_DEF: u16 = 24;
    pub const WATCH_VALUE: u16 = 25;
    pub const KERNEL_MAP: u16 = 26;
    pub const KERNEL_TIMELINE: u16 = 27;
    pub const AGENT_MEM: u16 = 28;
}

/// How the process came to be recorded.
pub mod origin {
    /// Started (or exec'd) with the agent preloaded.
    pub const START: u8 = 0;
    /// A fork child of `parent_pid`.
    pub const FORK: u8 = 1;
}

wire_struct! {
    /// First record of every file.
    pub struct Process<'a> {
        pub pid: u32,
        pub ppid: u32,
        pub origin: u8,
        /// For a fork child: the pid it was forked from (and `origin_ts` the fork time).
        pub parent_pid: u32,
        pub origin_ts: u64,
        pub uid: u32,
        pub euid: u32,
        pub start_mono_ns: u64,
        /// CLOCK_REALTIME at the same instant as `start_mono_ns`.
        pub start_wall_ns: u64,
        pub page_size: u32,
        pub kernel_release: Bytes<'a>,
        pub hostname: Bytes<'a>,
        pub machine: Bytes<'a>,
        pub exe: Bytes<'a>,
        pub cwd: Bytes<'a>,
        pub argv: Vec<Bytes<'a>>,
        /// 0 for the first program a pid ran under the agent, n for its n-th exec.
        pub exec_gen: u32,
        /// From the auxiliary vector: the executable's program headers, entry, the dynamic
        /// linker's base and the vDSO.
        pub at_phdr: u64,
        pub at_entry: u64,
        pub at_base: u64,
        pub at_sysinfo_ehdr: u64,
        pub agent_version: Bytes<'a>,
        /// The agent's own memory (one anonymous mapping), so tools can name it even where
        /// the kernel cannot (no CONFIG_ANON_VMA_NAME).
        pub agent_heap_start: u64,
        pub agent_heap_end: u64,
    }
}

wire_struct! {
    /// One ELF program header of a loaded image, as in its file.
    pub struct Phdr {
        pub p_type: u32,
        pub p_flags: u32,
        pub offset: u64,
        pub vaddr: u64,
        pub filesz: u64,
        pub memsz: u64,
        pub align: u64,
    }
}

/// Why an image record was written.
pub mod image_cause {
    /// Already loaded when the agent started.
    pub const STARTUP: u8 = 0;
    /// Appeared during an interposed dlopen/dlmopen.
    pub const DLOPEN: u8 = 1;
    /// Found by the writer's periodic check of dl_iterate_phdr (loads the hooks cannot see,
    /// such as glibc's internal NSS dlopen).
    pub const RESCAN: u8 = 2;
    /// Disappeared during an interposed dlclose.
    pub const DLCLOSE: u8 = 3;
}

wire_struct! {
    /// A loaded ELF image (executable, shared library, plugin, vDSO), from dl_iterate_phdr.
    pub struct Image<'a> {
        pub ts: u64,
        /// Stable while loaded: the address of its program headers in memory.
        pub id: u64,
        pub cause: u8,
        /// Load bias: runtime address minus link-time address.
        pub bias: u64,
        /// Real path; for the executable the agent reads /proc/self/exe.
        pub path: Bytes<'a>,
        pub dev_major: u32,
        pub dev_minor: u32,
        pub ino: u64,
        /// GNU build-id from the image's in-memory PT_NOTE (empty if none).
        pub build_id: Hex<'a>,
        pub phdrs: Vec<Phdr>,
    }
}

wire_struct! {
    pub struct ImageUnload {
        pub ts: u64,
        pub id: u64,
        pub bias: u64,
        pub cause: u8,
    }
}

wire_struct! {
    /// An interposed mmap/mmap64. For file mappings the identity (device, inode) is taken at
    /// call time; the path is resolved by the writer from the live mapping.
    pub struct Mmap<'a> {
        pub ts: u64,
        pub tid: u32,
        pub addr: u64,
        pub len: u64,
        pub prot: u32,
        pub flags: u32,
        pub fd: i32,
        pub offset: u64,
        /// The mapped address, or u64::MAX (MAP_FAILED) with `errno` set.
        pub result: u64,
        pub errno: i32,
        pub dev_major: u32,
        pub dev_minor: u32,
        pub ino: u64,
        /// As /proc/self/maps shows it ("/memfd:x (deleted)", "/dev/zero (deleted)").
        pub path: Bytes<'a>,
    }
}

wire_struct! {
    pub struct Munmap {
        pub ts: u64,
        pub tid: u32,
        pub addr: u64,
        pub len: u64,
        pub ret: i32,
        pub errno: i32,
    }
}

wire_struct! {
    pub struct Mremap {
        pub ts: u64,
        pub tid: u32,
        pub old_addr: u64,
        pub old_len: u64,
        pub new_len: u64,
        pub flags: u32,
        pub new_addr: u64,
        pub result: u64,
        pub errno: i32,
    }
}

wire_struct! {
    pub struct Mprotect {
        pub ts: u64,
        pub tid: u32,
        pub addr: u64,
        pub len: u64,
        pub prot: u32,
        pub ret: i32,
        pub errno: i32,
    }
}

wire_struct! {
    pub struct MemfdCreate<'a> {
        pub ts: u64,
        pub tid: u32,
        pub name: Bytes<'a>,
        pub flags: u32,
        pub fd: i32,
        pub errno: i32,
    }
}

wire_struct! {
    pub struct Shmat<'a> {
        pub ts: u64,
        pub tid: u32,
        pub shmid: i32,
        pub addr: u64,
        pub shmflg: i32,
        pub result: u64,
        pub errno: i32,
        /// Segment size and key (from IPC_STAT by the writer; 0 if the segment was gone).
        pub size: u64,
        pub key: i32,
        /// The mapping as the kernel names it ("/SYSV0000abcd (deleted)") and its device.
        pub name: Bytes<'a>,
        pub dev_major: u32,
        pub dev_minor: u32,
    }
}

wire_struct! {
    pub struct Shmdt {
        pub ts: u64,
        pub tid: u32,
        pub addr: u64,
        pub ret: i32,
        pub errno: i32,
    }
}

wire_struct! {
    /// An interposed dlopen or dlmopen (`lmid` is -1 for dlopen).
    pub struct Dlopen<'a> {
        pub ts_start: u64,
        pub ts: u64,
        pub tid: u32,
        pub filename: Bytes<'a>,
        /// The path handed to the real dlopen when the agent resolved the caller's
        /// RUNPATH/$ORIGIN itself; empty when the name was passed through unchanged.
        pub resolved: Bytes<'a>,
        pub flags: i32,
        pub lmid: i64,
        pub handle: u64,
    }
}

wire_struct! {
    pub struct Dlclose {
        pub ts: u64,
        pub tid: u32,
        pub handle: u64,
        pub ret: i32,
    }
}

wire_struct! {
    /// pthread_create returned: the new thread's stack and guard were mapped by glibc.
    pub struct Thread {
        pub ts: u64,
        pub tid: u32,
        pub thread: u64,
        pub ret: i32,
    }
}

/// What made the agent compare its view with the kernel's.
pub mod trigger {
    pub const BASELINE: u8 = 0;
    pub const DLOPEN: u8 = 1;
    pub const DLCLOSE: u8 = 2;
    pub const THREAD: u8 = 3;
    /// /proc/self/statm changed without a hooked call explaining it (malloc, brk, stacks).
    pub const STATM: u8 = 4;
    pub const SNAPSHOT: u8 = 5;
    pub const EXIT: u8 = 6;
    pub const EXEC: u8 = 7;
    pub const FORK: u8 = 8;
    pub const PERIODIC: u8 = 9;
    pub const SHM: u8 = 10;
    /// A dlopen, dlclose or pthread_create was still running; `trigger_ts` is its start.
    pub const IN_FLIGHT: u8 = 11;
    /// The kernel dropped reports of new VMAs (its ring was full).
    pub const KERNEL_LOST: u8 = 12;

    pub fn name(t: u8) -> &'static str {
        match t {
            BASELINE => "baseline",
            DLOPEN => "dlopen",
            DLCLOSE => "dlclose",
            THREAD => "thread",
            STATM => "statm",
            SNAPSHOT => "snapshot",
            EXIT => "exit",
            EXEC => "exec",
            FORK => "fork",
            PERIODIC => "periodic",
            SHM => "shm",
            IN_FLIGHT => "in-flight call",
            KERNEL_LOST => "kernel reports lost",
            _ => "unknown",
        }
    }
}

/// Region flags.
pub mod rflags {
    pub const SHARED: u8 = 1;
}

wire_struct! {
    /// One line of /proc/self/maps.
    pub struct RegionRec<'a> {
        pub start: u64,
        pub end: u64,
        /// PROT_READ|PROT_WRITE|PROT_EXEC bits.
        pub prot: u8,
        pub flags: u8,
        pub offset: u64,
        pub dev_major: u32,
        pub dev_minor: u32,
        pub ino: u64,
        pub name: Bytes<'a>,
    }
}

pub mod change_op {
    /// The kernel has a region the agent's view lacked.
    pub const ADD: u8 = 1;
    /// The agent's view had a region the kernel no longer has.
    pub const REMOVE: u8 = 2;
}

wire_struct! {
    pub struct Change<'a> {
        pub op: u8,
        pub region: RegionRec<'a>,
        /// When the change is taken to have happened (see Reconcile).
        pub at: u64,
    }
}

wire_struct! {
    /// What the kernel's view (/proc/self/maps, read at `ts`) showed that the hooked calls had
    /// not: glibc-internal mmaps, brk, ld.so mapping libraries, thread stacks. The changes
    /// happened after `since` (the last moment the agent saw its model agree with the kernel)
    /// and no later than `ts`; each change's `at` is the agent's best placement in that window:
    /// a thread's stack at its pthread_create, other changes at the start of the call that made
    /// the agent look (`trigger_ts`) or at `since`, and at `ts` when the view was not quiescent
    /// (mapping calls on other threads were under way, so the view may be ahead of the events).
    /// A BASELINE record lists the whole address space as additions.
    pub struct Reconcile<'a> {
        pub ts: u64,
        pub since: u64,
        pub trigger: u8,
        pub trigger_ts: u64,
        /// No hooked call was in flight while the kernel's view was read, so every change is
        /// really invisible to the hooks (not an event still on its way to the writer).
        pub quiescent: bool,
        pub changes: Vec<Change<'a>>,
    }
}

wire_struct! {
    /// Events the agent had to drop (its channel was full), like PERF_RECORD_LOST.
    pub struct Lost {
        pub ts: u64,
        pub count: u64,
        pub since: u64,
    }
}

wire_struct! {
    /// The process is about to execve; what follows (if exec succeeds) is in a new file.
    pub struct Exec<'a> {
        pub ts: u64,
        pub tid: u32,
        pub path: Bytes<'a>,
    }
}

pub mod exit_how {
    pub const EXIT: u8 = 0;
    pub const UNDERSCORE_EXIT: u8 = 1;
    pub const SIGNAL: u8 = 2;
    pub const EXEC: u8 = 3;
    pub const DISABLED: u8 = 4;
    /// The process ended without running its exit path (SIGKILL, or a signal no handler
    /// saw): the collector noticed it gone. `code` is the terminating signal when the kernel
    /// still had the wait status, -1 when not.
    pub const VANISHED: u8 = 5;
}

wire_struct! {
    /// Last record of a cleanly finished file.
    pub struct Exit {
        pub ts: u64,
        pub how: u8,
        /// Exit status, or signal number for SIGNAL.
        pub code: i32,
        /// Events dropped over the whole run (the LOST records add up to this).
        pub lost_total: u64,
        pub events_total: u64,
    }
}

/// What became of an image the agent tried to keep a copy of.
pub mod keep_status {
    /// Copied to `file`.
    pub const KEPT: u8 = 0;
    /// Another process already kept the same build-id: `file` is that copy.
    pub const ALREADY: u8 = 1;
    /// Not copied: MAPAGENT_KEEP_MAX would have been exceeded.
    pub const SKIPPED_CAP: u8 = 2;
    /// Not copied: `reason` says why.
    pub const FAILED: u8 = 3;
}

wire_struct! {
    /// An executable image whose file cannot be opened by its path later (memfd, deleted,
    /// replaced on disk): the agent keeps a copy of its file, taken while it was mapped, so
    /// tools can still read its symbols. `file` is relative to the record directory.
    pub struct KeptImage<'a> {
        pub ts: u64,
        pub id: u64,
        pub build_id: Hex<'a>,
        pub path: Bytes<'a>,
        pub file: Bytes<'a>,
        pub size: u64,
        pub status: u8,
        pub reason: Bytes<'a>,
    }
}

/// Why a page snapshot was taken.
pub mod snapshot_trigger {
    /// The process was ending (every recording has one, unless it was killed).
    pub const EXIT: u8 = 0;
    /// Every MAPAGENT_INTERVAL_MS.
    pub const INTERVAL: u8 = 1;
    /// The signal named by MAPAGENT_SNAPSHOT_SIGNAL.
    pub const SIGNAL: u8 = 2;
    /// The application called mapagent_snapshot(label).
    pub const API: u8 = 3;
}

/// Bits of a page's state (a `Run`'s `state`); `Pages::known` says which of them were read.
pub mod page {
    /// Mapped in this process (pagemap bit 63).
    pub const PRESENT: u8 = 0x01;
    /// Swapped out (pagemap bit 62).
    pub const SWAPPED: u8 = 0x02;
    /// A page-cache page or shared anonymous memory (pagemap bit 61). A present page of a
    /// private file mapping without it was copied on write.
    pub const FILE: u8 = 0x04;
    /// Mapped only here (pagemap bit 56, PM_MMAP_EXCLUSIVE).
    pub const EXCLUSIVE: u8 = 0x08;
    /// In the page cache (mincore), whether or not mapped here.
    pub const CACHED: u8 = 0x10;
    /// A transparent huge page.
    pub const HUGE: u8 = 0x40;
}

wire_struct! {
    /// Start of a page snapshot: one Pages record per mapping follows, then SnapshotEnd. The
    /// address space was reconciled with the kernel's just before, so the mappings are those
    /// of the model at `ts`.
    pub struct Snapshot<'a> {
        pub ts: u64,
        pub id: u32,
        pub trigger: u8,
        pub tid: u32,
        pub label: Bytes<'a>,
    }
}

wire_struct! {
    /// `pages` consecutive pages in one state.
    pub struct Run {
        pub pages: u32,
        pub state: u8,
    }
}

/// How a mapping's pages were read.
pub mod scan_method {
    /// PAGEMAP_SCAN for the present and swapped runs, then pagemap for their bits.
    pub const PAGEMAP_SCAN: u8 = 1;
    /// /proc/self/pagemap for every page (kernels before 6.7).
    pub const PAGEMAP: u8 = 2;
    /// mincore for residency (private anonymous memory without swap: present == resident).
    pub const MINCORE: u8 = 3;
}

/// The pages of one mapping [start, end) in snapshot `id`, as runs covering it in order.
/// (Written out rather than with `wire_struct!`: it owns a list, so it cannot be `Copy`.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Pages {
    pub ts: u64,
    pub id: u32,
    pub start: u64,
    pub end: u64,
    /// Which `page` bits were read (the others are 0 by default, not by observation).
    pub known: u8,
    pub method: u8,
    pub runs: Vec<Run>,
}

impl<'a> Wire<'a> for Pages {
    fn put(&self, out: &mut Vec<u8>) {
        self.ts.put(out);
        self.id.put(out);
        self.start.put(out);
        self.end.put(out);
        self.known.put(out);
        self.method.put(out);
        self.runs.put(out);
    }
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        Ok(Pages {
            ts: Wire::get(d)?,
            id: Wire::get(d)?,
            start: Wire::get(d)?,
            end: Wire::get(d)?,
            known: Wire::get(d)?,
            method: Wire::get(d)?,
            runs: Wire::get(d)?,
        })
    }
}

wire_struct! {
    /// End of snapshot `id`: how much was scanned and how long it took.
    pub struct SnapshotEnd {
        pub ts: u64,
        pub id: u32,
        pub regions: u32,
        pub pages: u64,
        pub present: u64,
        pub duration_ns: u64,
    }
}

/// Where a MemUsage's figures came from.
pub mod mem_source {
    /// /proc/self/statm.
    pub const STATM: u8 = 0;
    /// The agent's own model of the address space, resident pages by mincore (/proc is not
    /// mounted): size, text and data are exact, resident and shared approximate.
    pub const MODEL: u8 = 1;
}

wire_struct! {
    /// The process's memory use, in pages, with the columns of /proc/self/statm: taken when
    /// the agent starts and with every snapshot (so every MAPAGENT_INTERVAL_MS, and at exit).
    pub struct MemUsage {
        pub ts: u64,
        pub size: u64,
        pub resident: u64,
        pub shared: u64,
        pub text: u64,
        pub data: u64,
        pub source: u8,
    }
}

wire_struct! {
    /// The agent's own share of the MemUsage with the same `ts`, in pages, so that views
    /// about the application can subtract it: its allocator arena, its ring and
    /// libmapagent.so's own mappings in the process. `resident` and `shared` from pagemap
    /// (present pages; those of the ring and the library count as shared in statm).
    pub struct AgentMem {
        pub ts: u64,
        pub size: u64,
        pub resident: u64,
        pub shared: u64,
        pub data: u64,
    }
}

/// Types of watched globals (MAPAGENT_WATCH=name:type,...).
pub mod watch_type {
    pub const U8: u8 = 1;
    pub const U16: u8 = 2;
    pub const U32: u8 = 3;
    pub const U64: u8 = 4;
    pub const I8: u8 = 5;
    pub const I16: u8 = 6;
    pub const I32: u8 = 7;
    pub const I64: u8 = 8;
    pub const F64: u8 = 9;
    pub const PTR: u8 = 10;
    /// A `char *` (the pointer is read, then at most 256 bytes of what it points to).
    pub const STR: u8 = 11;
    /// A `char[]` held in the variable itself (at most 256 bytes).
    pub const CHARS: u8 = 12;

    pub fn name(t: u8) -> &'static str {
        match t {
            U8 => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 => "u64",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            PTR => "ptr",
            STR => "str",
            CHARS => "chars",
            _ => "?",
        }
    }

    pub fn parse(s: &[u8]) -> Option<u8> {
        (1..=CHARS).find(|&t| name(t).as_bytes() == s)
    }
}

/// How a watched value read went.
pub mod watch_status {
    pub const OK: u8 = 0;
    /// A `str` whose pointer is NULL.
    pub const NULL: u8 = 1;
    /// The address (or what a `str` points to) is not readable: nothing was read.
    pub const UNREADABLE: u8 = 2;
}

wire_struct! {
    /// A watched global resolved (addr != 0) or not found (addr 0) in the loaded images.
    pub struct WatchDef<'a> {
        pub ts: u64,
        pub index: u32,
        pub ty: u8,
        pub addr: u64,
        pub name: Bytes<'a>,
    }
}

wire_struct! {
    /// A watched global's value: written when it changed since the last sample, and always
    /// with a snapshot or mapagent_watch_sample(). Little-endian bytes for numbers, the text
    /// (up to its NUL, at most 256 bytes) for str and chars.
    pub struct WatchValue<'a> {
        pub ts: u64,
        pub tid: u32,
        pub index: u32,
        pub status: u8,
        pub value: Bytes<'a>,
    }
}

wire_struct! {
    /// A VMA as the kernel reported it the moment a mapping call made or changed it
    /// (PERF_RECORD_MMAP2 of a software dummy event on the process): after an mmap, the VMA
    /// the new mapping ended up in (merged with its neighbours if the kernel merged it); after
    /// an mprotect, the piece split off or the VMA it merged back into; also for what no hook
    /// sees (brk, glibc's and ld.so's internal mmaps, raw syscalls). It replaces whatever the
    /// model had over its range, merged with nothing. The kernel reports no munmap, mremap,
    /// madvise or brk shrink: those come from the hooks and from reconciles.
    pub struct KernelMap<'a> {
        pub ts: u64,
        pub tid: u32,
        pub region: RegionRec<'a>,
    }
}

/// KernelTimeline states.
pub mod ktimeline {
    /// The kernel's reports are not available (`errno` says why): the model learns about
    /// changes behind the hooks only at reconciles.
    pub const OFF: u8 = 0;
    /// From `ts` on, every VMA the kernel creates or changes arrives as a KernelMap.
    pub const ON: u8 = 1;
    /// The kernel dropped `lost` reports (its ring was full); a reconcile follows.
    pub const LOST: u8 = 2;
}

wire_struct! {
    /// Whether the kernel's own reports of new VMAs are part of this file.
    pub struct KernelTimeline<'a> {
        pub ts: u64,
        pub state: u8,
        pub errno: i32,
        pub lost: u64,
        /// What happened and, when reports were lost, the setting that prevents it.
        pub text: Bytes<'a>,
    }
}

wire_struct! {
    /// Something the agent could not do, in its own words.
    pub struct Warning<'a> {
        pub ts: u64,
        pub text: Bytes<'a>,
    }
}

/// A decoded record, borrowing its strings from the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type"))]
pub enum Record<'a> {
    Process(Process<'a>),
    Image(Image<'a>),
    ImageUnload(ImageUnload),
    Mmap(Mmap<'a>),
    Munmap(Munmap),
    Mremap(Mremap),
    Mprotect(Mprotect),
    MemfdCreate(MemfdCreate<'a>),
    Shmat(Shmat<'a>),
    Shmdt(Shmdt),
    Dlopen(Dlopen<'a>),
    Dlclose(Dlclose),
    Thread(Thread),
    Reconcile(Reconcile<'a>),
    Lost(Lost),
    Exec(Exec<'a>),
    Exit(Exit),
    Warning(Warning<'a>),
    KeptImage(KeptImage<'a>),
    Snapshot(Snapshot<'a>),
    Pages(Pages),
    SnapshotEnd(SnapshotEnd),
    MemUsage(MemUsage),
    WatchDef(WatchDef<'a>),
    WatchValue(WatchValue<'a>),
    KernelMap(KernelMap<'a>),
    KernelTimeline(KernelTimeline<'a>),
    AgentMem(AgentMem),
    /// A kind this reader does not know (written by a newer agent): skipped, not an error.
    Unknown {
        kind: u16,
        #[cfg_attr(feature = "serde", serde(skip))]
        payload: &'a [u8],
    },
}

macro_rules! record_kinds {
    ($($variant:ident => $k:path),* $(,)?) => {
        impl<'a> Record<'a> {
            pub fn kind(&self) -> u16 {
                match self { $(Record::$variant(_) => $k,)* Record::Unknown { kind, .. } => *kind }
            }
            pub fn name(&self) -> &'static str {
                match self { $(Record::$variant(_) => stringify!($variant),)* Record::Unknown { .. } => "Unknown" }
            }
            /// Decodes one frame's payload.
            pub fn decode(kind: u16, payload: &'a [u8]) -> Result<Self, DecodeError> {
                let mut d = Dec::new(payload);
                Ok(match kind {
                    $($k => Record::$variant(Wire::get(&mut d)?),)*
                    _ => Record::Unknown { kind, payload },
                })
            }
            /// Checks that a payload decodes, without building the (large) Record.
            pub fn validate(kind: u16, payload: &'a [u8]) -> Result<(), DecodeError> {
                let mut d = Dec::new(payload);
                match kind {
                    $($k => { <$variant as Wire>::get(&mut d)?; })*
                    _ => {}
                }
                Ok(())
            }
            /// Appends this record as one frame.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(Record::$variant(r) => frame::encode_frame($k, out, |o| r.put(o)),)*
                    Record::Unknown { kind, payload } => {
                        frame::encode_frame(*kind, out, |o| o.extend_from_slice(payload))
                    }
                }
            }
        }
    };
}

record_kinds! {
    Process => kind::PROCESS,
    Image => kind::IMAGE,
    ImageUnload => kind::IMAGE_UNLOAD,
    Mmap => kind::MMAP,
    Munmap => kind::MUNMAP,
    Mremap => kind::MREMAP,
    Mprotect => kind::MPROTECT,
    MemfdCreate => kind::MEMFD_CREATE,
    Shmat => kind::SHMAT,
    Shmdt => kind::SHMDT,
    Dlopen => kind::DLOPEN,
    Dlclose => kind::DLCLOSE,
    Thread => kind::THREAD,
    Reconcile => kind::RECONCILE,
    Lost => kind::LOST,
    Exec => kind::EXEC,
    Exit => kind::EXIT,
    Warning => kind::WARNING,
    KeptImage => kind::KEPT_IMAGE,
    Snapshot => kind::SNAPSHOT,
    Pages => kind::PAGES,
    SnapshotEnd => kind::SNAPSHOT_END,
    MemUsage => kind::MEM_USAGE,
    WatchDef => kind::WATCH_DEF,
    WatchValue => kind::WATCH_VALUE,
    KernelMap => kind::KERNEL_MAP,
    KernelTimeline => kind::KERNEL_TIMELINE,
    AgentMem => kind::AGENT_MEM,
}

impl Record<'_> {
    /// The record's time, if it has one (Process uses its start time).
    pub fn ts(&self) -> Option<u64> {
        Some(match self {
            Record::Process(r) => r.start_mono_ns,
            Record::Image(r) => r.ts,
            Record::ImageUnload(r) => r.ts,
            Record::Mmap(r) => r.ts,
            Record::Munmap(r) => r.ts,
            Record::Mremap(r) => r.ts,
            Record::Mprotect(r) => r.ts,
            Record::MemfdCreate(r) => r.ts,
            Record::Shmat(r) => r.ts,
            Record::Shmdt(r) => r.ts,
            Record::Dlopen(r) => r.ts,
            Record::Dlclose(r) => r.ts,
            Record::Thread(r) => r.ts,
            Record::Reconcile(r) => r.ts,
            Record::Lost(r) => r.ts,
            Record::Exec(r) => r.ts,
            Record::Exit(r) => r.ts,
            Record::Warning(r) => r.ts,
            Record::KeptImage(r) => r.ts,
            Record::Snapshot(r) => r.ts,
            Record::Pages(r) => r.ts,
            Record::SnapshotEnd(r) => r.ts,
            Record::MemUsage(r) => r.ts,
            Record::WatchDef(r) => r.ts,
            Record::WatchValue(r) => r.ts,
            Record::KernelMap(r) => r.ts,
            Record::KernelTimeline(r) => r.ts,
            Record::AgentMem(r) => r.ts,
            Record::Unknown { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_through_frames() {
        let recs = vec![
            Record::Process(Process {
                pid: 42,
                exe: Bytes(b"/bin/true"),
                argv: vec![Bytes(b"true"), Bytes(b"--x")],
                ..Default::default()
            }),
            Record::Mmap(Mmap {
                ts: 5,
                addr: 0,
                len: 4096,
                result: 0x7000,
                path: Bytes(b"/x"),
                ..Default::default()
            }),
            Record::Image(Image {
                id: 1,
                build_id: Hex(&[1, 2, 3]),
                phdrs: vec![Phdr {
                    p_type: 1,
                    vaddr: 0x1000,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            Record::Reconcile(Reconcile {
                ts: 9,
                changes: vec![Change {
                    op: change_op::ADD,
                    region: RegionRec {
                        start: 1,
                        end: 2,
                        ..Default::default()
                    },
                    at: 1,
                }],
                ..Default::default()
            }),
            Record::Unknown {
                kind: 999,
                payload: b"future",
            },
        ];
        let mut file = Vec::new();
        frame::encode_file_header(&mut file);
        for r in &recs {
            r.encode(&mut file);
        }
        let back: Vec<Record> = frame::Frames::new(&file)
            .map(|f| {
                let f = f.unwrap();
                Record::decode(f.kind, f.payload).unwrap()
            })
            .collect();
        assert_eq!(back, recs);
    }

    #[test]
    fn newer_payload_with_appended_fields_still_decodes() {
        let mut p = Vec::new();
        Munmap {
            ts: 1,
            tid: 2,
            addr: 3,
            len: 4,
            ret: 0,
            errno: 0,
        }
        .put(&mut p);
        p.extend_from_slice(b"fields from a later minor version");
        assert!(matches!(
            Record::decode(kind::MUNMAP, &p),
            Ok(Record::Munmap(Munmap { addr: 3, .. }))
        ));
        assert!(Record::decode(kind::MUNMAP, &p[..10]).is_err());
    }
}
