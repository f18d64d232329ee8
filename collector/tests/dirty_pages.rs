//! The dirty-pages issue: which symbols sit on private dirty pages and the relocations that
//! dirtied them, checked against the blog's reproduction, the kernel's smaps, libmapagent.so
//! itself and a real large library.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn symbol<'v>(image: &'v Value, name: &str) -> &'v Value {
    image["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no symbol {name} in {image:#}"))
}

fn image<'v>(images: &'v Value, part: &str) -> &'v Value {
    images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"].as_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("no image {part}"))
}

fn addrs(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn blog_reproduction_names_the_struct_its_relocation_and_its_page() {
    let dir = scratch("dirty-blog");
    let (_, main) = blog_programs();
    let rec = dir.join("rec");
    run_agent(&[main.to_str().unwrap()], &rec, &[]);
    let v = mapagent_json(&[
        "dirty",
        rec.to_str().unwrap(),
        "--image",
        "libdirty_lib",
        "--all",
        "--json",
    ]);
    let lib = image(&v, "libdirty_lib.so");
    assert!(lib["dirty_pages"].as_u64().unwrap() >= 1, "{lib:#}");
    let page = 4096u64;

    // The const struct with a pointer: in .data.rel.ro, one relocation, and the page that
    // relocation writes is dirty; of its 1001 pages only that one and (at most) the last,
    // shared with the sections after it, are dirty.
    let rw = symbol(lib, "rw");
    assert_eq!(rw["section"], ".data.rel.ro", "{rw:#}");
    assert_eq!(rw["relocations"], 1, "{rw:#}");
    assert_eq!(rw["size"], 4096 * 1000 + 8);
    let rel_pages = addrs(&rw["relocation_pages"]);
    let dirty = addrs(&rw["dirty_page_addrs"]);
    assert_eq!(rel_pages.len(), 1);
    assert!(
        dirty.contains(&rel_pages[0]),
        "the relocated page is dirty: {rw:#}"
    );
    let start = rw["addr"].as_u64().unwrap();
    let last = (start + rw["size"].as_u64().unwrap() - 1) & !(page - 1);
    for d in &dirty {
        assert!(
            *d == rel_pages[0] || *d == last,
            "page {d:#x} of rw is dirty but holds no relocation of it: {rw:#}"
        );
    }
    assert!(
        rw["verdict"].as_str().unwrap().starts_with(
            "const data dirtied by 1 relocation: it would stay shared if it held no pointers"
        ),
        "{rw:#}"
    );

    // The const pointer to a string: .data.rel.ro, one RELATIVE relocation, its page dirty.
    let p = symbol(lib, "p");
    assert_eq!(p["section"], ".data.rel.ro");
    assert_eq!(p["relocations"], 1);
    assert_eq!(p["relocation_types"]["RELATIVE"], 1);
    assert_eq!(p["dirty_pages"], 1, "{p:#}");
    assert_eq!(addrs(&p["dirty_page_addrs"]), addrs(&p["relocation_pages"]));

    // The const array without pointers: .rodata, clean.
    let ro = symbol(lib, "ro");
    assert_eq!(ro["section"], ".rodata");
    assert_eq!(ro["dirty_pages"], 0);
    assert_eq!(ro["relocations"], 0);
    assert!(ro["pages"].as_u64().unwrap() >= 1000);

    // The text report says the same in words.
    let o = mapagent(&["dirty", rec.to_str().unwrap(), "--image", "libdirty_lib"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.lines()
            .any(|l| l.contains(" rw: const data dirtied by 1 relocation")
                && l.contains(".data.rel.ro")),
        "{text}"
    );
}

#[test]
fn copied_on_write_pages_equal_smaps_anonymous_for_every_file_mapping() {
    let dir = scratch("dirty-smaps");
    let (_, main) = blog_programs();
    let rec = dir.join("rec");
    let smaps = dir.join("smaps.txt");
    // The program dumps smaps from an atexit handler; the agent's exit snapshot comes after.
    run_agent(
        &[main.to_str().unwrap(), smaps.to_str().unwrap()],
        &rec,
        &[],
    );
    let loaded = mapagent::select::Loaded::open(&rec).unwrap();
    let parsed = loaded.parse().unwrap();
    let all = mapagent::select::timelines(&loaded, &parsed);
    let t = &all[0];
    let snap =
        mapagent::snapshot::choose(t, &mapagent::snapshot::Which::Label("exit".into())).unwrap();
    let pm = mapagent::snapshot::PageMap::load(t, snap);
    let expected = smaps_anonymous(&smaps);
    let mut checked = std::collections::BTreeSet::new();
    for (start, end, name, anon_kb) in &expected {
        let region = pm
            .regions()
            .iter()
            .find(|p| p.start == *start && p.end == *end)
            .unwrap_or_else(|| panic!("no snapshot of {start:#x}-{end:#x} {name}"));
        let states = pm.states(*start, *end);
        let cow = states
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                pm.classify(start + *i as u64 * pm.page, **s) == mapagent::snapshot::PageKind::Cow
            })
            .count() as u64;
        assert_eq!(
            cow * pm.page / 1024,
            *anon_kb,
            "{name} {start:#x}-{end:#x}: snapshot says {cow} copied-on-write pages, smaps Anonymous {anon_kb} kB (method {})",
            region.method
        );
        checked.insert(name.rsplit('/').next().unwrap().to_string());
    }
    for want in [
        "libc.so.6",
        "libdirty_lib.so",
        "dirty_main",
        "ld-linux-x86-64.so.2",
        "libmapagent.so",
    ] {
        assert!(checked.contains(want), "{want} not among {checked:?}");
    }
}

