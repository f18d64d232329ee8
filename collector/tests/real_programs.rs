//! Must show 3 of the agent issue: real programs behave the same with and without the agent
//! (exit status and output), and the agent did record them.

mod common;
use common::*;
use std::process::{Command, Output};

fn run(
    argv: &[&str],
    stdin: Option<&str>,
    env: &[(&str, String)],
    cwd: &std::path::Path,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut sin = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        sin.write_all(s.as_bytes()).unwrap();
    }
    drop(sin);
    child.wait_with_output().unwrap()
}

/// Runs with and without the agent (and `extra_preload` before it), compares, returns the
/// record directory.
fn same_with_agent(
    name: &str,
    argv: &[&str],
    stdin: Option<&str>,
    extra_preload: Option<&str>,
) -> std::path::PathBuf {
    let dir = scratch(name);
    let plain_env: Vec<(&str, String)> = extra_preload
        .map(|p| vec![("LD_PRELOAD", p.to_string())])
        .unwrap_or_default();
    let plain = run(argv, stdin, &plain_env, &dir);
    let rec = dir.join("rec");
    let preload = match extra_preload {
        Some(p) => format!("{p}:{}", agent().display()),
        None => agent().display().to_string(),
    };
    let with = run(
        argv,
        stdin,
        &[
            ("LD_PRELOAD", preload),
            ("MAPAGENT_DIR", rec.display().to_string()),
        ],
        &dir,
    );
    assert_eq!(
        with.status.code(),
        plain.status.code(),
        "{name}: exit status differs"
    );
    assert_eq!(
        String::from_utf8_lossy(&with.stdout),
        String::from_utf8_lossy(&plain.stdout),
        "{name}: stdout differs"
    );
    assert_eq!(
        String::from_utf8_lossy(&with.stderr),
        String::from_utf8_lossy(&plain.stderr),
        "{name}: stderr differs"
    );
    assert!(
        plain.status.success(),
        "{name} failed even without the agent: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    // A process killed at the end (gdb kills its inferior) is ended by its collector a
    // moment after it is gone: wait for every file to end (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !record_dumps(&rec).iter().all(|(_, r)| {
            r.last()
                .is_some_and(|l| l["type"] == "Exit" || r.iter().any(|x| x["type"] == "Exec"))
        })
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Recorded, and every file reads back whole.
    let files = std::fs::read_dir(&rec)
        .unwrap_or_else(|_| panic!("{name}: no records"))
        .count();
    assert!(files >= 1, "{name}: no record files");
    let o = mapagent(&["maps", rec.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{name}: mapagent maps failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.contains("no exit record"),
        "{name}: a process ended without an exit record:\n{text}"
    );
    let o = mapagent(&["images", rec.to_str().unwrap()]);
    assert!(o.status.success(), "{name}: mapagent images failed");
    // Every file non-empty, whole, ended, and nothing lost.
    for (f, recs) in record_dumps(&rec) {
        assert!(!recs.is_empty(), "{name}: {} is empty", f.display());
        assert_eq!(recs[0]["type"], "Process", "{name}: {}", f.display());
        let last = recs.last().unwrap();
        assert!(
            last["type"] == "Exit" || recs.iter().any(|r| r["type"] == "Exec"),
            "{name}: {} does not end with Exit: {last}",
            f.display()
        );
        let lost: Vec<_> = recs
            .iter()
            .filter(|r| r["type"] == "Lost" || (r["type"] == "KernelTimeline" && r["state"] == 2))
            .collect();
        assert!(
            lost.is_empty(),
            "{name}: {} lost events: {lost:?}",
            f.display()
        );
    }
    rec
}

const PY: &str = "import ssl, sqlite3, json, ctypes; print(json.dumps({'ssl': ssl.OPENSSL_VERSION_INFO[0] > 0, 'sqlite': sqlite3.sqlite_version_info[0], 'sizeof_void_p': ctypes.sizeof(ctypes.c_void_p)}))";

#[test]
fn python_imports_ssl_sqlite3_json_ctypes() {
    let rec = same_with_agent("python3", &["/usr/bin/python3", "-c", PY], None, None);
    // The extension modules python dlopen'ed are among the images.
    let images = mapagent_json(&["images", rec.to_str().unwrap(), "--json"]);
    let paths: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["path"].as_str())
        .collect();
    for m in ["_ssl", "_sqlite3", "_ctypes"] {
        assert!(
            paths.iter().any(|p| p.contains(m)),
            "{m} not among images: {paths:?}"
        );
    }
}

#[test]
fn perl_one_liner() {
    same_with_agent("perl", &["/usr/bin/perl", "-MPOSIX", "-e", "print join(',', map { floor($_ * 2.5) } 1..10), qq{\\n}; my %h = map { $_ => $_**2 } 1..1000; print scalar(keys %h), qq{\\n}"], None, None);
}

#[test]
fn sqlite3_shell() {
    let script = "create table t(a integer primary key, b text);\n\
                  with recursive c(x) as (select 1 union all select x+1 from c where x < 5000) insert into t select x, hex((x * 2654435761) % 1000003) from c;\n\
                  select count(*), sum(a) from t;\n\
                  create index tb on t(b);\n\
                  select count(*) from t where b > '8';\n";
    let out = same_with_agent(
        "sqlite3",
        &["/usr/bin/sqlite3", ":memory:"],
        Some(script),
        None,
    );
    assert!(out.exists());
}

