//! Memory use over time: the agent's MemUsage samples (the columns of /proc/self/statm) of a
//! process, as a table and as an SVG line chart.

use crate::text::xml_escape as esc;
use crate::timeline::Timeline;
use mapagent_record::records::{kind, mem_source, AgentMem, MemUsage};
use serde::Serialize;
use std::fmt::Write as _;

/// One sample, in bytes: the application's figures (statm minus the agent's own share,
/// when the file has it), and the agent's share apart.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub ts: u64,
    pub size: u64,
    pub resident: u64,
    pub shared: u64,
    pub text: u64,
    pub data: u64,
    /// "statm", or "model" (computed by the agent where /proc was not mounted).
    pub source: &'static str,
    /// The agent's arena, ring and library in the process (None: an agent older than format
    /// 1.5 wrote the file, and the figures above include them).
    pub agent: Option<AgentShare>,
}

/// The agent's own footprint in the process, in bytes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AgentShare {
    pub size: u64,
    pub resident: u64,
    pub shared: u64,
    pub data: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub pid: u32,
    pub exe: String,
    pub start_ns: u64,
    pub samples: Vec<Sample>,
}

pub fn series(t: &Timeline<'_>) -> Series {
    let page = t.page_size();
    let mut samples: Vec<Sample> = Vec::new();
    for i in t.items() {
        if let Some(m) = i.get::<MemUsage>(kind::MEM_USAGE) {
            samples.push(Sample {
                ts: m.ts,
                size: m.size.saturating_mul(page),
                resident: m.resident.saturating_mul(page),
                shared: m.shared.saturating_mul(page),
                text: m.text.saturating_mul(page),
                data: m.data.saturating_mul(page),
                source: if m.source == mem_source::MODEL {
                    "model"
                } else {
                    "statm"
                },
                agent: None,
            });
        } else if let Some(a) = i.get::<AgentMem>(kind::AGENT_MEM) {
            // Written right after the MemUsage it belongs to.
            if let Some(x) = samples
                .last_mut()
                .filter(|x| x.ts == a.ts && x.agent.is_none())
            {
                let share = AgentShare {
                    size: a.size.saturating_mul(page),
                    resident: a.resident.saturating_mul(page),
                    shared: a.shared.saturating_mul(page),
                    data: a.data.saturating_mul(page),
                };
                x.size = x.size.saturating_sub(share.size);
                x.resident = x.resident.saturating_sub(share.resident);
                x.shared = x.shared.saturating_sub(share.shared);
                x.data = x.data.saturating_sub(share.data);
                x.agent = Some(share);
            }
        }
    }
    Series {
        pid: t.pid(),
        exe: t.process.exe.lossy().into_owned(),
        start_ns: t.process.start_mono_ns,
        samples,
    }
}

/// "12.3 MiB", "640 KiB".
pub fn human(b: u64) -> String {
    if b >= 10 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{} KiB", b >> 10)
    }
}

const METRICS: [(&str, &str); 4] = [
    ("size", "#1f77b4"),
    ("resident", "#d62728"),
    ("data", "#2ca02c"),
    ("shared", "#9467bd"),
];

fn metric(s: &Sample, name: &str) -> u64 {
    match name {
        "size" => s.size,
        "resident" => s.resident,
        "data" => s.data,
        "shared" => s.shared,
        _ => s.text,
    }
}

/// One SVG document, a chart per process: time on x (seconds since the process started),
/// bytes on y, a line per statm column.
pub fn svg(all: &[Series]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 300.0;
    const L: f64 = 80.0; // left margin for the y labels
    const T: f64 = 40.0;
    const B: f64 = 40.0;
    let chart_h = H + T + B;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">",
        W + L + 20.0,
        chart_h * all.len().max(1) as f64
    );
    for (i, ser) in all.iter().enumerate() {
        let y0 = i as f64 * chart_h;
        let _ = write!(
            s,
            "<text x=\"{L}\" y=\"{}\" font-size=\"14\">pid {} {} ({} samples)</text>",
            y0 + 20.0,
            ser.pid,
            esc(&ser.exe),
            ser.samples.len()
        );
        if ser.samples.is_empty() {
            continue;
        }
        let t0 = ser.start_ns.min(ser.samples[0].ts);
        let t1 = ser
            .samples
            .last()
            .map_or(t0, |x| x.ts)
            .max(t0.saturating_add(1));
        let ymax = ser
            .samples
            .iter()
            .map(|x| x.size.max(x.resident))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.05;
        let px = |ts: u64| L + (ts.saturating_sub(t0)) as f64 / (t1 - t0) as f64 * W;
        let py = |v: u64| y0 + T + H - v as f64 / ymax * H;
        // Axes and grid.
        let _ = write!(
            s,
            "<rect x=\"{L}\" y=\"{}\" width=\"{W}\" height=\"{H}\" fill=\"none\" stroke=\"#888\"/>",
            y0 + T
        );
        for k in 0..=4 {
            let v = (ymax / 1.05 * k as f64 / 4.0) as u64;
            let y = py(v);
            let _ = write!(
                s,
                "<line x1=\"{L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                L + W,
                L - 6.0,
                y + 4.0,
                human(v)
            );
            let t = t0.saturating_add((t1 - t0) / 4 * k);
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.3} s</text>",
                px(t),
                y0 + T + H + 16.0,
                (t - t0) as f64 / 1e9
            );
        }
        for (j, (name, colour)) in METRICS.iter().enumerate() {
            let pts: Vec<String> = ser
                .samples
                .iter()
                .map(|x| format!("{:.1},{:.1}", px(x.ts), py(metric(x, name))))
                .collect();
            let _ = write!(
                s,
                "<polyline class=\"{name}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            let lx = L + 10.0 + j as f64 * 110.0;
            let _ = write!(
                s,
                "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
                y0 + T - 12.0,
                lx + 16.0,
                y0 + T - 8.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
