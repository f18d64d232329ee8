//! The tools around `mapagent dirty`: snapshots from code, on a signal and on an interval;
//! `mapagent diff` before and after the blog's fix; the `mapagent check` gate; the page map
//! rendered by a real browser.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn blog_main() -> PathBuf {
    blog_programs().1
}

/// The directory of the blog library with the fix (-DFIXED), same file name: runs of
/// dirty_main with LD_LIBRARY_PATH pointing there load it instead (RUNPATH yields to it).
fn blog_fixed_dir() -> PathBuf {
    let lib = cc(
        "dirty-fixed/libdirty_lib.so",
        &["dirty_lib.c"],
        &["-shared", "-fPIC", "-DFIXED"],
    );
    lib.parent().unwrap().to_path_buf()
}

fn snapshot_points() -> PathBuf {
    let include = format!("-I{}", root().join("agent/include").display());
    cc_with_lib(
        "snap/libsnap_lib.so",
        &["snap_lib.c"],
        "snap/snapshot_points",
        &["snapshot_points.c"],
        &[&include],
    )
    .1
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The snapshots recorded, as (label, trigger, ts) from `mapagent dump --json`.
fn snapshots(rec: &Path) -> Vec<(String, u64, u64)> {
    let o = mapagent(&["dump", s(rec), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "Snapshot")
        .map(|v| {
            (
                v["label"].as_str().unwrap().to_string(),
                v["trigger"].as_u64().unwrap(),
                v["ts"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn dirty_image(rec: &Path, snapshot: &str, image: &str) -> Value {
    let v = mapagent_json(&[
        "dirty",
        s(rec),
        "--snapshot",
        snapshot,
        "--image",
        image,
        "--json",
    ]);
    v.as_array().unwrap()[0].clone()
}

fn symbol_pages(image: &Value, name: &str) -> u64 {
    image["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .map_or(0, |x| x["dirty_pages"].as_u64().unwrap())
}

#[test]
fn snapshots_taken_from_code_match_smaps_at_each_label() {
    let dir = scratch("snap-api");
    let exe = snapshot_points();
    // Without the agent the header's helper does nothing and says so.
    let o = Command::new(&exe).arg("api").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "-1 -1 -1");

    let rec = dir.join("rec");
    let smaps = dir.join("smaps");
    std::fs::create_dir_all(&smaps).unwrap();
    let o = run_agent(&[s(&exe), "api"], &rec, &[("SMAPS_DIR", s(&smaps))]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0 0 0");
    let labels: Vec<(String, u64)> = snapshots(&rec).into_iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(
        labels,
        [
            ("before".to_string(), 3),
            ("after-4".to_string(), 3),
            ("after-12".to_string(), 3),
            ("exit".to_string(), 0)
        ]
    );
    let mut table = Vec::new();
    for label in ["before", "after-4", "after-12"] {
        let im = dirty_image(&rec, label, "libsnap_lib");
        // The kernel's count at the same point: Anonymous of the library's file mappings.
        let anon_kb: u64 = smaps_anonymous(&smaps.join(label))
            .iter()
            .filter(|m| m.2.ends_with("libsnap_lib.so"))
            .map(|m| m.3)
            .sum();
        assert_eq!(
            im["dirty_pages"].as_u64().unwrap() * 4,
            anon_kb,
            "snapshot '{label}' against smaps"
        );
        table.push(symbol_pages(&im, "snap_table"));
    }
    // Pages 0-3 of the table written (page 0 may already be the loader's), then 4-11.
    assert!((3..=4).contains(&(table[1] - table[0])), "{table:?}");
    assert_eq!(table[2] - table[1], 8, "{table:?}");
}

#[test]
fn a_signal_takes_a_snapshot() {
    let dir = scratch("snap-signal");
    let rec = dir.join("rec");
    let o = run_agent(
        &[s(&snapshot_points()), "signal"],
        &rec,
        &[("MAPAGENT_SNAPSHOT_SIGNAL", "SIGUSR2")],
    );
    // The agent's handler took SIGUSR2: its default action would have killed the program.
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "signalled");
    let snaps = snapshots(&rec);
    assert!(
        snaps.iter().any(|x| x.0 == "signal" && x.1 == 2),
        "{snaps:?}"
    );
    let im = dirty_image(&rec, "signal", "libsnap_lib");
    assert!(symbol_pages(&im, "snap_table") >= 2, "{im:#}");
}

#[test]
fn interval_snapshots_come_on_time() {
    let dir = scratch("snap-interval");
    let rec = dir.join("rec");
    run_agent(
        &[s(&snapshot_points()), "sleep", "600"],
        &rec,
        &[("MAPAGENT_INTERVAL_MS", "40")],
    );
    let snaps = snapshots(&rec);
    let ts: Vec<u64> = snaps.iter().filter(|x| x.1 == 1).map(|x| x.2).collect();
    // About fifteen in 600 ms; a loaded machine may delay some, never bunch them up.
    assert!(ts.len() >= 5, "{snaps:?}");
    for w in ts.windows(2) {
        assert!(w[1] - w[0] >= 38_000_000, "{snaps:?}");
    }
    assert_eq!(snaps.last().unwrap().0, "exit");
}

#[test]
fn diff_shows_the_blog_fix_per_symbol_with_totals() {
    let dir = scratch("dirty-diff");
    let main = blog_main();
    let fixed = blog_fixed_dir();
    let (before, after) = (dir.join("before"), dir.join("after"));
    run_agent(&[s(&main)], &before, &[]);
    run_agent(&[s(&main)], &after, &[("LD_LIBRARY_PATH", s(&fixed))]);
    let a = dirty_image(&before, "end", "libdirty_lib");
    let b = dirty_image(&after, "end", "libdirty_lib");
    assert!(b["path"].as_str().unwrap().contains("dirty-fixed"), "{b:#}");

    let d = mapagent_json(&["diff", s(&before), s(&after), "--json"]);
    let im = d["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image"] == "libdirty_lib.so")
        .unwrap();
    assert_eq!(im["before"], a["dirty_pages"]);
    assert_eq!(im["after"], b["dirty_pages"]);
    let delta = im["delta_pages"].as_i64().unwrap();
    assert!(delta < 0, "{im:#}");
    assert_eq!(
        delta,
        b["dirty_pages"].as_i64().unwrap() - a["dirty_pages"].as_i64().unwrap()
    );
    for name in ["rw", "p"] {
        let x = im["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name && x["section"] == ".data.rel.ro")
            .unwrap_or_else(|| panic!("{name} not in {im:#}"));
        assert_eq!(x["before"]["relocations"], 1, "{x:#}");
        assert!(x["before"]["dirty_pages"].as_u64().unwrap() >= 1, "{x:#}");
        // After the fix it is in .rodata: nothing to report under .data.rel.ro.
        assert!(x["after"].is_null(), "{x:#}");
        assert_eq!(x["delta_relocations"], -1, "{x:#}");
    }
    // Totals over every image, and the process-wide delta equals the sum of image deltas.
    let sum: i64 = d["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["delta_pages"].as_i64().unwrap())
        .sum();
    assert_eq!(d["delta_pages"].as_i64().unwrap(), sum);

    let o = mapagent(&["diff", s(&before), s(&after)]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("libdirty_lib.so"), "{text}");
    assert!(text.contains("Total:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(".data.rel.ro") && l.trim_end().ends_with(" rw")),
        "{text}"
    );
}

fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(mapagent_bin());
    cmd.arg("check").args(args).env("MAPAGENT_LIB", agent());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The temporary records directory a failed check kept (and says so).
fn remove_kept(stderr: &str) {
    let kept = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mapagent check: records in "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(Path::new(kept).is_dir(), "{kept}");
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn check_gates_on_private_dirty_pages() {
    let main = blog_main();
    let m = s(&main);
    // Over the limit: exit 1, the offending image and symbols named, records kept.
    let (code, _, err) = check(&["--max-dirty", "libdirty_lib.so=1", "--", m], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("FAIL: ") && err.contains("libdirty_lib.so"),
        "{err}"
    );
    assert!(err.contains("  rw (.data.rel.ro, "), "{err}");
    assert!(err.contains("  p (.data.rel.ro, "), "{err}");
    remove_kept(&err);

    // JSON: the violations.
    let (code, out, err) = check(&["--max-dirty", "libdirty_lib=1", "--json", "--", m], &[]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["max_pages"], 1);
    assert!(v[0]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == "rw"));
    remove_kept(&err);

    // The fixed library under the same limit as its actual count passes, and cleans up.
    let fixed = blog_fixed_dir();
    let out_dir = scratch("check-fixed");
    let (code, _, err) = check(
        &[
            "--max-dirty",
            "libdirty_lib.so=2",
            "-o",
            s(&out_dir),
            "--",
            m,
        ],
        &[("LD_LIBRARY_PATH", s(&fixed))],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("ok: ") && err.contains("dirty-fixed/libdirty_lib.so"),
        "{err}"
    );

    // A limit naming no loaded image is an error, not a pass.
    let (code, _, err) = check(&["--max-dirty", "libtypo.so=1", "--", m], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no loaded image matches 'libtypo.so'"),
        "{err}"
    );
    let (code, _, err) = check(&["--max-dirty", "libdirty_lib.so", "--", m], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected IMAGE=PAGES"), "{err}");
    // The command's own failure is reported and its status kept.
    let (code, _, err) = check(
        &["--max-dirty", "libc.so=1000", "--", "sh", "-c", "exit 3"],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("failed"), "{err}");
}

/// RGB of each pixel of a PNG.
fn png_pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let n = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(n)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

#[test]
fn page_map_renders_in_headless_chromium() {
    let dir = scratch("page-map");
    let rec = dir.join("rec");
    run_agent(&[s(&blog_main())], &rec, &[]);
    let html = dir.join("page-map.html");
    let o = mapagent(&["pages", s(&rec), "--image", "libdirty_lib", "-o", s(&html)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let im = dirty_image(&rec, "end", "libdirty_lib");
    let dirty = im["dirty_pages"].as_u64().unwrap();
    let page_count: u64 = im["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["pages"].as_u64().unwrap())
        .sum();

    // Every page a cell; the struct's dirty page says what is on it.
    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(text.matches("<rect ").count() as u64, page_count);
    assert_eq!(text.matches("<rect class=\"d\"").count() as u64, dirty);
    assert!(
        !text.contains("<script") && !text.contains("src=\""),
        "self-contained"
    );
    let rw_page = im["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "rw")
        .unwrap()["relocation_pages"][0]
        .as_u64()
        .unwrap();
    let cell = text
        .split("<rect ")
        .find(|c| c.contains(&format!("<title>{rw_page:#x}: dirty")))
        .unwrap_or_else(|| panic!("no cell for {rw_page:#x}"));
    assert!(cell.starts_with("class=\"d\""), "{cell}");
    assert!(cell.contains("\n  rw (1 relocations)"), "{cell}");
    assert!(cell.contains(".data.rel.ro"), "{cell}");

    // A real browser draws it: as many red cells as dirty pages (10x10 CSS pixels each,
    // plus the legend's swatch), and the clean and absent cells in their colours.
    let png = dir.join("page-map.png");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1000,2000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium (Debian package chromium) must be installed");
    assert!(png.is_file(), "{}", String::from_utf8_lossy(&o.stderr));
    let (w, h, px) = png_pixels(&png);
    assert_eq!((w, h), (1000, 2000));
    let count = |rgb: [u8; 3]| px.iter().filter(|p| **p == rgb).count() as u64;
    let red = count([0xd6, 0x27, 0x28]);
    assert_eq!(red, 100 * (dirty + 1), "red pixels for {dirty} dirty pages");
    assert!(count([0x2c, 0xa0, 0x2c]) >= 100 * 3, "clean cells");
    assert!(count([0xdd, 0xdd, 0xdd]) >= 100 * 1900, "absent cells");
}
