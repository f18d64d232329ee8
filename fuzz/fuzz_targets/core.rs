//! Any bytes as a core dump: the notes, the link_map walk through "dumped memory" and the
//! mapping names must never panic (a hostile core can point anywhere).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mapagent::core::Core;

fuzz_target!(|data: &[u8]| {
    let Ok(core) = Core::parse(data) else { return };
    let modules = core.modules();
    let _ = mapagent::cmd::core::mappings(&core, &modules, None);
});
