//! `mapagent watch DIR|FILE [--pid PID] [--json] [--perf perf.data]`: the watched globals'
//! values over time; with --perf, which values were current during the perf samples of each
//! process (perf record -k CLOCK_MONOTONIC, so both sides share a clock).

use crate::error::{Error, Result};
use crate::select::{self, Loaded};
use crate::text::At;
use crate::watch::{self, History};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize)]
pub struct PerfCount {
    pub pid: u32,
    pub exe: String,
    pub samples: u64,
    /// Per watch, per value: samples taken while it held.
    pub values: BTreeMap<String, Vec<(String, u64)>>,
}

pub struct Args<'a> {
    pub pid: Option<u32>,
    pub json: bool,
    pub perf: Option<&'a Path>,
    /// Count values with their numbers and quoted strings replaced (SQL with literals
    /// becomes one line per statement shape, as pg_stat_statements shows it).
    pub normalize: bool,
    /// Values listed per watch and process with --perf.
    pub top: usize,
}

/// "UPDATE t SET x = x + -42 WHERE id = 7" -> "UPDATE t SET x = x + N WHERE id = N".
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            for d in chars.by_ref() {
                if d == '\'' {
                    break;
                }
            }
            out.push_str("'?'");
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            // A sign directly before the number belongs to it.
            if out.ends_with('-') && !out.ends_with("--") {
                out.pop();
            }
            out.push('N');
            prev_word = true;
        } else {
            prev_word = c.is_alphanumeric() || c == '_';
            out.push(c);
        }
    }
    out
}

pub fn run(path: &Path, a: &Args<'_>) -> Result<i32> {
    let (pid, json, perf) = (a.pid, a.json, a.perf);
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, pid, At::End)?;
    let hist: Vec<History> = chosen
        .iter()
        .map(|t| watch::history(t))
        .filter(|h| !h.watches.is_empty())
        .collect();
    if hist.is_empty() {
        return Err(Error::input(format!(
            "{}: no watched globals recorded (set MAPAGENT_WATCH=name:type,...)",
            path.display()
        )));
    }
    if let Some(p) = perf {
        // Process images that never saw a value (a launcher before its exec) explain nothing.
        let hist: Vec<History> = hist.into_iter().filter(|h| !h.values.is_empty()).collect();
        let counts = against_perf(&hist, p, a.normalize)?;
        if json {
            super::json_out(&counts)?;
        } else {
            print!("{}", perf_text(&counts, a.top));
        }
        return Ok(super::exit_code(truncated));
    }
    if json {
        super::json_out(&hist)?;
        return Ok(super::exit_code(truncated));
    }
    let mut s = String::new();
    for h in &hist {
        let _ = writeln!(s, "== pid {} {}", h.pid, h.exe);
        for w in &h.watches {
            let _ = writeln!(
                s,
                "  watch {} ({}) {}",
                w.name,
                w.ty,
                if w.addr == 0 {
                    "not found".to_string()
                } else {
                    format!("at {:#x}", w.addr)
                }
            );
        }
        for v in &h.values {
            let _ = writeln!(
                s,
                "  {:>16} tid {:<7} {} = {}",
                v.ts,
                v.tid,
                v.name,
                watch::shown(Some(v))
            );
        }
    }
    print!("{s}");
    Ok(super::exit_code(truncated))
}

/// Every perf sample of a recorded process, counted by the watched values current at its time.
fn against_perf(hist: &[History], perf: &Path, norm: bool) -> Result<Vec<PerfCount>> {
    use linux_perf_data::linux_perf_event_reader::EventRecord;
    use linux_perf_data::{PerfFileReader, PerfFileRecord};
    let bad = |e: String| Error::input(format!("{}: {e}", perf.display()));
    let f = std::fs::File::open(perf).map_err(|e| bad(e.to_string()))?;
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = PerfFileReader::parse_file(std::io::BufReader::new(f)).map_err(|e| bad(e.to_string()))?;
    type Counts = BTreeMap<String, BTreeMap<String, u64>>;
    let mut per: BTreeMap<(u32, u64), (u64, Counts)> = BTreeMap::new();
    let mut untimed = 0u64;
    while let Some(r) = record_iter
        .next_record(&mut perf_file)
        .map_err(|e| bad(e.to_string()))?
    {
        let PerfFileRecord::EventRecord { record, .. } = r else {
            continue;
        };
        let Ok(EventRecord::Sample(smp)) = record.parse() else {
            continue;
        };
        let (Some(pid), Some(ts)) = (smp.pid, smp.timestamp) else {
            untimed += 1;
            continue;
        };
        // The process image running then: the last one of that pid started before it.
        let Some(h) = hist
            .iter()
            .filter(|h| h.pid as i32 == pid && h.start_ns <= ts)
            .max_by_key(|h| h.start_ns)
        else {
            continue;
        };
        let e = per.entry((h.pid, h.start_ns)).or_default();
        e.0 += 1;
        for w in &h.watches {
            let mut v = watch::shown(watch::value_at(h, &w.name, ts));
            if norm {
                v = normalize(&v);
            }
            *e.1.entry(w.name.clone()).or_default().entry(v).or_default() += 1;
        }
    }
    if untimed > 0 {
        eprintln!("mapagent: warning: {untimed} samples without pid or time (record with -k CLOCK_MONOTONIC, sample_type TIME|TID)");
    }
    Ok(per
        .into_iter()
        .map(|((pid, start), (samples, m))| {
            let exe = hist
                .iter()
                .find(|h| h.pid == pid && h.start_ns == start)
                .map_or(String::new(), |h| h.exe.clone());
            let values = m
                .into_iter()
                .map(|(name, vals)| {
                    let mut v: Vec<(String, u64)> = vals.into_iter().collect();
                    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    (name, v)
                })
                .collect();
            PerfCount {
                pid,
                exe,
                samples,
                values,
            }
        })
        .collect())
}

fn perf_text(counts: &[PerfCount], top: usize) -> String {
    let mut s = String::new();
    for c in counts {
        let _ = writeln!(s, "== pid {} {}: {} samples", c.pid, c.exe, c.samples);
        for (name, vals) in &c.values {
            let _ = writeln!(s, "  {name}:");
            for (v, n) in vals.iter().take(top) {
                let pct = *n as f64 * 100.0 / c.samples.max(1) as f64;
                let _ = writeln!(s, "  {n:>8} {pct:>5.1}%  {v}");
            }
            if vals.len() > top {
                let rest: u64 = vals[top..].iter().map(|x| x.1).sum();
                let _ = writeln!(
                    s,
                    "  {rest:>8} {:>5.1}%  ... {} more values (--top N, --normalize)",
                    rest as f64 * 100.0 / c.samples.max(1) as f64,
                    vals.len() - top
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalizes_sql_literals() {
        assert_eq!(
            super::normalize(
                "UPDATE pgbench_tellers SET tbalance = tbalance + -4327 WHERE tid = 13;"
            ),
            "UPDATE pgbench_tellers SET tbalance = tbalance + N WHERE tid = N;"
        );
        assert_eq!(
            super::normalize("SELECT 'a b', x1 FROM t2"),
            "SELECT '?', x1 FROM t2"
        );
        assert_eq!(super::normalize("(NULL)"), "(NULL)");
    }
}
