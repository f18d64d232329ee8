//! perf records from agent recordings: for each process a COMM (its exec), a FORK for a fork
//! child, an MMAP2 for every segment of every image (the build-id variant when the build-id is
//! known) and for every file mapping made by an mmap call, and an EXIT. Times are the agent's
//! CLOCK_MONOTONIC, shifted by `offset` for a recording on another clock.

use super::event::{self, FileId, Trailer};
use crate::input::Item as Rec;
use crate::timeline::{ImageSpan, Timeline};
use mapagent_record::model::{MAP_ANONYMOUS, MAP_FAILED};
use mapagent_record::records::{kind, Mmap};

/// What an MMAP2 is about, for matching it with perf's own records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapKey {
    pub pid: u32,
    pub addr: u64,
    pub len: u64,
    pub pgoff: u64,
}

/// Mmap records from which encoding is split between two threads.
const PARALLEL_MIN: usize = 100_000;

/// One synthesized record: 24 bytes, there can be millions.
pub struct Item {
    pub ts: u64,
    start: u64,
    len: u32,
    /// Index into `Synth::maps` + 1, or 0 for a record that is not a mapping.
    map: u32,
}

#[derive(Default)]
pub struct Synth {
    pub buf: Vec<u8>,
    pub items: Vec<Item>,
    maps: Vec<MapKey>,
    /// (build-id, filename) of every image written with its build-id.
    pub build_ids: Vec<(Vec<u8>, Vec<u8>)>,
    /// Images whose file perf cannot open by name: (build-id, MMAP2 filename, kept copy).
    pub kept: Vec<(Vec<u8>, Vec<u8>, std::path::PathBuf)>,
    pub first_ts: u64,
    pub last_ts: u64,
    samples: bool,
}

pub struct Opts {
    /// Only executable mappings (what symbolization needs; inject uses this).
    pub exec_only: bool,
    /// COMM, FORK and EXIT records too (a standalone file needs them; a perf recording has its own).
    pub tasks: bool,
    /// Added to every agent time (a recording on another clock).
    pub offset: i64,
    /// A sample per mapping event as well (a standalone file: perf report counts them).
    pub samples: bool,
    /// memfd images as //anon without build-id, so perf uses /tmp/perf-PID.map for them.
    pub memfd_as_anon: bool,
}

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const MAP_PRIVATE: u32 = 2;

fn prot_of(p_flags: u32) -> u32 {
    (if p_flags & PF_R != 0 { 1 } else { 0 })
        | (if p_flags & PF_W != 0 { 2 } else { 0 })
        | (if p_flags & PF_X != 0 { 4 } else { 0 })
}

impl Synth {
    fn push(&mut self, ts: u64, map: Option<MapKey>, start: usize) {
        let mut idx = 0;
        if let Some(k) = map {
            self.maps.push(k);
            idx = self.maps.len() as u32;
        }
        self.items.push(Item {
            ts,
            start: start as u64,
            len: (self.buf.len() - start) as u32,
            map: idx,
        });
        if let Some(k) = map.filter(|_| self.samples) {
            let s = self.buf.len();
            event::mapping_sample(&mut self.buf, k.pid, k.pid, k.addr, ts);
            self.items.push(Item {
                ts,
                start: s as u64,
                len: (self.buf.len() - s) as u32,
                map: 0,
            });
        }
        if self.first_ts == 0 || ts < self.first_ts {
            self.first_ts = ts;
        }
        self.last_ts = self.last_ts.max(ts);
    }

    /// Room for what `t` can add (untouched capacity costs no memory; regrowth copies would).
    pub fn reserve_for(&mut self, t: &Timeline<'_>) {
        let n = t.images.len() * 8 + 8;
        crate::bigvec::reserve(&mut self.items, 2 * n);
        crate::bigvec::reserve(&mut self.maps, n);
        crate::bigvec::reserve(&mut self.buf, 256 * n);
    }

