//! `mapagent shm` against the kernel's /proc/sysvipc/shm on segments made here (one owned by
//! another uid with mode 0600, one attached, one marked for destruction), and the agent's
//! shmat/shmdt records of a real program.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

/// Segments made for the test, removed however it ends.
struct Segments(Vec<i32>);
impl Drop for Segments {
    fn drop(&mut self) {
        for &id in &self.0 {
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

fn create(key: i32, size: usize, mode: i32) -> i32 {
    let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | mode) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    id
}

/// /proc/sysvipc/shm by shmid: (key, size, nattch, uid, perms).
fn proc_shm() -> HashMap<i64, (i64, u64, u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            (
                n(1),
                (
                    n(0),
                    n(3) as u64,
                    n(6) as u64,
                    n(7) as u64,
                    u64::from_str_radix(f[2], 8).unwrap(),
                ),
            )
        })
        .collect()
}

fn by_id(v: &Value) -> HashMap<i64, Value> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["shmid"].as_i64().unwrap(), s.clone()))
        .collect()
}

#[test]
fn shm_json_agrees_with_proc_sysvipc() {
    let key = 0x6d61_0000 | (std::process::id() as i32 & 0xffff);
    let other = create(key, 3 * 4096 + 100, 0o600);
    let attached = create(libc::IPC_PRIVATE, 4096, 0o640);
    let doomed = create(libc::IPC_PRIVATE, 8192, 0o600);
    let _guard = Segments(vec![other, attached, doomed]);
    // Give `other` to another user, keeping mode 0600: only SHM_STAT_ANY (or root) sees it.
    unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        assert_eq!(libc::shmctl(other, libc::IPC_STAT, &mut ds), 0);
        ds.shm_perm.uid = 65534;
        ds.shm_perm.gid = 65534;
        assert_eq!(libc::shmctl(other, libc::IPC_SET, &mut ds), 0);
    }
    let a = unsafe { libc::shmat(attached, std::ptr::null(), 0) };
    let d = unsafe { libc::shmat(doomed, std::ptr::null(), 0) };
    assert!(a as isize != -1 && d as isize != -1);
    unsafe { libc::shmctl(doomed, libc::IPC_RMID, std::ptr::null_mut()) };

    let v = mapagent_json(&["shm", "--json"]);
    let proc = proc_shm();
    let got = by_id(&v);
    for id in [other, attached, doomed] {
        let s = &got[&(id as i64)];
        let (pkey, size, nattch, uid, perms) = proc[&(id as i64)];
        assert_eq!(s["key"].as_i64().unwrap(), pkey, "{s}");
        assert_eq!(s["size"].as_u64().unwrap(), size, "{s}");
        assert_eq!(s["nattch"].as_u64().unwrap(), nattch, "{s}");
        assert_eq!(s["uid"].as_u64().unwrap(), uid, "{s}");
        assert_eq!(s["mode"].as_u64().unwrap(), perms, "{s}");
    }
    let o = &got[&(other as i64)];
    assert_eq!(
        (o["uid"].as_u64(), o["mode"].as_u64()),
        (Some(65534), Some(0o600))
    );
    assert_eq!(o["key"].as_i64().unwrap(), key as i64);
    assert_eq!(o["size"], 3 * 4096 + 100);
    assert_eq!(got[&(attached as i64)]["nattch"], 1);
    assert_eq!(got[&(attached as i64)]["lpid"], std::process::id());
    assert_eq!(got[&(doomed as i64)]["dest"], true);
    assert_eq!(got[&(doomed as i64)]["key"], 0);

    // An unprivileged user sees root's 0600 segments too (SHM_STAT_ANY), with the same table.
    let o = Command::new("setpriv")
        .args(["--reuid=65533", "--regid=65533", "--clear-groups"])
        .arg(mapagent_bin())
        .args(["shm", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let nobody = by_id(&serde_json::from_slice(&o.stdout).unwrap());
    for id in [other, attached, doomed] {
        assert_eq!(nobody[&(id as i64)]["size"], got[&(id as i64)]["size"]);
    }
    let text = mapagent(&["shm"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{key:#010x}")) && l.contains("rw-------")),
        "{text}"
    );
    unsafe {
        libc::shmdt(a);
        libc::shmdt(d);
    }
}

#[test]
fn recorded_shmat_and_shmdt() {
    let dir = scratch("shm-record");
    let rec = dir.join("rec");
    let exe = cc("shm_attach", &["shm_attach.c"], &[]);
    let o = run_agent(&[exe.to_str().unwrap()], &rec, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    let id: i64 = f[0].parse().unwrap();
    let first = u64::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
    let second = u64::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
    let v = mapagent_json(&["shm", "--json", "--record", rec.to_str().unwrap()]);
    let calls: Vec<(String, Option<i64>, u64)> = v["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["call"].as_str().unwrap().to_string(),
                a["shmid"].as_i64(),
                a["addr"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("shmat".to_string(), Some(id), first),
            ("shmat".to_string(), Some(id), second),
            ("shmdt".to_string(), None, second),
        ]
    );
    let sizes: Vec<u64> = v["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["size"].as_u64())
        .collect();
    assert_eq!(sizes, [8192, 8192]);
    // The address space at exit holds the attachment that was not detached.
    let maps = mapagent_json(&["maps", rec.to_str().unwrap(), "--json"]);
    let m = mapping_at(&maps, first).expect("the first attachment in maps");
    assert!(m["path"].as_str().unwrap().starts_with("/SYSV"), "{m}");
    assert!(mapping_at(&maps, second).is_none());
}
