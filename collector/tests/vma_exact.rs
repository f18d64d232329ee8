//! Issue 9, fidelity: at every checkpoint of a program that does what address-space models
//! get wrong (holes, per-page protection flips, MAP_FIXED over part of a mapping, a refused
//! MAP_FIXED_NOREPLACE, mremap in three forms, a shared file mapping split by mprotect, malloc
//! through brk and glibc's internal mmap, thread stacks, a NODELETE library, a raw mmap
//! syscall, a file deleted while mapped), `mapagent maps --at T` is the kernel's
//! /proc/self/maps, line for line, uncoalesced.

mod common;
use common::*;

fn report(cs: &[Comparison]) -> String {
    cs.iter()
        .map(|c| {
            format!(
                "{}: files {}/{}, others {}/{}, marked {:?}, wrong {:?}, extra {:?}",
                c.label,
                c.file_equal,
                c.file_lines,
                c.other_equal,
                c.other_lines,
                c.marked,
                c.wrong,
                c.extra
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_checkpoint_line_for_line() {
    let dir = scratch("vma_exact");
    let exe = cc("vma_exact", &["vma_exact.c"], &["-ldl", "-lpthread"]);
    let rec = dir.join("rec");
    run_agent(&[exe.to_str().unwrap()], &rec, &[]);
    let cs = compare_checkpoints(&rec);
    assert_eq!(cs.len(), 14, "{}", report(&cs));
    let all: usize = cs.iter().map(|c| c.file_lines + c.other_lines).sum();
    let equal: usize = cs.iter().map(|c| c.file_equal + c.other_equal).sum();
    eprintln!("{}\nequal {equal} of {all} lines", report(&cs));
    for c in &cs {
        // Nothing is wrong without saying so: every difference is a line marked uncertain.
        assert!(c.wrong.is_empty() && c.extra.is_empty(), "{}", report(&cs));
        // A file mapping differs only where it was deleted while mapped (a name change no
        // call marks), and only inside the reconcile window that found it.
        assert!(
            c.file_equal + c.marked.iter().filter(|m| m.ends_with("(deleted)")).count()
                == c.file_lines,
            "{}",
            report(&cs)
        );
    }
    assert!(equal * 100 >= all * 97, "{equal} of {all}\n{}", report(&cs));
    // The kernel timeline was on, and said so.
    let maps = mapagent(&["maps", rec.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&maps.stdout);
    assert!(text.contains("kernel timeline: on"), "{text}");
}

#[test]
fn without_perf_events_the_file_and_the_views_say_so() {
    // perf_event_open refused by seccomp (EACCES), as container runtimes and sandboxes do.
    let dir = scratch("vma_exact_noperf");
    let exe = cc("vma_exact", &["vma_exact.c"], &["-ldl", "-lpthread"]);
    let jail = cc("no_perf_events", &["no_perf_events.c"], &[]);
    let rec = dir.join("rec");
    let o = std::process::Command::new(&jail)
        .arg(&exe)
        .env("JAIL_PRELOAD", agent())
        .env("MAPAGENT_DIR", &rec)
        .env("CHECKPOINT_FILE", rec.with_extension("cp"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dumps = record_dumps(&rec);
    assert_eq!(dumps.len(), 1, "one process (the jail execs it)");
    let kt: Vec<&serde_json::Value> = dumps[0]
        .1
        .iter()
        .filter(|r| r["type"] == "KernelTimeline")
        .collect();
    assert_eq!(kt.len(), 1, "{kt:?}");
    assert_eq!(kt[0]["state"], 0, "off: {:?}", kt[0]);
    assert_eq!(kt[0]["errno"], 13, "EACCES: {:?}", kt[0]);
    for view in ["maps", "images"] {
        let o = mapagent(&[view, rec.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(
                "kernel timeline: off: perf_event_open on the process failed (Permission denied"
            ),
            "{view}: {text}"
        );
    }
    // Without the kernel's reports the hooks and reconciles still place every file mapping
    // exactly (or mark it); what only the kernel sees at once (brk, glibc's own mmaps) is
    // either right or marked uncertain, never silently wrong.
    let cs = compare_checkpoints(&rec);
    eprintln!("{}", report(&cs));
    for c in &cs {
        assert!(c.wrong.is_empty() && c.extra.is_empty(), "{}", report(&cs));
    }
}
