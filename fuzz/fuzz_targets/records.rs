//! Any bytes as a record file: parsing, decoding, replaying, the page analyses (dirty pages,
//! the page map, a diff), watched values and the memory chart must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mapagent::input::Recording;
use mapagent::snapshot::Which;
use mapagent::text::At;
use mapagent::timeline::Timeline;

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = Recording::from_bytes("fuzz.mrec".into(), data.to_vec()) else { return };
    let Ok(parsed) = rec.parse() else { return };
    let Some(t) = Timeline::build("fuzz.mrec".into(), &parsed) else { return };
    let _ = t.ending();
    let mid = t.first_ts / 2 + t.last_ts / 2;
    for at in [At::End, At::Abs(mid), At::Abs(t.first_ts), At::Rel(0.5)] {
        let _ = mapagent::cmd::maps::mappings(&t, at);
    }
    let h = mapagent::watch::history(&t);
    for w in &h.watches {
        let _ = mapagent::watch::value_at(&h, &w.name, mid);
    }
    let _ = mapagent::mem::svg(&[mapagent::mem::series(&t)]);
    let opts = mapagent::dirty::Options {
        image: None,
        all: true,
    };
    if let Ok(r) = mapagent::dirty::analyse(&t, &Which::End, &opts) {
        let _ = mapagent::page_map::render(&r, "fuzz");
        let _ = mapagent::diff::diff(&r, &r);
    }
});
