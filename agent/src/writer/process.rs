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
    let _ = sys::read_file(c"/proc/self/cmdline", &mut cmdline);
    let argv = cmdline
        .split(|&c| c == 0)
        .map(|s| s.to_vec())
        .collect::<Vec<_>>();
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    let cwd = std::env::current_dir()
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    Described {
        pid: ag.pid as u32,
        ppid: unsafe { libc::getppid() } as u32,
        origin: ag.origin,
        parent_pid: ag.parent_pid,
        origin_ts: ag.origin_ts,
        uid: unsafe { libc::getuid() },
        euid: unsafe { libc::geteuid() },
        start_mono: ag.start_mono,
        start_wall: ag.start_wall,
        page_size: unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32,
        release: field(&uts.release),
        hostname: field(&uts.nodename),
        machine: field(&uts.machine),
        exe: ag.exe.clone(),
        cwd,
        argv,
        gen: 0,
    }
}

impl Described {
    pub fn record(&self) -> rec::Process<'_> {
        let aux = |t| unsafe { libc::getauxval(t) };
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
            agent_heap_start: crate::arena::range().0,
            agent_heap_end: crate::arena::range().1,
        }
    }
}
