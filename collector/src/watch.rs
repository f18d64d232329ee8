//! Watched globals: the values the agent sampled (MAPAGENT_WATCH), as a timeline per process,
//! and matched to perf samples by time (for `perf record -k CLOCK_MONOTONIC` recordings).

use crate::timeline::Timeline;
use mapagent_record::records::{kind, watch_status, watch_type, WatchDef, WatchValue};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Watch {
    pub index: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// 0: not found in the loaded images (yet).
    pub addr: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Value {
    pub ts: u64,
    /// The thread that asked (mapagent_watch_sample, mapagent_snapshot); 0: the agent's own
    /// periodic sample.
    pub tid: u32,
    pub name: String,
    /// "ok", "null" (a NULL str) or "unreadable".
    pub status: &'static str,
    /// As text: numbers in decimal (ptr in hex), strings as they were.
    pub value: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct History {
    pub pid: u32,
    pub exe: String,
    /// When this process image started (an exec starts a new one under the same pid).
    pub start_ns: u64,
    pub watches: Vec<Watch>,
    pub values: Vec<Value>,
    /// Indices into `values` per watch name, in time order (for value_at).
    #[serde(skip)]
    by_name: BTreeMap<String, Vec<usize>>,
}

fn format(ty: u8, b: &[u8]) -> String {
    let int = |n: usize| -> u64 {
        let mut a = [0u8; 8];
        let k = n.min(b.len());
        a[..k].copy_from_slice(&b[..k]);
        u64::from_le_bytes(a)
    };
    match ty {
        watch_type::U8 | watch_type::U16 | watch_type::U32 | watch_type::U64 => int(8).to_string(),
        watch_type::I8 => (int(1) as u8 as i8).to_string(),
        watch_type::I16 => (int(2) as u16 as i16).to_string(),
        watch_type::I32 => (int(4) as u32 as i32).to_string(),
        watch_type::I64 => (int(8) as i64).to_string(),
        watch_type::F64 => f64::from_bits(int(8)).to_string(),
        watch_type::PTR => format!("{:#x}", int(8)),
        _ => String::from_utf8_lossy(b).into_owned(),
    }
}

pub fn history(t: &Timeline<'_>) -> History {
    let mut watches: BTreeMap<u32, Watch> = BTreeMap::new();
    let mut types: BTreeMap<u32, u8> = BTreeMap::new();
    let mut values = Vec::new();
    for it in t.items() {
        if let Some(d) = it.get::<WatchDef>(kind::WATCH_DEF) {
            types.insert(d.index, d.ty);
            watches.insert(
                d.index,
                Watch {
                    index: d.index,
                    name: String::from_utf8_lossy(d.name.0).into_owned(),
                    ty: watch_type::name(d.ty),
                    addr: d.addr,
                },
            );
        } else if let Some(v) = it.get::<WatchValue>(kind::WATCH_VALUE) {
            let ty = types.get(&v.index).copied().unwrap_or(0);
            values.push(Value {
                ts: v.ts,
                tid: v.tid,
                name: watches
                    .get(&v.index)
                    .map_or_else(|| format!("#{}", v.index), |w| w.name.clone()),
                status: match v.status {
                    watch_status::OK => "ok",
                    watch_status::NULL => "null",
                    _ => "unreadable",
                },
                value: (v.status == watch_status::OK).then(|| format(ty, v.value.0)),
            });
        }
    }
    values.sort_by_key(|v| v.ts);
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        by_name.entry(v.name.clone()).or_default().push(i);
    }
    History {
        pid: t.pid(),
        exe: t.process.exe.lossy().into_owned(),
        start_ns: t.first_ts,
        watches: watches.into_values().collect(),
        values,
        by_name,
    }
}

/// The value of watch `name` current at `ts` (the last sample at or before it).
pub fn value_at<'h>(h: &'h History, name: &str, ts: u64) -> Option<&'h Value> {
    let idx = h.by_name.get(name)?;
    let i = idx.partition_point(|&k| h.values.get(k).is_some_and(|v| v.ts <= ts));
    h.values.get(*idx.get(i.checked_sub(1)?)?)
}

/// How a value reads in a report: the text, or (NULL) / (unreadable).
pub fn shown(v: Option<&Value>) -> String {
    match v {
        None => "(no sample yet)".into(),
        Some(v) => match (v.status, &v.value) {
            ("ok", Some(s)) if s.is_empty() => "(empty)".into(),
            ("ok", Some(s)) => s.clone(),
            ("null", _) => "(NULL)".into(),
            _ => "(unreadable)".into(),
        },
    }
}
