//! `mapagent inject`: merges the agent's mapping records into a recording made by
//! `perf record`, so `perf report` names code perf could not: images loaded from a memfd or
//! deleted from disk (their kept copies go into perf's build-id cache) and mappings perf never
//! saw.
//!
//! Placement: perf delivers records in time order, flushing queued events at each
//! FINISHED_ROUND up to the largest time of the round before. An injected MMAP2 therefore goes
//! at the start of the first round whose running maximum time reaches its own time (so it
//! neither arrives after samples it should name nor pushes the flush watermark ahead of the
//! samples that follow), and its time is at least 1 ns after the perf MMAP2 it overrides (a
//! map delivered later wins) and after the process's FORK (which clears maps).
//! Times: exact for `perf record -k CLOCK_MONOTONIC`; otherwise aligned on mappings both
//! sides saw (see `calibrate`).

use crate::error::{Error, Result};
use crate::perf::input::{PerfInput, RawRecord};
use crate::perf::output::{AttrOut, PerfOut};
use crate::perf::synth::{MapKey, Opts, Synth};
use crate::perf::{buildid_cache, feat, features, rtype};
use crate::select::{self, Loaded};
use crate::timeline::Timeline;
use mapagent_record::records::{kind, Dlopen};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// perf's view of a mapping (an MMAP2 it recorded).
struct PerfMap {
    key: MapKey,
    ts: u64,
    /// The file's name, without " (deleted)".
    name: Vec<u8>,
}

/// A file name as both sides compare it: a deleted file is the same file.
fn file_name(n: &[u8]) -> &[u8] {
    let n = &n[..n.iter().position(|&c| c == 0).unwrap_or(n.len())];
    n.strip_suffix(b" (deleted)").unwrap_or(n)
}

