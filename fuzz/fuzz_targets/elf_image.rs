//! Any bytes as an image file (a kept copy, a library replaced on disk): reading its segments,
//! sections, symbols and relocations, and naming unsymbolized relocated data, must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mapagent::derive::{derive, FileView};
use mapagent::elfimage::ImageFile;

fuzz_target!(|data: &[u8]| {
    let f = ImageFile::from_bytes("fuzz.so".into(), data.to_vec());
    let _ = f.build_id();
    let Ok(info) = f.info() else { return };
    let view = FileView {
        data: f.bytes(),
        segments: &info.segments,
    };
    let gaps: Vec<(u64, u64)> = info
        .sections
        .iter()
        .map(|s| (s.addr, s.addr.saturating_add(s.size)))
        .collect();
    let _ = derive(&info, &view, &gaps);
});
