//! Header feature payloads (tools/perf/util/header.c write_*/process_*).

use super::misc;

/// perf_header_string: u32 length (the padded length), the string, NULs to a multiple of 64.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let padded = (s.len() + 1).div_ceil(64) * 64;
    out.extend_from_slice(&(padded as u32).to_le_bytes());
    out.extend_from_slice(s);
    out.extend(std::iter::repeat_n(0u8, padded - s.len()));
}

pub fn string_feature(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    string(&mut v, s);
    v
}

pub fn nrcpus(available: u32, online: u32) -> Vec<u8> {
    let mut v = available.to_le_bytes().to_vec();
    v.extend_from_slice(&online.to_le_bytes());
    v
}

pub fn cmdline<S: AsRef<[u8]>>(args: &[S]) -> Vec<u8> {
    let mut v = (args.len() as u32).to_le_bytes().to_vec();
    for a in args {
        string(&mut v, a.as_ref());
    }
    v
}

/// One BUILD_ID entry: host machine (pid -1), user space, build-id length given.
pub fn build_id_entry(out: &mut Vec<u8>, build_id: &[u8], filename: &[u8]) {
    let name_len = (filename.len() + 1).div_ceil(64) * 64;
    let size = 36 + name_len;
    out.extend_from_slice(&0u32.to_le_bytes()); // type 0 inside the feature section
    out.extend_from_slice(&(misc::USER | misc::BUILD_ID_SIZE).to_le_bytes());
    out.extend_from_slice(&(size as u16).to_le_bytes());
    out.extend_from_slice(&(-1i32).to_le_bytes());
    let n = build_id.len().min(20);
    let mut id = [0u8; 20];
    id[..n].copy_from_slice(&build_id[..n]);
    out.extend_from_slice(&id);
    out.push(n as u8);
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(filename);
    out.extend(std::iter::repeat_n(0u8, name_len - filename.len()));
}

/// CLOCKID holds the clock's resolution in nanoseconds.
pub fn clockid_res(ns: u64) -> Vec<u8> {
    ns.to_le_bytes().to_vec()
}

/// CLOCK_DATA: version 1, the clock id, then one instant on the wall clock and on that clock.
pub fn clock_data(clockid: i32, wall_ns: u64, clock_ns: u64) -> Vec<u8> {
    let mut v = 1u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(clockid as u32).to_le_bytes());
    v.extend_from_slice(&wall_ns.to_le_bytes());
    v.extend_from_slice(&clock_ns.to_le_bytes());
    v
}

/// EVENT_DESC for attrs without ids: the name perf shows for each event.
pub fn event_desc(attrs: &[(&[u8], &[u8], &[u64])]) -> Vec<u8> {
    let mut v = (attrs.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(&(super::ATTR_SIZE as u32).to_le_bytes());
    for (attr, name, ids) in attrs {
        v.extend_from_slice(attr);
        v.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        string(&mut v, name);
        for id in *ids {
            v.extend_from_slice(&id.to_le_bytes());
        }
    }
    v
}

pub fn sample_time(first: u64, last: u64) -> Vec<u8> {
    let mut v = first.to_le_bytes().to_vec();
    v.extend_from_slice(&last.to_le_bytes());
    v
}

/// Facts about the machine mapagent runs on, for CPUDESC/CPUID/NRCPUS/TOTAL_MEM.
pub struct Host {
    pub cpudesc: String,
    pub cpuid: String,
    pub nr_cpus: u32,
    pub total_mem_kb: u64,
}

impl Host {
    pub fn read() -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |k: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|f| f.trim() == k))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpudesc = field("model name").unwrap_or_else(|| "unknown".into());
        let cpudesc = cpudesc.split_whitespace().collect::<Vec<_>>().join(" ");
        let cpuid = format!(
            "{},{},{},{}",
            field("vendor_id").unwrap_or_default(),
            field("cpu family").unwrap_or_default(),
            field("model").unwrap_or_default(),
            field("stepping").unwrap_or_default()
        );
        let nr_cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let total_mem_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        Host {
            cpudesc,
            cpuid,
            nr_cpus,
            total_mem_kb,
        }
    }
}