/// What the scan of the input's records found.
#[derive(Default)]
struct Scan {
    maps: Vec<PerfMap>,
    forks: HashMap<u32, u64>,
    /// (offset where the round's records start, running maximum time up to its end).
    rounds: Vec<(u64, u64)>,
    pids: std::collections::HashSet<u32>,
    records: u64,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

fn scan(input: &PerfInput<'_>) -> std::result::Result<Scan, String> {
    let mut s = Scan::default();
    let mut round_start = input.records.0;
    let mut max_ts = 0u64;
    for r in input.records() {
        let r: RawRecord = r?;
        s.records += 1;
        let ts = if r.ty == rtype::SAMPLE {
            input.sample_time(&r)
        } else {
            input.record_time(&r)
        };
        if let Some(t) = ts {
            max_ts = max_ts.max(t);
        }
        let b = r.bytes;
        match r.ty {
            rtype::MMAP2 => {
                let key = MapKey {
                    pid: u32_at(b, 8),
                    addr: u64_at(b, 16),
                    len: u64_at(b, 24),
                    pgoff: u64_at(b, 32),
                };
                s.pids.insert(key.pid);
                s.maps.push(PerfMap {
                    key,
                    ts: ts.unwrap_or(0),
                    name: file_name(b.get(72..).unwrap_or(b"")).to_vec(),
                });
            }
            rtype::FORK => {
                s.forks.insert(u32_at(b, 8), ts.unwrap_or(0));
                s.pids.insert(u32_at(b, 8));
            }
            rtype::COMM | rtype::SAMPLE | rtype::EXIT => {
                let pid = if r.ty == rtype::SAMPLE {
                    input.sample_pid(&r)
                } else {
                    Some(u32_at(b, 8))
                };
                if let Some(p) = pid {
                    s.pids.insert(p);
                }
            }
            rtype::FINISHED_ROUND => {
                s.rounds.push((round_start, max_ts));
                round_start = r.offset + b.len() as u64;
            }
            _ => {}
        }
    }
    s.rounds.push((round_start, u64::MAX));
    Ok(s)
}

/// How agent times (CLOCK_MONOTONIC) map onto the recording's clock.
pub enum Clock {
    /// perf record -k CLOCK_MONOTONIC.
    Exact,
    /// perf's clock = CLOCK_MONOTONIC + offset, from `pairs` mappings both sides saw, within
    /// `spread` ns; `ignored` pairings disagreed with them.
    Aligned {
        offset: i64,
        pairs: usize,
        spread: u64,
        ignored: usize,
    },
    Unaligned,
}

/// perf's default clock (the kernel's local_clock) runs at CLOCK_MONOTONIC's rate with an
/// offset. Each dlopen'ed image perf saw mapped (same process, address, file offset and file
/// name) gives an interval for it: the kernel stamped the mmap after the dlopen started and
/// before the agent recorded the image, so offset ∈ [t_perf - t_image, t_perf - t_dlopen_start].
/// A library loaded twice at one address pairs with both of perf's records, and only one
/// pairing is true; the offset is taken where the most intervals agree (their intersection),
/// and the pairings outside it are reported as ignored.
fn calibrate(timelines: &[Timeline<'_>], scan: &Scan) -> Clock {
    let mut by_key: HashMap<(u32, u64, u64), Vec<&PerfMap>> = HashMap::new();
    for m in scan.maps.iter().filter(|m| m.ts > 0) {
        by_key
            .entry((m.key.pid, m.key.addr, m.key.pgoff))
            .or_default()
            .push(m);
    }
    // (lowest, highest) offset each pairing allows; i64::MAX: no upper bound.
    let mut intervals: Vec<(i64, i64)> = Vec::new();
    for t in timelines {
        let dlopens: Vec<(u64, u64)> = t
            .items()
            .iter()
            .filter_map(|i| i.get::<Dlopen>(kind::DLOPEN))
            .map(|d| (d.ts_start, d.ts))
            .collect();
        for im in t.images.iter().filter(|i| i.cause == "dlopen") {
            let name = file_name(im.path.as_bytes());
            // The dlopen that loaded it: the last one to start before the image was recorded.
            let start = dlopens
                .iter()
                .filter(|(s, _)| *s <= im.loaded_ns)
                .map(|(s, _)| *s)
                .max();
            for ph in im
                .phdrs
                .iter()
                .filter(|p| p.p_type == 1 && p.p_flags & 1 != 0)
            {
                let addr = im.load_bias.wrapping_add(ph.vaddr & !0xfff);
                let Some(seen) = by_key.get(&(t.pid(), addr, ph.offset & !0xfff)) else {
                    continue;
                };
                for m in seen.iter().filter(|m| m.name == name) {
                    let lo = (m.ts as i64).saturating_sub(im.loaded_ns as i64);
                    let hi = start.map_or(i64::MAX, |s| (m.ts as i64).saturating_sub(s as i64));
                    intervals.push((lo, hi.max(lo)));
                }
            }
        }
    }
    let Some((lo, hi, pairs)) = most_agreed(&intervals) else {
        return Clock::Unaligned;
    };
    Clock::Aligned {
        offset: if hi == i64::MAX {
            lo
        } else {
            lo + (hi - lo) / 2
        },
        pairs,
        spread: if hi == i64::MAX { 0 } else { (hi - lo) as u64 },
        ignored: intervals.len() - pairs,
    }
}

/// The range covered by the most intervals, and how many cover it.
fn most_agreed(intervals: &[(i64, i64)]) -> Option<(i64, i64, usize)> {
    // Starts sort before ends at the same point: touching intervals agree.
    let mut ev: Vec<(i64, i8)> = intervals
        .iter()
        .flat_map(|&(lo, hi)| [(lo, -1i8), (hi, 1i8)])
        .collect();
    ev.sort();
    let (mut n, mut best) = (0usize, None::<(i64, i64, usize)>);
    for (i, &(x, kind)) in ev.iter().enumerate() {
        if kind < 0 {
            n += 1;
            if best.is_none_or(|b| n > b.2) {
                let end = ev[i + 1..]
                    .iter()
                    .find(|e| e.1 > 0)
                    .map_or(i64::MAX, |e| e.0);
                best = Some((x, end, n));
            }
        } else {
            n -= 1;
        }
    }
    best
}

/// Rewrites the time in a record's trailer.
fn set_time(bytes: &mut [u8], back: usize, ts: u64) {
    let n = bytes.len();
    bytes[n - back..n - back + 8].copy_from_slice(&ts.to_le_bytes());
}

pub fn run(
    input_path: &Path,
    output: &Path,
    rec_path: &Path,
    buildid_dir: Option<PathBuf>,
    memfd_as_anon: bool,
) -> Result<i32> {
    let data = crate::input::Data::open(input_path)?;
    let bad = |m: String| Error::input(format!("{}: {m}", input_path.display()));
    let input = PerfInput::parse(&data).map_err(bad)?;
    let tr = input.trailer();
    let Some(back) = tr.time_from_end() else {
        return Err(bad("its records carry no time (sample_id_all or PERF_SAMPLE_TIME off): mapagent cannot place its own".into()));
    };
    let scan = scan(&input).map_err(bad)?;
    let loaded = Loaded::open(rec_path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let mine: Vec<&Timeline> = all
        .iter()
        .filter(|t| scan.pids.contains(&t.pid()))
        .collect();
    if mine.is_empty() {
        return Err(Error::input(format!(
            "none of the processes in {} appears in {} (recorded pids: {})",
            rec_path.display(),
            input_path.display(),
            all.iter()
                .map(|t| t.pid().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let clock = if input.monotonic() {
        Clock::Exact
    } else {
        calibrate(&all, &scan)
    };
    let offset = match clock {
        Clock::Aligned { offset, .. } => offset,
        _ => 0,
    };
    let mut synth = Synth::default();
    for t in &mine {
        synth.add(
            t,
            &tr,
            &Opts {
                exec_only: true,
                tasks: false,
                offset,
                samples: false,
                memfd_as_anon,
            },
        );
    }
    // Each record after the perf MMAP2 it overrides and after its process's FORK.
    let mut latest: HashMap<(u32, u64), Vec<u64>> = HashMap::new();
    for m in &scan.maps {
        latest
            .entry((m.key.pid, m.key.addr))
            .or_default()
            .push(m.ts);
    }
    for i in 0..synth.items.len() {
        let Some(k) = synth.map_of(&synth.items[i]) else {
            continue;
        };
        let mut ts = synth.items[i].ts;
        if let Some(&f) = scan.forks.get(&k.pid) {
            ts = ts.max(f + 1);
        }
        // The perf record for this very mapping is the latest one at the address no later
        // than ours (allowing for alignment error).
        if let Some(v) = latest.get(&(k.pid, k.addr)) {
            if let Some(&tp) = v
                .iter()
                .filter(|&&tp| tp <= ts.saturating_add(50_000_000))
                .max()
            {
                ts = ts.max(tp + 1);
            }
        }
        if ts != synth.items[i].ts {
            synth.items[i].ts = ts;
            set_time(synth.bytes_mut(i), back, ts);
        }
    }
    synth.sort();
    // Which round each record goes into.
    let mut plan: Vec<(u64, usize)> = Vec::with_capacity(synth.items.len());
    let mut k = 0;
    for (i, item) in synth.items.iter().enumerate() {
        while k + 1 < scan.rounds.len() && scan.rounds[k].1 < item.ts {
            k += 1;
        }
        plan.push((scan.rounds[k].0, i));
    }
    // Write: original bytes up to each insertion point, then the records that go there.
    let (placed, file) = crate::output::Output::create(output, &[input_path, rec_path])?;
    let io = |e: std::io::Error| Error::failure(format!("writing {}: {e}", output.display()));
    let attrs: Vec<AttrOut> = input
        .attrs
        .iter()
        .map(|a| AttrOut {
            raw: a.raw.to_vec(),
            ids: a.ids.to_vec(),
        })
        .collect();
    let mut w =
        PerfOut::begin(std::io::BufWriter::with_capacity(1 << 20, file), &attrs).map_err(io)?;
    let (dstart, dlen) = input.records;
    let bar = crate::progress::bar(dlen, "injecting");
    let mut cursor = dstart;
    for (at, i) in &plan {
        if *at > cursor {
            w.write(&data[cursor as usize..*at as usize]).map_err(io)?;
            bar.inc(at - cursor);
            cursor = *at;
        }
        w.write(synth.bytes(&synth.items[*i])).map_err(io)?;
    }
    w.write(&data[cursor as usize..(dstart + dlen) as usize])
        .map_err(io)?;
    bar.finish_and_clear();
    // Features: the input's, byte for byte, with our build-ids added to BUILD_ID.
    let mut feats: Vec<(u32, Vec<u8>)> = input
        .sections
        .iter()
        .filter(|s| s.0 != feat::BUILD_ID)
        .map(|&(b, o, s)| (b, data[o as usize..(o + s) as usize].to_vec()))
        .collect();
    let mut bids = input
        .feature(feat::BUILD_ID)
        .map(|b| b.to_vec())
        .unwrap_or_default();
    for (bid, name) in &synth.build_ids {
        features::build_id_entry(&mut bids, bid, name);
    }
    if !bids.is_empty() {
        feats.push((feat::BUILD_ID, bids));
    }
    w.finish(feats).map_err(io)?;
    placed.commit()?;
    // perf finds the kept copies through its build-id cache.
    let cache = buildid_dir.unwrap_or_else(buildid_cache::default_dir);
    let mut cached = 0;
    for (bid, name, file) in &synth.kept {
        match buildid_cache::install(&cache, bid, name, file) {
            Ok(true) => cached += 1,
            Ok(false) => {}
            Err(e) => eprintln!(
                "mapagent: warning: cannot put {} in {}: {e}",
                file.display(),
                cache.display()
            ),
        }
    }
    let clock = match clock {
        Clock::Exact => "CLOCK_MONOTONIC, exact".to_string(),
        Clock::Aligned { offset, pairs, spread, ignored } => {
            let ignored = if ignored > 0 { format!("; {ignored} other pairings disagreed and were ignored") } else { String::new() };
            format!("perf's clock, aligned on {pairs} mappings: offset {offset:+} ns (within {spread} ns{ignored})")
        }
        Clock::Unaligned => "perf's clock, no mapping to align on: agent times used as they are (record with -k CLOCK_MONOTONIC)".into(),
    };
    eprintln!(
        "mapagent: injected {} mapping records for {} process image{} into {} records; {} image{} added to the build-id cache {}; clock: {clock}",
        synth.items.len(),
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        scan.records,
        cached,
        if cached == 1 { "" } else { "s" },
        cache.display()
    );
    Ok(super::exit_code(truncated))
}
