//! `mapagent dump`: every record, one line each, as `perf script -D` shows perf.data.

use crate::error::Result;
use crate::input::Recording;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

const HEX_KEYS: &[&str] = &[
    "addr",
    "len",
    "offset",
    "result",
    "old_addr",
    "old_len",
    "new_len",
    "new_addr",
    "bias",
    "id",
    "handle",
    "thread",
    "start",
    "end",
    "at_phdr",
    "at_entry",
    "at_base",
    "at_sysinfo_ehdr",
    "vaddr",
    "memsz",
    "filesz",
    "align",
    "flags",
    "size",
];

fn upper_snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    s
}

/// Enumerated fields by name, as perf -D names record types.
fn named(kind: &str, key: &str, v: &Value) -> Option<String> {
    use mapagent_record::records::{exit_how, image_cause, trigger};
    let n = v.as_u64()?;
    Some(match (kind, key) {
        ("Reconcile", "trigger") => trigger::name(n as u8).to_string(),
        ("Image" | "ImageUnload", "cause") => match n as u8 {
            image_cause::STARTUP => "startup".into(),
            image_cause::DLOPEN => "dlopen".into(),
            image_cause::RESCAN => "rescan".into(),
            image_cause::DLCLOSE => "dlclose".into(),
            _ => return None,
        },
        ("Exit", "how") => match n as u8 {
            exit_how::EXIT => "exit".into(),
            exit_how::UNDERSCORE_EXIT => "_exit".into(),
            exit_how::SIGNAL => "signal".into(),
            exit_how::EXEC => "exec".into(),
            exit_how::DISABLED => "disabled".into(),
            exit_how::VANISHED => "vanished".into(),
            _ => return None,
        },
        ("Process", "origin") => {
            if n == 1 {
                "fork".into()
            } else {
                "start".into()
            }
        }
        ("Mmap" | "Mprotect", "prot") => {
            mapagent_record::region::perms_string(n as u8 & 7, false)[..3].to_string()
        }
        ("Change", "op") => {
            if n == 1 {
                "add".into()
            } else {
                "remove".into()
            }
        }
        _ => return None,
    })
}

fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if HEX_KEYS.contains(&key) => match n.as_u64() {
            Some(u) => format!("{u:#x}"),
            None => n.to_string(),
        },
        Value::String(s) => {
            if s.is_empty() || s.contains(' ') || s.contains('=') {
                format!("{s:?}")
            } else {
                s.clone()
            }
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(|x| scalar(key, x)).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(o) => {
            let parts: Vec<String> = o
                .iter()
                .map(|(k, x)| {
                    format!(
                        "{k}={}",
                        named("Change", k, x).unwrap_or_else(|| scalar(k, x))
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(" "))
        }
        other => other.to_string(),
    }
}

fn ts_text(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Prints one file's records; returns true if the file was cut short.
pub fn dump_file(r: &Recording, json: bool, out: &mut impl Write) -> Result<bool> {
    let parsed = r.parse()?;
    let io = |e: std::io::Error| crate::Error::failure(format!("writing output: {e}"));
    for item in &parsed.items {
        let rec = item.rec();
        let mut v = serde_json::to_value(&rec).map_err(|e| crate::Error::failure(e.to_string()))?;
        if json {
            if let Value::Object(o) = &mut v {
                o.insert("offset".into(), item.offset.into());
            }
            writeln!(out, "{v}").map_err(io)?;
            continue;
        }
        let Value::Object(o) = v else { continue };
        let kind = o
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_string();
        let ts = rec.ts().map(ts_text).unwrap_or_else(|| "-".into());
        let mut line = format!(
            "{:#x} [{:#x}]: {ts} {}",
            item.offset,
            item.size(),
            upper_snake(&kind)
        );
        let mut sub = Vec::new();
        for (k, val) in o.iter() {
            if k == "type" || k == "ts" {
                continue;
            }
            match (k.as_str(), val) {
                // Long lists go on their own indented lines, as perf -D prints sub-records.
                ("changes" | "phdrs", Value::Array(a)) => {
                    line.push_str(&format!(" {k}={}", a.len()));
                    for x in a {
                        sub.push(format!("    {}", scalar(k, x)));
                    }
                }
                _ => line.push_str(&format!(
                    " {k}={}",
                    named(&kind, k, val).unwrap_or_else(|| scalar(k, val))
                )),
            }
        }
        writeln!(out, "{line}").map_err(io)?;
        for s in sub {
            writeln!(out, "{s}").map_err(io)?;
        }
    }
    if let Some(w) = &parsed.truncated {
        eprintln!("mapagent: warning: {w}");
    }
    Ok(parsed.truncated.is_some())
}

pub fn run(path: &Path, json: bool) -> Result<i32> {
    let files = crate::input::record_files(path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut truncated = false;
    let mut empty = Vec::new();
    for f in &files {
        // In a directory, a file that cannot be read is skipped with one warning, and the
        // command exits 2 after showing the others.
        let dumped = Recording::open(f).and_then(|r| {
            if files.len() > 1 && !json {
                writeln!(out, "# {}", f.display()).ok();
            }
            let t = dump_file(&r, json, &mut out)?;
            Ok((t, r.parse().is_ok_and(|p| p.items.is_empty())))
        });
        match dumped {
            Ok((t, is_empty)) => {
                truncated |= t;
                if is_empty {
                    empty.push(f.display().to_string());
                }
            }
            Err(e) if files.len() > 1 => {
                out.flush().ok();
                eprintln!("mapagent: warning: {e}; skipped");
                truncated = true;
                empty.push(f.display().to_string());
            }
            Err(e) => return Err(e),
        }
    }
    out.flush().ok();
    // A file with not one whole record is bad input, as it is to every other command.
    if !empty.is_empty() && empty.len() == files.len() {
        return Err(crate::Error::input(format!(
            "{}: not one whole record in it",
            empty.join(", ")
        )));
    }
    Ok(super::exit_code(truncated))
}