#[test]
fn the_c_compiler_building_a_file() {
    let dir = scratch("cc-src");
    let src = dir.join("hello.c");
    std::fs::write(&src, "#include <stdio.h>\n#include <math.h>\nint main(void) { printf(\"%.3f\\n\", sqrt(2.0)); return 0; }\n").unwrap();
    let obj = dir.join("hello");
    let rec = same_with_agent(
        "cc",
        &[
            "cc",
            "-O2",
            "-o",
            obj.to_str().unwrap(),
            src.to_str().unwrap(),
            "-lm",
        ],
        None,
        None,
    );
    // cc drives cc1, as and collect2/ld as child processes: each has its own file.
    let n = std::fs::read_dir(&rec).unwrap().count();
    assert!(
        n >= 3,
        "expected the compiler's children to be recorded too, got {n} files"
    );
    let o = Command::new(&obj).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1.414\n");
}

#[test]
fn python_with_jemalloc_preloaded_too() {
    let jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    assert!(
        std::path::Path::new(jemalloc).exists(),
        "install Debian's libjemalloc2 (.ci/run does)"
    );
    let code = format!("{PY}; import threading; b=[bytearray(1<<20) for _ in range(64)]; t=[threading.Thread(target=lambda: [bytes(1<<16) for _ in range(2000)]) for _ in range(4)]; [x.start() for x in t]; [x.join() for x in t]; print(len(b))");
    let rec = same_with_agent(
        "python3-jemalloc",
        &["/usr/bin/python3", "-c", &code],
        None,
        Some(jemalloc),
    );
    // jemalloc calls the public mmap: the agent saw its mappings as events.
    let d = mapagent(&["dump", rec.to_str().unwrap(), "--json"]);
    let mmaps = String::from_utf8_lossy(&d.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"Mmap\""))
        .count();
    assert!(mmaps > 10, "only {mmaps} mmap events under jemalloc");
}

#[test]
fn node_with_worker_threads_and_a_child_process() {
    let js = "const { Worker } = require('worker_threads'); const cp = require('child_process'); \
              const w = new Worker('const { parentPort } = require(\"worker_threads\"); let s = 0; for (let i = 0; i < 1e6; i++) s += i; parentPort.postMessage(s);', { eval: true }); \
              w.on('message', (s) => { console.log('worker', s); console.log(cp.execFileSync('/bin/echo', ['child']).toString().trim()); });";
    let rec = same_with_agent("node", &["node", "-e", js], None, None);
    let files = std::fs::read_dir(&rec).unwrap().count();
    assert!(files >= 2, "node and its /bin/echo child: {files} files");
}

#[test]
fn java_version() {
    same_with_agent("java", &["java", "-version"], None, None);
}

#[test]
fn git_init_add_commit_gc_of_500_files() {
    let script = "set -e; rm -rf r; git init -q r; cd r; for i in $(seq 500); do echo $i > f$i; done; \
                  git add .; git -c user.name=t -c user.email=t@example.com commit -qm x; git gc -q; \
                  git ls-files | wc -l; git rev-list --count HEAD; git count-objects -v | grep -E '^(count|in-pack|packs):'";
    same_with_agent("git", &["bash", "-c", script], None, None);
}

#[test]
fn make_j2_of_a_small_c_project() {
    let dir = scratch("make-src");
    for i in 0..6 {
        std::fs::write(
            dir.join(format!("m{i}.c")),
            format!("int f{i}(int x) {{ return x * {i} + 1; }}\n"),
        )
        .unwrap();
    }
    let calls: String = (0..6).map(|i| format!("f{i}(2) + ")).collect();
    let decls: String = (0..6).map(|i| format!("int f{i}(int);")).collect();
    std::fs::write(
        dir.join("main.c"),
        format!("#include <stdio.h>\n{decls}\nint main(void) {{ printf(\"%d\\n\", {calls}0); return 0; }}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "OBJS = main.o m0.o m1.o m2.o m3.o m4.o m5.o\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%.o: %.c\n\t$(CC) -O2 -c $<\nclean:\n\trm -f prog *.o\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let script = format!("make -s -C {d} clean && make -s -j2 -C {d} && {d}/prog");
    let rec = same_with_agent("make", &["bash", "-c", &script], None, None);
    let files = std::fs::read_dir(&rec).unwrap().count();
    assert!(files >= 8, "make, its shells and compilers: {files} files");
}

#[test]
fn gdb_batch_running_a_program() {
    let exe = cc("visible", &["visible.c"], &["-ldl"]);
    same_with_agent(
        "gdb",
        &[
            "gdb",
            "-q",
            "-nx",
            "-batch",
            "-ex",
            "set print inferior-events off",
            "-ex",
            "set print thread-events off",
            "-ex",
            "break main",
            "-ex",
            "run",
            "-ex",
            "next 6",
            "-ex",
            "info inferiors 2",
            exe.to_str().unwrap(),
        ],
        None,
        None,
    );
}

#[test]
fn bash_loop_of_200_forks_and_execs() {
    let rec = same_with_agent(
        "bash-loop",
        &[
            "bash",
            "-c",
            "for i in $(seq 200); do /bin/true; done; echo done",
        ],
        None,
        None,
    );
    let files = std::fs::read_dir(&rec).unwrap().count();
    assert!(files >= 201, "bash and its 200 children: {files} files");
}
