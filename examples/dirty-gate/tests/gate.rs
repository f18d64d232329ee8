//! The gate a library author adds to their CI: run a program that uses the library under
//! libmapagent.so and fail when the library has more private dirty pages than it should.
//!
//! `const_table_stays_shared` is the test to copy: it fails the day someone adds a pointer
//! to the table. `the_gate_names_the_table_that_gained_a_pointer` builds that mistake on
//! purpose and shows what the failure says.

use mapagent::check::{self, Limit};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two pages: the one holding .dynamic and the GOT, and the .data/.bss page. Everything the
/// loader writes in a small -fPIC library with no relocated data.
const MAX_DIRTY: u64 = 2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// This workspace's way of building the agent from source; a library's own CI would set
// MAPAGENT_LIB to an installed libmapagent.so instead.
#[path = "../../../collector/tests/common/agent_build.rs"]
mod agent_build;

fn target() -> PathBuf {
    agent_build::target_dir_of(&root())
}

/// libmapagent.so: $MAPAGENT_LIB, or built from this checkout once per test run.
fn agent() -> PathBuf {
    match std::env::var_os("MAPAGENT_LIB") {
        Some(p) => p.into(),
        None => agent_build::build_agent(&root()),
    }
}

/// Builds c/table.c as libtable.so (with `defines`) and c/user.c against it, in `dir`.
fn build(dir: &Path, defines: &[&str]) -> PathBuf {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    std::fs::create_dir_all(dir).unwrap();
    let lib = dir.join("libtable.so");
    let st = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(c.join("table.c"))
        .args(defines)
        .status()
        .unwrap();
    assert!(st.success());
    let exe = dir.join("user");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(c.join("user.c"))
        .arg(format!("-L{}", dir.display()))
        .arg("-ltable")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .status()
        .unwrap();
    assert!(st.success());
    exe
}

fn scratch(name: &str) -> PathBuf {
    let d = target().join("dirty-gate").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn gate(exe: &Path, records: &Path) -> check::Checked {
    let limits = [Limit {
        image: "libtable.so".into(),
        max_pages: MAX_DIRTY,
    }];
    check::run(&mut Command::new(exe), &agent(), records, &limits).expect("the check ran")
}

#[test]
fn const_table_stays_shared() {
    let d = scratch("clean");
    let exe = build(&d.join("build"), &[]);
    let checked = gate(&exe, &d.join("records"));
    assert!(checked.status.success());
    let failures: Vec<String> = checked.violations.iter().map(|v| v.to_string()).collect();
    assert!(
        failures.is_empty(),
        "libtable.so has too many private dirty pages:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_gate_names_the_table_that_gained_a_pointer() {
    let d = scratch("pointer");
    let exe = build(&d.join("build"), &["-DWITH_POINTER"]);
    let checked = gate(&exe, &d.join("records"));
    assert_eq!(checked.violations.len(), 1, "{:?}", checked.violations);
    let v = &checked.violations[0];
    assert!(v.dirty_pages >= MAX_DIRTY + 12, "{v}");
    // The first offender is the table, with one relocation per entry.
    let ops = &v.symbols[0];
    assert_eq!(ops.name, "ops", "{v}");
    assert_eq!(ops.section, ".data.rel.ro", "{v}");
    assert_eq!(ops.relocations, 2048, "{v}");
    assert_eq!(ops.relocation_types.get("RELATIVE"), Some(&2048), "{v}");
    assert!(ops.dirty_pages >= 12, "{v}");
    println!("what the gate reports:\n{v}");
}
