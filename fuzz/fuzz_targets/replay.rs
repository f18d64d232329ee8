//! Hostile record *contents* behind valid checksums: the input is cut into (kind, payload)
//! pieces that are framed properly, so decoding and replay see arbitrary values (huge or
//! inverted ranges, absurd times, unknown kinds) rather than failing the CRC.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mapagent::input::Recording;
use mapagent::text::At;
use mapagent::timeline::Timeline;
use mapagent_record::frame;
use mapagent_record::records::{Process, Record};

fuzz_target!(|data: &[u8]| {
    let mut file = Vec::new();
    frame::encode_file_header(&mut file);
    // Every file needs a Process record first for a timeline to exist.
    Record::Process(Process { pid: 1, page_size: 4096, ..Default::default() }).encode(&mut file);
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = (rest[0] % 20) as u16;
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        frame::encode_frame(kind, &mut file, |o| o.extend_from_slice(&rest[3..3 + len]));
        rest = &rest[3 + len..];
    }
    let Ok(rec) = Recording::from_bytes("fuzz.mrec".into(), file) else { return };
    let Ok(parsed) = rec.parse() else { return };
    let Some(t) = Timeline::build("fuzz.mrec".into(), &parsed) else { return };
    let mid = t.first_ts / 2 + t.last_ts / 2;
    for at in [At::End, At::Abs(mid), At::Abs(0), At::Rel(1e12)] {
        let _ = mapagent::cmd::maps::mappings(&t, at);
    }
});
