//! The agent keeps no thread and no descriptor in the application: the collector is a
//! process of its own. Programs that end in the ways an in-process thread disturbs
//! (pthread_exit from main, fork from a thread, main returning while a thread works) exit
//! with their own status, promptly, and their records are complete.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn program() -> std::path::PathBuf {
    cc("thread_exits", &["thread_exits.c"], &["-pthread"])
}

fn run_bounded(cmd: Command, what: &str) -> Output {
    common::run_bounded(cmd, what, 30).1
}

fn preloaded(mode: &str, rec: &Path) -> Command {
    let mut c = Command::new(program());
    c.arg(mode)
        .env("LD_PRELOAD", agent())
        .env("MAPAGENT_DIR", rec);
    c
}

fn under_run(mode: &str, rec: &Path) -> Command {
    let mut c = Command::new(mapagent_bin());
    c.args(["run", "-o", rec.to_str().unwrap(), "--"])
        .arg(program())
        .arg(mode)
        .env("MAPAGENT_LIB", agent());
    c
}

/// Every record in `rec` as (file stem, its JSON records).
fn records(rec: &Path) -> Vec<(String, Vec<serde_json::Value>)> {
    record_dumps(rec)
        .into_iter()
        .map(|(f, v)| (f.file_stem().unwrap().to_string_lossy().into_owned(), v))
        .collect()
}

/// The Exit record ending the record (how, code).
fn ending(recs: &[serde_json::Value]) -> (u64, i64) {
    let last = recs.last().expect("an empty record");
    assert_eq!(
        last["type"], "Exit",
        "the record ends with its Exit: {last}"
    );
    (
        last["how"].as_u64().unwrap(),
        last["code"].as_i64().unwrap(),
    )
}

fn mmaps(recs: &[serde_json::Value]) -> usize {
    recs.iter().filter(|r| r["type"] == "Mmap").count()
}

const EXIT: u64 = 0; // exit_how::EXIT

#[test]
fn the_program_sees_only_its_own_threads_and_descriptors() {
    let plain = run_bounded(
        {
            let mut c = Command::new(program());
            c.arg("tasks");
            c
        },
        "plain",
    );
    let plain_out = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(plain_out.starts_with("tasks=2 "), "{plain_out}");
    for (how, cmd) in [
        (
            "LD_PRELOAD",
            preloaded("tasks", &scratch("tasks-preload").join("rec")),
        ),
        (
            "mapagent run",
            under_run("tasks", &scratch("tasks-run").join("rec")),
        ),
    ] {
        let o = run_bounded(cmd, how);
        assert!(
            o.status.success(),
            "{how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // The same two tasks and the same descriptors as without the agent.
        assert_eq!(String::from_utf8_lossy(&o.stdout), plain_out, "{how}");
    }
}

#[test]
fn main_calling_pthread_exit_ends_the_process() {
    for (how, rec, cmd) in [
        (
            "LD_PRELOAD",
            "pexit-preload",
            preloaded as fn(&str, &Path) -> Command,
        ),
        ("mapagent run", "pexit-run", under_run),
    ] {
        let rec = scratch(rec).join("rec");
        let o = run_bounded(cmd("pthread-exit", &rec), how);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r = records(&rec);
        assert_eq!(r.len(), 1, "{how}");
        assert_eq!(ending(&r[0].1), (EXIT, 0), "{how}");
        assert!(mmaps(&r[0].1) >= 10, "{how}: the 10 mmaps are recorded");
    }
}

#[test]
fn the_last_thread_ends_the_process_after_main_pthread_exits() {
    let rec = scratch("last-thread").join("rec");
    let o = run_bounded(under_run("last-thread", &rec), "last-thread");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = records(&rec);
    assert_eq!(r.len(), 1);
    assert_eq!(ending(&r[0].1), (EXIT, 0));
    // Every one of the other thread's 1000 mmaps, made after main was gone.
    assert!(mmaps(&r[0].1) >= 1000, "{}", mmaps(&r[0].1));
}

#[test]
fn main_returning_while_a_thread_works_keeps_its_status() {
    let rec = scratch("main-returns").join("rec");
    let o = run_bounded(preloaded("main-returns", &rec), "main-returns");
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = records(&rec);
    assert_eq!(r.len(), 1);
    assert_eq!(ending(&r[0].1), (EXIT, 5));
}

#[test]
fn fork_from_a_thread_records_both_processes() {
    let rec = scratch("fork-thread").join("rec");
    let o = run_bounded(under_run("fork-thread", &rec), "fork-thread");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("child=3"));
    let r = records(&rec);
    assert_eq!(r.len(), 2, "the parent and the fork child");
    let endings: Vec<(u64, i64)> = r.iter().map(|(_, v)| ending(v)).collect();
    assert!(endings.contains(&(EXIT, 0)), "{endings:?}");
    // The child ends with _exit(3).
    assert!(endings.contains(&(1, 3)), "{endings:?}");
    let child = r.iter().find(|(_, v)| ending(v) == (1, 3)).unwrap();
    assert!(
        mmaps(&child.1) >= 10,
        "the child's mmaps are in its own record"
    );
}
