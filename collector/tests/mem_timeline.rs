//! Memory use over time: the agent's samples against /proc/self/statm read by the program at
//! the same points, and `mapagent mem` as a table, JSON and an SVG chart.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;

#[test]
fn samples_match_statm_at_each_step_and_chart() {
    let dir = scratch("mem-steps");
    let include = root().join("agent/include");
    let exe = cc(
        "mem_steps",
        &["mem_steps.c"],
        &[&format!("-I{}", include.display())],
    );
    let rec = dir.join("rec");
    let o = run_agent(
        &[exe.to_str().unwrap()],
        &rec,
        &[("MAPAGENT_INTERVAL_MS", "25")],
    );
    // What the program read: label -> statm columns.
    let statm: HashMap<String, Vec<u64>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let label = f.next().unwrap().to_string();
            (label, f.map(|x| x.parse().unwrap()).collect())
        })
        .collect();
    assert_eq!(statm.len(), 4);

    // The sample taken with each labelled snapshot (it follows the snapshot's end).
    let dump = mapagent(&["dump", rec.to_str().unwrap(), "--json"]);
    let mut label = String::new();
    let mut at_label: HashMap<String, Value> = HashMap::new();
    for l in String::from_utf8_lossy(&dump.stdout).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        match v["type"].as_str().unwrap() {
            "Snapshot" => label = v["label"].as_str().unwrap().to_string(),
            "MemUsage" if label.starts_with("step-") => {
                at_label.entry(label.clone()).or_insert(v);
            }
            _ => {}
        }
    }
    let mut resident = Vec::new();
    for i in 1..=4 {
        let l = format!("step-{i}");
        let (m, k) = (&at_label[&l], &statm[&l]);
        // size, text and data are mapping totals: nothing mapped in between, so exact.
        assert_eq!(m["size"].as_u64().unwrap(), k[0], "{l}: {m} vs {k:?}");
        assert_eq!(m["text"].as_u64().unwrap(), k[3], "{l}");
        assert_eq!(m["data"].as_u64().unwrap(), k[5], "{l}");
        // Resident moves a little as the program reads statm (stdio, page faults).
        let (r, kr) = (m["resident"].as_u64().unwrap(), k[1]);
        assert!(r.abs_diff(kr) <= 64, "{l}: resident {r} vs statm {kr}");
        assert_eq!(m["source"], 0, "read from statm");
        resident.push(r);
    }
    for w in resident.windows(2) {
        assert!(
            w[1] >= w[0] + 16 * 256 - 64,
            "16 MiB more each step: {resident:?}"
        );
    }

    // mapagent mem: every sample (start, interval ticks, the four steps, exit), in time order.
    let v = mapagent_json(&["mem", rec.to_str().unwrap(), "--json"]);
    let samples = v[0]["samples"].as_array().unwrap();
    // Start, at least one interval tick per 60 ms pause, the four steps, exit.
    assert!(samples.len() >= 10, "{}", samples.len());
    let ts: Vec<u64> = samples.iter().map(|x| x["ts"].as_u64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        samples[0]["size"].as_u64().unwrap() % 4096,
        0,
        "bytes, not pages"
    );
    let peak = samples
        .iter()
        .map(|x| x["resident"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(peak >= 64 << 20, "the 64 MiB touched: {peak}");

    // The application's figures are statm minus the agent's own share, shown apart; they
    // come within 1 MiB of the same program's statm without the agent (what is left is the
    // agent's libraries' dependencies, libgcc_s).
    let bare = std::process::Command::new(&exe)
        .env("MAPAGENT_OFF", "1")
        .output()
        .unwrap();
    let bare: HashMap<String, Vec<u64>> = String::from_utf8_lossy(&bare.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().to_string(),
                f.map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect();
    for i in 1..=4 {
        let l = format!("step-{i}");
        let ts = at_label[&l]["ts"].as_u64().unwrap();
        let x = samples
            .iter()
            .find(|x| x["ts"].as_u64() == Some(ts))
            .unwrap_or_else(|| panic!("{l}: no sample at {ts}"));
        let agent = &x["agent"];
        let (app, own) = (x["size"].as_u64().unwrap(), agent["size"].as_u64().unwrap());
        assert_eq!((app + own) / 4096, statm[&l][0], "{l}: {x}");
        assert!(own >= 64 << 20, "{l}: the agent's arena is its own: {x}");
        let without = bare[&l][0] * 4096;
        assert!(
            app.abs_diff(without) <= 1 << 20,
            "{l}: application {app} under the agent, {without} without"
        );
        assert!(agent["resident"].as_u64().unwrap() > 0, "{l}: {x}");
    }

    let svg = dir.join("mem.svg");
    let o = mapagent(&["mem", rec.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("resident") && text.lines().count() >= samples.len() + 2,
        "{text}"
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg ") && chart.trim_end().ends_with("</svg>"));
    for name in ["size", "resident", "data", "shared"] {
        let line = chart
            .split("<polyline ")
            .find(|p| p.starts_with(&format!("class=\"{name}\"")))
            .unwrap_or_else(|| panic!("no {name} line"));
        let points = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), samples.len(), "{name}");
    }
}
