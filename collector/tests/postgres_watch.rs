//! The real-world case: a PostgreSQL server under the agent (a backend forked per connection,
//! signals everywhere) with debug_query_string watched, pgbench under
//! `perf record -a -k CLOCK_MONOTONIC`, and the queries current during each backend's samples.
//! scripts/postgres-watch.sh is the same for people; this is its check.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pg_bin() -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (Debian package postgresql-15)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    v.sort();
    v.pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

/// Runs as the postgres user (the server refuses root), with `env` set by env(1): runuser
/// does not pass LD_PRELOAD through.
fn as_pg(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--", "env"]);
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.args(args).output().unwrap()
}

struct Server<'a>(PathBuf, &'a Path);
impl Drop for Server<'_> {
    fn drop(&mut self) {
        let ctl = self.0.join("pg_ctl");
        as_pg(
            &[
                ctl.to_str().unwrap(),
                "-D",
                self.1.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            &[],
        );
    }
}

#[test]
fn pgbench_backends_show_the_queries_they_ran() {
    let dir = scratch("postgres");
    let bin = pg_bin();
    let b = |n: &str| bin.join(n).to_str().unwrap().to_string();
    // A directory the postgres user can write: data, socket, records.
    let w = PathBuf::from(format!("/tmp/mapagent-pg-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(&w).unwrap();
    assert!(Command::new("chown")
        .args(["postgres:", w.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let data = w.join("data");
    let rec = w.join("rec");
    let ws = w.to_str().unwrap();
    let o = as_pg(
        &[
            &b("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let agent = agent();
    let opts = format!("-k {ws} -c listen_addresses=''");
    let o = as_pg(
        &[
            &b("pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-l",
            &format!("{ws}/server.log"),
            "-w",
            "-o",
            &opts,
            "start",
        ],
        &[
            ("LD_PRELOAD", agent.to_str().unwrap()),
            ("MAPAGENT_DIR", rec.to_str().unwrap()),
            ("MAPAGENT_WATCH", "debug_query_string:str"),
            ("MAPAGENT_WATCH_MS", "1"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let server = Server(bin.clone(), &data);
    let o = as_pg(
        &[&b("pgbench"), "-h", ws, "-q", "-i", "-s", "2", "postgres"],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let perf_data = dir.join("perf.data");
    let o = Command::new("perf")
        .args([
            "record",
            "-q",
            "-a",
            "-k",
            "CLOCK_MONOTONIC",
            "-F",
            "499",
            "-o",
        ])
        .arg(&perf_data)
        .args([
            "--",
            "runuser",
            "-u",
            "postgres",
            "--",
            &b("pgbench"),
            "-h",
            ws,
            "-c",
            "3",
            "-j",
            "1",
            "-T",
            "3",
            "postgres",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("number of failed transactions: 0"), "{out}");
    drop(server);
    let log = std::fs::read_to_string(w.join("server.log")).unwrap();
    assert!(
        !log.contains("PANIC") && !log.contains("terminated by signal"),
        "{log}"
    );

    let v = mapagent_json(&[
        "watch",
        rec.to_str().unwrap(),
        "--perf",
        perf_data.to_str().unwrap(),
        "--normalize",
        "--json",
    ]);
    // The three pgbench backends: each ran the TPC-B-like transaction.
    let busy: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["samples"].as_u64().unwrap() >= 50)
        .filter(|c| {
            c["values"]["debug_query_string"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| {
                    x[0].as_str().unwrap().starts_with(
                        "UPDATE pgbench_accounts SET abalance = abalance + N WHERE aid = N",
                    )
                })
        })
        .collect();
    assert!(busy.len() >= 3, "{v:#}");
    for c in &busy {
        let shapes: Vec<&str> = c["values"]["debug_query_string"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[0].as_str().unwrap())
            .collect();
        for q in [
            "UPDATE pgbench_tellers SET tbalance = tbalance + N WHERE tid = N;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = N;",
        ] {
            assert!(shapes.contains(&q), "{q} not in {shapes:?}");
        }
    }
    // A process file per backend (fork children of the postmaster) plus the server's own.
    let files = std::fs::read_dir(&rec).unwrap().count();
    assert!(files >= 8, "{files} record files");
    let _ = std::fs::remove_dir_all(&w);
}
