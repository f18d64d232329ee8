//! Watched globals: resolved by symbol (in the program, and in a library dlopen'ed later),
//! sampled on request and periodically, read without faulting (a bad pointer, a string that
//! runs into an unmapped page), and matched to real perf samples by time.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const WATCH: &str =
    "current_query:str,counter:i64,label:chars,plug_w_data:i32,no_such_symbol:u64,x:weird";

fn program() -> (PathBuf, PathBuf) {
    let include = root().join("agent/include");
    let exe = cc(
        "watch_points",
        &["watch_points.c"],
        &["-rdynamic", &format!("-I{}", include.display()), "-ldl"],
    );
    let lib = plugin(&build_dir().join("watch-plugins"), "w");
    (exe, lib)
}

/// (tid != 0, name, shown value) in time order.
fn values(h: &Value) -> Vec<(bool, String, String)> {
    h["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let shown = match (v["status"].as_str().unwrap(), v["value"].as_str()) {
                ("ok", Some(s)) => s.to_string(),
                (st, _) => format!("({st})"),
            };
            (
                v["tid"].as_u64().unwrap() != 0,
                v["name"].as_str().unwrap().to_string(),
                shown,
            )
        })
        .collect()
}

#[test]
fn watched_globals_sampled_on_request_and_periodically() {
    let dir = scratch("watch");
    let (exe, lib) = program();
    let rec = dir.join("rec");
    let o = run_agent(
        &[exe.to_str().unwrap(), lib.to_str().unwrap()],
        &rec,
        &[("MAPAGENT_WATCH", WATCH), ("MAPAGENT_WATCH_MS", "5")],
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = agent_log(&rec);
    assert!(
        err.contains("MAPAGENT_WATCH=x:weird") && err.lines().count() == 1,
        "one warning for the bad entry: {err}"
    );
    let v = mapagent_json(&["watch", rec.to_str().unwrap(), "--json"]);
    let h = &v[0];
    let defs: Vec<(String, String, bool)> = h["watches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["type"].as_str().unwrap().to_string(),
                w["addr"].as_u64().unwrap() != 0,
            )
        })
        .collect();
    let def = |n: &str, t: &str, found: bool| (n.to_string(), t.to_string(), found);
    assert_eq!(
        defs,
        [
            def("current_query", "str", true),
            def("counter", "i64", true),
            def("label", "chars", true),
            def("plug_w_data", "i32", true),
            def("no_such_symbol", "u64", false),
        ]
    );
    // What each mapagent_watch_sample() saw (tid set: asked by the program).
    let asked: Vec<(String, String)> = values(h)
        .into_iter()
        .filter(|x| x.0)
        .map(|x| (x.1, x.2))
        .collect();
    let step = |q: &str, c: &str, l: &str| {
        vec![
            ("current_query".to_string(), q.to_string()),
            ("counter".to_string(), c.to_string()),
            ("label".to_string(), l.to_string()),
        ]
    };
    let mut want = Vec::new();
    want.extend(step("(null)", "0", "initial"));
    want.extend(step("SELECT 1", "1", "first"));
    want.extend(step("(unreadable)", "2", "first"));
    want.extend(step("TAIL", "3", "first"));
    want.extend(step("UPDATE t SET x = 1", "4", "first"));
    want.push(("plug_w_data".to_string(), "42".to_string()));
    assert_eq!(asked, want);
    // Periodic samples (tid 0) caught every value the loop went through, each once.
    let counters: Vec<String> = values(h)
        .into_iter()
        .filter(|x| !x.0 && x.1 == "counter")
        .map(|x| x.2)
        .collect();
    for i in 10..20 {
        let n = counters.iter().filter(|c| **c == i.to_string()).count();
        assert!(n >= 1, "counter {i} missed: {counters:?}");
    }
    let text = mapagent(&["watch", rec.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("watch no_such_symbol (u64) not found"),
        "{text}"
    );
    assert!(text.contains("current_query = SELECT 1"), "{text}");
}

#[test]
fn perf_samples_annotated_with_the_values_current_at_their_time() {
    let dir = scratch("watch-perf");
    let (exe, lib) = program();
    let rec = dir.join("rec");
    let data = dir.join("perf.data");
    let o = Command::new("perf")
        .args([
            "record",
            "-q",
            "-k",
            "CLOCK_MONOTONIC",
            "-e",
            "cpu-clock",
            "-F",
            "1000",
            "-o",
        ])
        .arg(&data)
        .arg("--")
        .arg(&exe)
        .arg(&lib)
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .env("MAPAGENT_WATCH", "counter:i64")
        .env("MAPAGENT_WATCH_MS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = mapagent_json(&[
        "watch",
        rec.to_str().unwrap(),
        "--perf",
        data.to_str().unwrap(),
        "--json",
    ]);
    let c = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["exe"] == exe.to_str().unwrap())
        .unwrap_or_else(|| panic!("no samples of the program: {v:#}"));
    let total = c["samples"].as_u64().unwrap();
    assert!(total >= 200, "{c}");
    let counts: Vec<(String, u64)> = c["values"]["counter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x[0].as_str().unwrap().to_string(), x[1].as_u64().unwrap()))
        .collect();
    // 40 ms of work per value at 1000 Hz: each of 10..19 holds a good share of the samples.
    for i in 10..20 {
        let n = counts
            .iter()
            .find(|x| x.0 == i.to_string())
            .map_or(0, |x| x.1);
        assert!(n >= 10, "counter {i}: {n} samples of {total}: {counts:?}");
    }
}