    /// Adds everything about one recorded process image.
    pub fn add(&mut self, t: &Timeline<'_>, tr: &Trailer, opts: &Opts) {
        self.reserve_for(t);
        self.samples = opts.samples;
        let shift = |ts: u64| ts.saturating_add_signed(opts.offset);
        let pid = t.pid();
        let p = &t.process;
        if opts.tasks {
            let start = self.buf.len();
            let ts = shift(if p.origin == 1 {
                p.origin_ts
            } else {
                p.start_mono_ns
            });
            if p.origin == 1 {
                event::fork_exit(
                    &mut self.buf,
                    tr,
                    false,
                    pid,
                    p.parent_pid,
                    pid,
                    p.parent_pid,
                    ts,
                );
                self.push(ts, None, start);
            }
            let start = self.buf.len();
            let name = p.exe.0.rsplit(|&c| c == b'/').next().unwrap_or(b"");
            event::comm(&mut self.buf, tr, pid, pid, name, p.origin == 0, ts);
            self.push(ts, None, start);
        }
        for im in &t.images {
            self.add_image(t, im, tr, opts);
        }
        // Encoding is most of the work on a recording of millions of mmaps: two threads take
        // half each, and the second half's records are appended after the first's.
        let items = t.items();
        if items.len() >= PARALLEL_MIN {
            let (one, two) = items.split_at(items.len() / 2);
            let mut part = Synth {
                samples: self.samples,
                ..Synth::default()
            };
            std::thread::scope(|s| {
                s.spawn(|| part.add_mmaps(two, pid, tr, opts));
                self.add_mmaps(one, pid, tr, opts);
            });
            self.append(part);
        } else {
            self.add_mmaps(items, pid, tr, opts);
        }
        if opts.tasks {
            if let Some(e) = &t.exit {
                let start = self.buf.len();
                let ts = shift(e.ts);
                event::fork_exit(&mut self.buf, tr, true, pid, p.ppid, pid, p.ppid, ts);
                self.push(ts, None, start);
            }
        }
    }

