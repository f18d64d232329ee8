//! perf.data (PERFILE2) as perf 6.1 reads it: a reader for recordings made by `perf record`
//! (to inject into them), encoders for the records and header features mapagent writes, the
//! synthesis of mapping records from agent recordings, and perf's build-id cache.
//! The layouts follow tools/perf/util/header.c and session.c of Linux 6.1.

pub mod buildid_cache;
pub mod event;
pub mod features;
pub mod input;
pub mod output;
pub mod synth;

pub const PERF_MAGIC: &[u8; 8] = b"PERFILE2";
pub const HEADER_SIZE: usize = 104;
pub const ATTR_SIZE: usize = 128;

pub mod rtype {
    pub const MMAP: u32 = 1;
    pub const COMM: u32 = 3;
    pub const EXIT: u32 = 4;
    pub const FORK: u32 = 7;
    pub const SAMPLE: u32 = 9;
    pub const MMAP2: u32 = 10;
    pub const AUX: u32 = 11;
    pub const ITRACE_START: u32 = 12;
    pub const AUX_OUTPUT_HW_ID: u32 = 21;
    pub const FINISHED_ROUND: u32 = 68;
    pub const AUXTRACE_INFO: u32 = 70;
    pub const AUXTRACE: u32 = 71;
    pub const AUXTRACE_ERROR: u32 = 72;
    pub const COMPRESSED: u32 = 81;
}

/// Feature bits (tools/perf/util/header.h).
pub mod feat {
    pub const BUILD_ID: u32 = 2;
    pub const HOSTNAME: u32 = 3;
    pub const OSRELEASE: u32 = 4;
    pub const VERSION: u32 = 5;
    pub const ARCH: u32 = 6;
    pub const NRCPUS: u32 = 7;
    pub const CPUDESC: u32 = 8;
    pub const CPUID: u32 = 9;
    pub const TOTAL_MEM: u32 = 10;
    pub const CMDLINE: u32 = 11;
    pub const EVENT_DESC: u32 = 12;
    pub const AUXTRACE: u32 = 18;
    pub const STAT: u32 = 19;
    pub const SAMPLE_TIME: u32 = 21;
    pub const CLOCKID: u32 = 23;
    pub const DIR_FORMAT: u32 = 24;
    pub const COMPRESSED: u32 = 27;
    pub const CLOCK_DATA: u32 = 29;
}

/// sample_type bits that shape the sample_id trailer of non-sample records.
pub mod sample {
    pub const TID: u64 = 1 << 1;
    pub const TIME: u64 = 1 << 2;
    pub const ID: u64 = 1 << 6;
    pub const CPU: u64 = 1 << 7;
    pub const STREAM_ID: u64 = 1 << 9;
    pub const IDENTIFIER: u64 = 1 << 16;
}

pub mod misc {
    pub const USER: u16 = 2;
    pub const COMM_EXEC: u16 = 0x2000;
    pub const MMAP_BUILD_ID: u16 = 0x4000;
    pub const BUILD_ID_SIZE: u16 = 0x8000;
}

pub const CLOCK_MONOTONIC: i32 = 1;
