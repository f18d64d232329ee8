//! Small formatting helpers shared by the commands.

/// "+1.234567s" relative to `base`.
pub fn rel(ts: u64, base: u64) -> String {
    if ts >= base {
        format!("+{:.6}s", (ts - base) as f64 / 1e9)
    } else {
        format!("-{:.6}s", (base - ts) as f64 / 1e9)
    }
}

/// Kibibytes, as pmap prints sizes.
pub fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// Left-aligned columns: each row's cells padded to the widest cell of that column; the last
/// column is not padded.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut width = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                for _ in c.chars().count()..width[i] + 2 {
                    line.push(' ');
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A moment in a recording, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    End,
    /// CLOCK_MONOTONIC nanoseconds.
    Abs(u64),
    /// Seconds after the process started ("+1.5").
    Rel(f64),
}

impl At {
    pub fn parse(s: &str) -> Result<At, String> {
        let s = s.trim();
        if s == "end" {
            return Ok(At::End);
        }
        if let Some(r) = s.strip_prefix('+') {
            let r = r.strip_suffix('s').unwrap_or(r);
            return r
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(At::Rel)
                .ok_or_else(|| {
                    format!("bad time '{s}': expected NS (CLOCK_MONOTONIC), +SECONDS or 'end'")
                });
        }
        s.parse::<u64>().map(At::Abs).map_err(|_| {
            format!("bad time '{s}': expected NS (CLOCK_MONOTONIC), +SECONDS or 'end'")
        })
    }

    /// The absolute time for a process that started at `start` (None = end).
    pub fn resolve(self, start: u64) -> Option<u64> {
        match self {
            At::End => None,
            At::Abs(t) => Some(t),
            At::Rel(s) => Some(start.saturating_add((s * 1e9) as u64)),
        }
    }
}

/// Text for HTML or SVG content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}
