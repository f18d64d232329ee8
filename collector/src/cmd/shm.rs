//! `mapagent shm [--json] [--record DIR]`: System V shared memory segments, like `ipcs -m -a`
//! in one table with the same columns on every kernel; with --record, which recorded process
//! attached which segment where, from the agent's shmat/shmdt records.

use crate::error::Result;
use crate::select;
use crate::shm::{self, Segment};
use mapagent_record::records::{kind, Shmat, Shmdt};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize)]
pub struct Attach {
    pub pid: u32,
    pub tid: u32,
    pub ts: u64,
    /// "shmat" or "shmdt".
    pub call: &'static str,
    pub shmid: Option<i32>,
    pub key: Option<i32>,
    pub addr: u64,
    pub size: Option<u64>,
    pub errno: i32,
}

pub fn run(json: bool, record: Option<&Path>) -> Result<i32> {
    let (segs, source) = shm::list()?;
    let (attaches, truncated) = match record {
        Some(p) => {
            let (a, t) = attachments(p)?;
            (Some(a), t)
        }
        None => (None, false),
    };
    if json {
        match &attaches {
            None => super::json_out(&segs)?,
            Some(a) => super::json_out(&serde_json::json!({ "segments": segs, "attachments": a }))?,
        }
        return Ok(super::exit_code(truncated));
    }
    let mut s = String::new();
    table(&mut s, &segs, source);
    if let Some(a) = &attaches {
        let _ = writeln!(s, "\nRecorded shmat/shmdt ({}):", a.len());
        for x in a {
            let what = match (x.call, x.errno) {
                ("shmat", 0) => format!(
                    "shmat(shmid {}) -> {:#x}, {} bytes, key {:#010x}",
                    x.shmid.unwrap_or(-1),
                    x.addr,
                    x.size.unwrap_or(0),
                    x.key.unwrap_or(0)
                ),
                ("shmat", e) => format!("shmat(shmid {}) failed: errno {e}", x.shmid.unwrap_or(-1)),
                (_, 0) => format!("shmdt({:#x})", x.addr),
                (_, e) => format!("shmdt({:#x}) failed: errno {e}", x.addr),
            };
            let _ = writeln!(s, "  {:>16} pid {:<7} tid {:<7} {what}", x.ts, x.pid, x.tid);
        }
    }
    print!("{s}");
    Ok(super::exit_code(truncated))
}

fn owner(uid: u32) -> String {
    // SAFETY: getpwuid_r with a caller-owned buffer; the result points into it.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 1024];
        let mut out = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) == 0
            && !out.is_null()
        {
            return std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    uid.to_string()
}

fn table(s: &mut String, segs: &[Segment], source: shm::Source) {
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:<10} {:<9} {:<11} {:>12} {:>6} {:>8} {:>8} {:>12} {:>10}",
        "key",
        "shmid",
        "owner",
        "perms",
        "status",
        "bytes",
        "nattch",
        "cpid",
        "lpid",
        "rss",
        "swap"
    );
    for g in segs {
        let status = match (g.dest, g.locked) {
            (true, true) => "dest,locked",
            (true, false) => "dest",
            (false, true) => "locked",
            (false, false) => "-",
        };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{:#010x} {:>10} {:<10} {:<9} {:<11} {:>12} {:>6} {:>8} {:>8} {:>12} {:>10}",
            g.key,
            g.shmid,
            owner(g.uid),
            shm::perms(g.mode),
            status,
            g.size,
            g.nattch,
            g.cpid,
            g.lpid,
            opt(g.rss),
            opt(g.swap)
        );
    }
    let _ = writeln!(
        s,
        "{} segment{} (read with {})",
        segs.len(),
        if segs.len() == 1 { "" } else { "s" },
        source.name()
    );
}

/// Every shmat/shmdt the agent recorded, in time order, and whether a file was cut short.
pub fn attachments(path: &Path) -> Result<(Vec<Attach>, bool)> {
    let loaded = select::Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    select::pick(&loaded, &all, None, crate::text::At::End)?;
    let mut out = Vec::new();
    for t in &all {
        for it in t.items() {
            if let Some(a) = it.get::<Shmat>(kind::SHMAT) {
                out.push(Attach {
                    pid: t.pid(),
                    tid: a.tid,
                    ts: a.ts,
                    call: "shmat",
                    shmid: Some(a.shmid),
                    key: Some(a.key),
                    addr: a.result,
                    size: Some(a.size),
                    errno: a.errno,
                });
            } else if let Some(d) = it.get::<Shmdt>(kind::SHMDT) {
                out.push(Attach {
                    pid: t.pid(),
                    tid: d.tid,
                    ts: d.ts,
                    call: "shmdt",
                    shmid: None,
                    key: None,
                    addr: d.addr,
                    size: None,
                    errno: d.errno,
                });
            }
        }
    }
    out.sort_by_key(|a| a.ts);
    Ok((out, truncated))
}