    /// An MMAP2 for every file mapping the mmap records among `items` made.
    fn add_mmaps(&mut self, items: &[Rec<'_>], pid: u32, tr: &Trailer, opts: &Opts) {
        crate::bigvec::reserve(&mut self.items, 2 * items.len());
        crate::bigvec::reserve(&mut self.maps, items.len());
        crate::bigvec::reserve(&mut self.buf, 256 * items.len());
        let shift = |ts: u64| ts.saturating_add_signed(opts.offset);
        for m in items.iter().filter_map(|i| i.get::<Mmap>(kind::MMAP)) {
            {
                let file = m.flags & MAP_ANONYMOUS == 0 && !m.path.is_empty();
                if m.errno != 0
                    || m.result == MAP_FAILED
                    || !file
                    || (opts.exec_only && m.prot & 4 == 0)
                {
                    continue;
                }
                let ts = shift(m.ts);
                let len = m.len.div_ceil(4096) * 4096;
                let key = MapKey {
                    pid,
                    addr: m.result,
                    len,
                    pgoff: m.offset,
                };
                let start = self.buf.len();
                let id = FileId::Inode {
                    maj: m.dev_major,
                    min: m.dev_minor,
                    ino: m.ino,
                    gen: 0,
                };
                event::mmap2(
                    &mut self.buf,
                    tr,
                    pid,
                    m.tid,
                    m.result,
                    len,
                    m.offset,
                    &id,
                    m.prot & 7,
                    m.flags & 0x3,
                    m.path.0,
                    ts,
                );
                self.push(ts, Some(key), start);
            }
        }
    }

    /// Appends another synthesis's records after ours.
    fn append(&mut self, other: Synth) {
        let base = self.buf.len() as u64;
        let maps = self.maps.len() as u32;
        self.buf.extend_from_slice(&other.buf);
        self.maps.extend_from_slice(&other.maps);
        self.items.extend(other.items.into_iter().map(|mut i| {
            i.start += base;
            if i.map > 0 {
                i.map += maps;
            }
            i
        }));
        if other.first_ts != 0 && (self.first_ts == 0 || other.first_ts < self.first_ts) {
            self.first_ts = other.first_ts;
        }
        self.last_ts = self.last_ts.max(other.last_ts);
    }

    fn add_image(&mut self, t: &Timeline<'_>, im: &ImageSpan, tr: &Trailer, opts: &Opts) {
        let pid = t.pid();
        let vdso = im.is_vdso();
        let anon = opts.memfd_as_anon && im.path.starts_with("/memfd:");
        let name: &[u8] = if vdso {
            b"[vdso]"
        } else if anon {
            b"//anon"
        } else {
            im.path.as_bytes()
        };
        if name.is_empty() {
            return;
        }
        let bid = if anon {
            Vec::new()
        } else {
            hex_decode(&im.build_id)
        };
        let ts = im.loaded_ns.saturating_add_signed(opts.offset);
        let mut any = false;
        for ph in im.phdrs.iter().filter(|p| p.p_type == 1 && p.memsz > 0) {
            if opts.exec_only && ph.p_flags & PF_X == 0 {
                continue;
            }
            let page = 4096u64;
            let addr = im.load_bias.wrapping_add(ph.vaddr & !(page - 1));
            let end = im
                .load_bias
                .wrapping_add((ph.vaddr.saturating_add(ph.filesz.max(1))).div_ceil(page) * page);
            let len = end.saturating_sub(addr);
            let pgoff = ph.offset & !(page - 1);
            let id = if !bid.is_empty() && bid.len() <= 20 {
                FileId::BuildId(&bid)
            } else {
                FileId::Inode {
                    maj: im.dev_major,
                    min: im.dev_minor,
                    ino: im.inode,
                    gen: 0,
                }
            };
            let start = self.buf.len();
            event::mmap2(
                &mut self.buf,
                tr,
                pid,
                pid,
                addr,
                len,
                pgoff,
                &id,
                prot_of(ph.p_flags),
                MAP_PRIVATE,
                name,
                ts,
            );
            self.push(
                ts,
                Some(MapKey {
                    pid,
                    addr,
                    len,
                    pgoff,
                }),
                start,
            );
            any = true;
        }
        if any && !bid.is_empty() && !vdso {
            if !self.build_ids.iter().any(|(b, n)| *b == bid && n == name) {
                self.build_ids.push((bid.clone(), name.to_vec()));
            }
            if let Some(file) = t.kept_file(im) {
                self.kept.push((bid, name.to_vec(), file));
            }
        }
    }

    /// Items in time order (stable: equal times keep their order).
    pub fn sort(&mut self) {
        self.items.sort_by_key(|i| i.ts);
    }

    pub fn bytes(&self, i: &Item) -> &[u8] {
        let (s, e) = self.span(i);
        &self.buf[s..e]
    }

    /// Where an item's bytes sit in `buf`.
    pub fn span(&self, i: &Item) -> (usize, usize) {
        (i.start as usize, i.start as usize + i.len as usize)
    }

    pub fn bytes_mut(&mut self, i: usize) -> &mut [u8] {
        let i = &self.items[i];
        &mut self.buf[i.start as usize..i.start as usize + i.len as usize]
    }

    /// The mapping an item records, if it is one.
    pub fn map_of(&self, i: &Item) -> Option<MapKey> {
        (i.map > 0).then(|| self.maps[i.map as usize - 1])
    }
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Recording;
    use crate::perf::sample;
    use mapagent_record::frame;
    use mapagent_record::records::{Process, Record};
    use mapagent_record::Bytes;

    /// A recording of `n` file mmaps; every fifth failed or anonymous (skipped).
    fn recording(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        frame::encode_file_header(&mut v);
        Record::Process(Process {
            pid: 7,
            page_size: 4096,
            start_mono_ns: 1,
            ..Default::default()
        })
        .encode(&mut v);
        for i in 0..n {
            Record::Mmap(Mmap {
                ts: 10 + i,
                tid: 7,
                len: 4096,
                prot: 5,
                flags: if i % 5 == 3 { MAP_ANONYMOUS | 2 } else { 2 },
                result: 0x1000_0000 + (i << 12),
                path: Bytes(b"/lib/x.so"),
                ..Default::default()
            })
            .encode(&mut v);
        }
        v
    }

    /// The mapping records' times and addresses, in output order.
    fn synthesize(n: u64) -> Vec<(u64, u64)> {
        let r = Recording::from_bytes("t.mrec".into(), recording(n)).unwrap();
        let p = r.parse().unwrap();
        let t = Timeline::build("t.mrec".into(), &p).unwrap();
        let tr = Trailer {
            sample_type: sample::TID | sample::TIME,
            sample_id_all: true,
        };
        let mut s = Synth::default();
        let opts = Opts {
            exec_only: false,
            tasks: true,
            offset: 0,
            samples: true,
            memfd_as_anon: false,
        };
        s.add(&t, &tr, &opts);
        s.sort();
        s.items
            .iter()
            .filter_map(|i| Some((i.ts, s.map_of(i)?.addr)))
            .collect()
    }

    #[test]
    fn two_threads_write_what_one_would() {
        for n in [1_000, PARALLEL_MIN as u64 * 3 + 1] {
            let got = synthesize(n);
            let want: Vec<(u64, u64)> = (0..n)
                .filter(|i| i % 5 != 3)
                .map(|i| (10 + i, 0x1000_0000 + (i << 12)))
                .collect();
            assert_eq!(got.len(), want.len(), "{n}");
            assert!(got == want, "{n}: records out of order or wrong");
        }
    }
}
