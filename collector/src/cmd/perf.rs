//! `mapagent perf`: the recordings as a standalone perf.data (perf 6.1 reads it): per process
//! COMM, FORK, MMAP2 (build-id variant when known) and EXIT on CLOCK_MONOTONIC, with the header
//! features perf's tools expect.

use crate::error::{Error, Result};
use crate::perf::event::{self, Trailer};
use crate::perf::features::{self, Host};
use crate::perf::output::{dummy_attr, AttrOut, PerfOut};
use crate::perf::synth::{Opts, Synth};
use crate::perf::{feat, sample, CLOCK_MONOTONIC};
use crate::select::{self, Loaded};
use std::path::Path;

/// Records between FINISHED_ROUND markers, so perf need not queue the whole file.
const ROUND: usize = 10_000;

pub fn run(path: &Path, out: &Path) -> Result<i32> {
    let loaded = Loaded::open(path)?;
    let parsed = loaded.parse()?;
    let truncated = select::warn_truncated(&parsed);
    let all = select::timelines(&loaded, &parsed);
    if all.is_empty() {
        return Err(Error::input(format!(
            "{}: no process recorded",
            path.display()
        )));
    }
    let tr = Trailer {
        sample_type: sample::TID | sample::TIME,
        sample_id_all: true,
    };
    let mut synth = Synth::default();
    for t in &all {
        synth.add(
            t,
            &tr,
            &Opts {
                exec_only: false,
                tasks: true,
                offset: 0,
                samples: true,
                memfd_as_anon: false,
            },
        );
    }
    synth.sort();
    let (placed, file) = crate::output::Output::create(out, &[path])?;
    let io = |e: std::io::Error| Error::failure(format!("writing {}: {e}", out.display()));
    let attr = dummy_attr();
    let mut w = PerfOut::begin(
        std::io::BufWriter::with_capacity(1 << 20, file),
        &[AttrOut {
            raw: attr.clone(),
            ids: Vec::new(),
        }],
    )
    .map_err(io)?;
    let bar = crate::progress::bar(synth.buf.len() as u64, "perf.data");
    let mut round = Vec::new();
    event::finished_round(&mut round);
    for chunk in synth.items.chunks(ROUND) {
        // Records adjacent in the buffer go out in one write (most are: sorting barely moves
        // them), not one copy each through the BufWriter.
        let mut run: Option<(usize, usize)> = None;
        for item in chunk {
            let (s, e) = synth.span(item);
            run = match run {
                Some((rs, re)) if re == s => Some((rs, e)),
                Some((rs, re)) => {
                    w.write(&synth.buf[rs..re]).map_err(io)?;
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((rs, re)) = run {
            w.write(&synth.buf[rs..re]).map_err(io)?;
            bar.inc((re - rs) as u64);
        }
        w.write(&round).map_err(io)?;
    }
    bar.finish_and_clear();
    let host = Host::read();
    let first = &all[0].process;
    let mut bids = Vec::new();
    for (bid, name) in &synth.build_ids {
        features::build_id_entry(&mut bids, bid, name);
    }
    let args: Vec<String> = std::env::args().collect();
    let mut feats = vec![
        (feat::HOSTNAME, features::string_feature(first.hostname.0)),
        (
            feat::OSRELEASE,
            features::string_feature(first.kernel_release.0),
        ),
        (
            feat::VERSION,
            features::string_feature(concat!("mapagent ", env!("CARGO_PKG_VERSION")).as_bytes()),
        ),
        (feat::ARCH, features::string_feature(first.machine.0)),
        (feat::NRCPUS, features::nrcpus(host.nr_cpus, host.nr_cpus)),
        (
            feat::CPUDESC,
            features::string_feature(host.cpudesc.as_bytes()),
        ),
        (feat::CPUID, features::string_feature(host.cpuid.as_bytes())),
        (feat::TOTAL_MEM, host.total_mem_kb.to_le_bytes().to_vec()),
        (feat::CMDLINE, features::cmdline(&args)),
        (
            feat::EVENT_DESC,
            features::event_desc(&[(&attr, b"mapagent:mmap", &[])]),
        ),
        (
            feat::SAMPLE_TIME,
            features::sample_time(synth.first_ts, synth.last_ts),
        ),
        (feat::CLOCKID, features::clockid_res(1)),
        (
            feat::CLOCK_DATA,
            features::clock_data(CLOCK_MONOTONIC, first.start_wall_ns, first.start_mono_ns),
        ),
    ];
    if !bids.is_empty() {
        feats.push((feat::BUILD_ID, bids));
    }
    w.finish(feats).map_err(io)?;
    placed.commit()?;
    eprintln!(
        "mapagent: wrote {} records for {} process image{} to {}",
        synth.items.len(),
        all.len(),
        if all.len() == 1 { "" } else { "s" },
        out.display()
    );
    Ok(super::exit_code(truncated))
}
