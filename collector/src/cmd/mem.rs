//! `mapagent mem DIR|FILE [--pid PID] [--json] [--svg OUT]`: memory use over time.

use crate::error::{Error, Result};
use crate::mem::{self, human, Series};
use crate::select::{self, Loaded};
use crate::text::At;
use std::fmt::Write as _;
use std::path::Path;

pub fn run(path: &Path, pid: Option<u32>, json: bool, svg: Option<&Path>) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    let chosen = select::pick(&loaded, &all, pid, At::End)?;
    let series: Vec<Series> = chosen.iter().map(|t| mem::series(t)).collect();
    if series.iter().all(|s| s.samples.is_empty()) {
        return Err(Error::input(format!(
            "{}: no memory samples (recorded by an agent older than format 1.3?)",
            path.display()
        )));
    }
    if let Some(out) = svg {
        crate::output::write(out, &[path], mem::svg(&series).as_bytes())?;
        eprintln!("mapagent: wrote {}", out.display());
    }
    if json {
        super::json_out(&series)?;
    } else {
        let mut s = String::new();
        for ser in &series {
            let _ = writeln!(
                s,
                "== pid {} {} ({} samples)",
                ser.pid,
                ser.exe,
                ser.samples.len()
            );
            let _ = writeln!(
                s,
                "{:>10} {:>11} {:>11} {:>11} {:>11} {:>11}  {:>11} {:>11}  source",
                "time (s)", "size", "resident", "shared", "text", "data", "agent size", "agent rss"
            );
            for x in &ser.samples {
                let (asz, ares) = match x.agent {
                    Some(a) => (human(a.size), human(a.resident)),
                    None => ("?".into(), "?".into()),
                };
                let _ = writeln!(
                    s,
                    "{:>10.3} {:>11} {:>11} {:>11} {:>11} {:>11}  {:>11} {:>11}  {}",
                    x.ts.saturating_sub(ser.start_ns) as f64 / 1e9,
                    human(x.size),
                    human(x.resident),
                    human(x.shared),
                    human(x.text),
                    human(x.data),
                    asz,
                    ares,
                    x.source
                );
            }
            if ser.samples.iter().any(|x| x.agent.is_some()) {
                let _ = writeln!(
                    s,
                    "(the application's figures: statm minus the agent's own arena, ring and library, shown apart)"
                );
            }
        }
        print!("{s}");
    }
    Ok(super::exit_code(truncated))
}
