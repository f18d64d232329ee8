//! The Process record that opens every file.

use crate::agent::Agent;
use crate::sys;
use mapagent_record::records as rec;
use mapagent_record::Bytes;

pub struct Described {
    pid: u32,
    ppid: u32,
    origin: u8,
    parent_pid: u32,
    origin_ts: u64,
    uid: u32,
    euid: u32,
    start_mono: u64,
    start_wall: u64,
    page_size: u32,
    release: Vec<u8>,
    hostname: Vec<u8>,
    machine: Vec<u8>,
    exe: Vec<u8>,
    cwd: Vec<u8>,
    argv: Vec<Vec<u8>>,
    pub gen: u32,
    /// The agent's own allocator region in the application.
    heap: (u64, u64),
}

/// The recorded process's auxiliary vector (/proc/PID/auxv).
#[derive(Default)]
pub struct Auxv(Vec<(u64, u64)>);

impl Auxv {
    pub fn read() -> Auxv {
        let mut buf = Vec::new();
        if sys::read_file(&sys::proc_path("auxv"), &mut buf).is_err() {
            return Auxv::default();
        }
        Auxv(
            buf.chunks_exact(16)
                .map(|c| {
                    (
                        u64::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8])),
                        u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8])),
                    )
                })
                .take_while(|&(k, _)| k != 0)
                .collect(),
        )
    }

    pub fn get(&self, key: libc::c_ulong) -> u64 {
        self.0
            .iter()
            .find(|&&(k, _)| k == key)
            .map_or(0, |&(_, v)| v)
    }
}

fn field(f: &[libc::c_char]) -> Vec<u8> {
    f.iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect()
}

pub fn describe(ag: &Agent) -> Described {
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    unsafe { libc::uname(&mut uts) };
    let mut cmdline = Vec::new();
    let _ = sys::read_file(&sys::proc_path("cmdline"), &mut cmdline);
    let argv = cmdline
        .split(|&c| c == 0)
        .map(|s| s.to_vec())
        .collect::<Vec<_>>();
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    let cwd = sys::readlink(&sys::proc_path("cwd")).unwrap_or_default();
    let mut status = Vec::new();
    let _ = sys::read_file(&sys::proc_path("status"), &mut status);
    let field_of = |name: &[u8], i: usize| -> u32 {
        status
            .split(|&c| c == b'\n')
            .find(|l| l.starts_with(name))
            .and_then(|l| {
                std::str::from_utf8(&l[name.len()..])
                    .ok()?
                    .split_ascii_whitespace()
                    .nth(i)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    // A young fork child may be gone before its collector reads /proc (it does not wait at
    // _exit): its parent is the one that forked it.
    let ppid = match field_of(b"PPid:", 0) {
        0 if ag.origin == mapagent_record::records::origin::FORK as u32 => ag.parent_pid,
        p => p,
    };
    Described {
        pid: ag.pid as u32,
        ppid,
        origin: ag.origin as u8,
        parent_pid: ag.parent_pid,
        origin_ts: ag.origin_ts,
        uid: field_of(b"Uid:", 0),
        euid: field_of(b"Uid:", 1),
        start_mono: ag.start_mono,
        start_wall: ag.start_wall,
        page_size: unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32,
        release: field(&uts.release),
        hostname: field(&uts.nodename),
        machine: field(&uts.machine),
        exe: ag.ring.exe().to_vec(),
        cwd,
        argv,
        gen: 0,
        heap: (ag.arena_start, ag.arena_end),
    }
}

impl Described {
    pub fn record(&self, auxv: &Auxv) -> rec::Process<'_> {
        let aux = |t| auxv.get(t);
        rec::Process {
            pid: self.pid,
            ppid: self.ppid,
            origin: self.origin,
            parent_pid: self.parent_pid,
            origin_ts: self.origin_ts,
            uid: self.uid,
            euid: self.euid,
            start_mono_ns: self.start_mono,
            start_wall_ns: self.start_wall,
            page_size: self.page_size,
            kernel_release: Bytes(&self.release),
            hostname: Bytes(&self.hostname),
            machine: Bytes(&self.machine),
            exe: Bytes(&self.exe),
            cwd: Bytes(&self.cwd),
            argv: self.argv.iter().map(|a| Bytes(a)).collect(),
            exec_gen: self.gen,
            at_phdr: aux(libc::AT_PHDR),
            at_entry: aux(libc::AT_ENTRY),
            at_base: aux(libc::AT_BASE),
            at_sysinfo_ehdr: aux(libc::AT_SYSINFO_EHDR),
            agent_version: Bytes(env!("CARGO_PKG_VERSION").as_bytes()),
            agent_heap_start: self.heap.0,
            agent_heap_end: self.heap.1,
        }
    }
}

/// Where the process's heap starts (start_brk, field 47 of /proc/PID/stat); 0 if unknown.
pub fn start_brk() -> u64 {
    let mut buf = Vec::new();
    if sys::read_file(&sys::proc_path("stat"), &mut buf).is_err() {
        return 0;
    }
    let Some(close) = buf.iter().rposition(|&c| c == b')') else {
        return 0;
    };
    // After the command's ')' comes field 3 (state).
    buf[close + 1..]
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty())
        .nth(47 - 3)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .unwrap_or(0)
}
