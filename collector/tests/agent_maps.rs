//! Must show 1 of the agent issue: for each C program, `mapagent maps --at T` equals the
//! kernel's /proc/self/maps at every checkpoint T the program took.

mod common;
use common::*;

#[test]
fn dlopen_and_dlclose_several_libraries() {
    let dir = scratch("dl_plugins");
    let libs = build_dir().join("plugins");
    for n in ["a", "b", "c"] {
        plugin(&libs, n);
    }
    let exe = cc("dl_plugins", &["dl_plugins.c"], &["-ldl"]);
    let rec = dir.join("rec");
    run_agent(&[exe.to_str().unwrap(), libs.to_str().unwrap()], &rec, &[]);
    let cps = assert_checkpoints_match(&rec);
    assert_eq!(cps.len(), 5);
    // The images table saw each plugin load and unload, with build-ids.
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let b: Vec<&serde_json::Value> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["path"].as_str().unwrap().ends_with("libplug_b.so"))
        .collect();
    assert_eq!(b.len(), 2, "libplug_b loaded twice: {images:#}");
    assert!(
        b[0]["unloaded_ns"].as_u64().is_some(),
        "first libplug_b unloaded"
    );
    assert!(
        b[1]["unloaded_ns"].is_null(),
        "second libplug_b still loaded at exit"
    );
    assert_eq!(b[0]["cause"], "dlopen");
    assert_eq!(b[0]["build_id"].as_str().unwrap().len(), 40);
}

#[test]
fn dlopen_after_map_fixed_took_its_address() {
    let dir = scratch("fixed_dlopen");
    let lib = plugin(&build_dir().join("plugins"), "a");
    let exe = cc("fixed_dlopen", &["fixed_dlopen.c"], &["-ldl"]);
    let rec = dir.join("rec");
    let out = run_agent(&[exe.to_str().unwrap(), lib.to_str().unwrap()], &rec, &[]);
    assert_checkpoints_match(&rec);
    // The two load biases the program saw are the two the agent recorded.
    let text = String::from_utf8(out.stdout).unwrap();
    let bases: Vec<u64> = text
        .trim()
        .split(' ')
        .map(|kv| {
            u64::from_str_radix(kv.split('=').nth(1).unwrap().trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let got: Vec<u64> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["path"].as_str().unwrap().ends_with("libplug_a.so"))
        .map(|i| i["load_bias"].as_u64().unwrap())
        .collect();
    assert_eq!(got, bases);
}

#[test]
fn file_memfd_mremap_and_mprotect() {
    let dir = scratch("mapping_ops");
    let exe = cc("mapping_ops", &["mapping_ops.c"], &[]);
    let rec = dir.join("rec");
    let data = dir.join("data.bin");
    run_agent(&[exe.to_str().unwrap(), data.to_str().unwrap()], &rec, &[]);
    let cps = assert_checkpoints_match(&rec);
    // The file mapping whose fd was closed right away came from the mmap event, with its path
    // and inode captured at call time, not from a later look at /proc.
    let cp = cps
        .iter()
        .find(|c| c.label == "file-mapped-fd-closed")
        .unwrap();
    let file_region = cp
        .maps
        .iter()
        .find(|r| r.name.ends_with(b"data.bin"))
        .expect("file mapped");
    let v = mapagent_json(&[
        "maps",
        rec.to_str().unwrap(),
        "--at",
        &cp.t.to_string(),
        "--json",
    ]);
    let m = mapping_at(&v, file_region.start).unwrap();
    assert_eq!(m["source"], "mmap", "{m:#}");
    assert_eq!(m["inode"].as_u64().unwrap(), file_region.ino);
    let cp = cps.iter().find(|c| c.label == "memfd-mapped").unwrap();
    let memfd = cp
        .maps
        .iter()
        .find(|r| r.name.starts_with(b"/memfd:mapagent-test"))
        .expect("memfd mapped");
    let v = mapagent_json(&[
        "maps",
        rec.to_str().unwrap(),
        "--at",
        &cp.t.to_string(),
        "--json",
    ]);
    assert_eq!(mapping_at(&v, memfd.start).unwrap()["source"], "mmap");
}

#[test]
fn eight_threads_mapping_at_once() {
    let dir = scratch("threads");
    let exe = cc("threads", &["threads.c"], &["-pthread"]);
    let rec = dir.join("rec");
    run_agent(&[exe.to_str().unwrap()], &rec, &[]);
    assert_checkpoints_match(&rec);
    // Nothing was dropped: every one of the 8 x 2000 mmaps is in the file.
    let dump = mapagent(&["dump", rec.to_str().unwrap(), "--json"]);
    let text = String::from_utf8(dump.stdout).unwrap();
    let mmaps = text
        .lines()
        .filter(|l| l.contains("\"type\":\"Mmap\""))
        .count();
    assert!(mmaps >= 16000, "{mmaps} mmap records");
    assert!(!text.contains("\"type\":\"Lost\""), "events were lost");
}

#[test]
fn fork_then_exec() {
    let dir = scratch("fork_exec");
    let exe = cc("fork_exec", &["fork_exec.c"], &[]);
    let rec = dir.join("rec");
    run_agent(&[exe.to_str().unwrap()], &rec, &[]);
    let cps = assert_checkpoints_match(&rec);
    let parent = cps
        .iter()
        .find(|c| c.label == "parent-before-fork")
        .unwrap()
        .pid;
    let child = cps.iter().find(|c| c.label == "fork-child").unwrap().pid;
    assert_eq!(
        cps.iter().find(|c| c.label == "exec-child").unwrap().pid,
        child
    );
    // Three files: the parent, the fork child, and the program it exec'd.
    let mut files: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want = vec![
        format!("{parent}.mrec"),
        format!("{child}.mrec"),
        format!("{child}.1.mrec"),
    ];
    want.sort();
    assert_eq!(files, want);
    // The child's file names its parent.
    let d = mapagent(&["dump", rec.join(format!("{child}.mrec")).to_str().unwrap()]);
    let first = String::from_utf8(d.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.contains(&format!("parent_pid={parent}")) && first.contains("origin=fork"),
        "{first}"
    );
}

#[test]
fn dlopen_keeps_the_callers_runpath_and_origin() {
    let base = build_dir().join("runpath");
    let sub = base.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    cc(
        "runpath/sub/libplug_rp.so",
        &["plug.c"],
        &["-shared", "-fPIC", "-DPLUG=plug_rp"],
    );
    let exe = cc(
        "runpath/runpath_main",
        &["runpath_main.c"],
        &["-ldl", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/sub"],
    );
    let plain = std::process::Command::new(&exe).output().unwrap();
    assert!(
        plain.status.success(),
        "without the agent: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let dir = scratch("runpath");
    let out = run_agent(&[exe.to_str().unwrap()], &dir.join("rec"), &[]);
    assert_eq!(out.stdout, plain.stdout);
    // The agent resolved the bare name through the caller's RUNPATH and said so.
    let d =
        String::from_utf8(mapagent(&["dump", dir.join("rec").to_str().unwrap()]).stdout).unwrap();
    assert!(
        d.lines().any(|l| l.contains("DLOPEN")
            && l.contains("filename=libplug_rp.so")
            && l.contains("sub/libplug_rp.so")),
        "{d}"
    );
}
