//! Any bytes as the perf.data `mapagent inject` reads: parsing the header, attributes,
//! features and every record must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mapagent::perf::input::PerfInput;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = PerfInput::parse(data) else { return };
    let _ = input.trailer().time_from_end();
    let _ = input.monotonic();
    for bit in 0..64 {
        let _ = input.feature(bit);
    }
    for r in input.records() {
        let Ok(r) = r else { break };
        let _ = input.record_time(&r);
        let _ = input.sample_time(&r);
        let _ = input.sample_pid(&r);
    }
});