#[test]
fn libmapagent_itself_has_at_most_four_private_dirty_pages() {
    let dir = scratch("dirty-self");
    let rec = dir.join("rec");
    run_agent(&["/bin/true"], &rec, &[]);
    let v = mapagent_json(&[
        "dirty",
        rec.to_str().unwrap(),
        "--image",
        "libmapagent.so",
        "--json",
    ]);
    let me = image(&v, "libmapagent.so");
    let n = me["dirty_pages"].as_u64().unwrap();
    assert!(
        n <= 4,
        "libmapagent.so has {n} private dirty pages; the biggest causes:\n{:#}",
        me["symbols"]
    );
}

#[test]
fn rustc_driver_relro_attributed_to_vtables() {
    let Ok(o) = std::process::Command::new("rustc")
        .arg("--print")
        .arg("sysroot")
        .output()
    else {
        panic!("rustc is needed (it builds this project)");
    };
    let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let rustc = Path::new(&sysroot).join("bin/rustc");
    let dir = scratch("dirty-rustc");
    let rec = dir.join("rec");
    run_agent(&[rustc.to_str().unwrap(), "--version"], &rec, &[]);
    let v = mapagent_json(&[
        "dirty",
        rec.to_str().unwrap(),
        "--image",
        "librustc_driver",
        "--json",
    ]);
    let drv = image(&v, "librustc_driver");
    let relro = drv["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == ".data.rel.ro")
        .unwrap();
    assert!(relro["dirty_pages"].as_u64().unwrap() > 100, "{relro:#}");
    let syms = drv["symbols"].as_array().unwrap();
    let vtables: Vec<&Value> = syms
        .iter()
        .filter(|s| {
            s["section"] == ".data.rel.ro" && s["name"].as_str().unwrap().starts_with("vtable for ")
        })
        .filter(|s| s["dirty_pages"].as_u64().unwrap() > 0)
        .collect();
    assert!(
        vtables.len() > 100,
        "only {} dirty vtables named",
        vtables.len()
    );
    // Most of the dirty bytes of .data.rel.ro are named (a symbol, a vtable, panic locations).
    let named: u64 = syms
        .iter()
        .filter(|s| s["section"] == ".data.rel.ro" && s["kind"] != "section")
        .map(|s| s["dirty_bytes"].as_u64().unwrap())
        .sum();
    let unnamed: u64 = syms
        .iter()
        .filter(|s| s["section"] == ".data.rel.ro" && s["kind"] == "section")
        .map(|s| s["dirty_bytes"].as_u64().unwrap())
        .sum();
    assert!(named > unnamed, "named {named} bytes, unnamed {unnamed}");
}
