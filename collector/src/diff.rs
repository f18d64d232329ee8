//! Private dirty pages between two recordings, per image and per symbol: the before/after-a-
//! patch workflow. Images are matched by file name (a rebuilt library usually moves), symbols
//! by section and name; what one side lacks counts as zero there.

use crate::dirty::{ImageReport, Report, SymbolReport};
use serde::Serialize;
use std::collections::BTreeMap;

/// One side's numbers for a symbol.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SymbolCounts {
    pub dirty_pages: u64,
    pub dirty_bytes: u64,
    pub relocations: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SymbolDelta {
    pub name: String,
    pub section: String,
    /// None: not reported on that side (no dirty page, no relocation, or no such symbol).
    pub before: Option<SymbolCounts>,
    pub after: Option<SymbolCounts>,
    pub delta_pages: i64,
    pub delta_bytes: i64,
    pub delta_relocations: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageDelta {
    /// The file name both sides share.
    pub image: String,
    pub before_path: Option<String>,
    pub after_path: Option<String>,
    /// Copied-on-write pages (None: not loaded on that side).
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub delta_pages: i64,
    pub symbols: Vec<SymbolDelta>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub before_pid: u32,
    pub after_pid: u32,
    pub exe: String,
    pub page_size: u64,
    pub before_pages: u64,
    pub after_pages: u64,
    pub delta_pages: i64,
    pub images: Vec<ImageDelta>,
}

/// "libfoo.so" from "/usr/lib/libfoo.so (deleted)".
pub fn image_key(path: &str) -> String {
    let p = path.strip_suffix(" (deleted)").unwrap_or(path);
    p.rsplit('/').next().unwrap_or(p).to_string()
}

fn keyed(r: &Report) -> BTreeMap<String, &ImageReport> {
    let mut m = BTreeMap::new();
    for im in &r.images {
        let mut k = image_key(&im.path);
        // The same file name twice (two copies of a library): keep both, in load order.
        let mut n = 2;
        while m.contains_key(&k) {
            k = format!("{} #{n}", image_key(&im.path));
            n += 1;
        }
        m.insert(k, im);
    }
    m
}

fn d(a: u64, b: u64) -> i64 {
    b as i64 - a as i64
}

fn symbols(im: Option<&ImageReport>) -> BTreeMap<(String, String), SymbolCounts> {
    let mut m: BTreeMap<(String, String), SymbolCounts> = BTreeMap::new();
    for s in im.iter().flat_map(|i| i.symbols.iter()) {
        // Same-named symbols (statics of two files) add up: neither side can tell them apart.
        let c = m.entry((s.section.clone(), s.name.clone())).or_default();
        add(c, s);
    }
    m
}

fn add(c: &mut SymbolCounts, s: &SymbolReport) {
    c.dirty_pages += s.dirty_pages;
    c.dirty_bytes += s.dirty_bytes;
    c.relocations += s.relocations;
}

/// The differences from `before` to `after`; every image loaded on either side, the changed
/// first (largest change first), and per image only the symbols whose numbers changed.
pub fn diff(before: &Report, after: &Report) -> Diff {
    let (a, b) = (keyed(before), keyed(after));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut images = Vec::new();
    for k in keys {
        let (ia, ib) = (a.get(k).copied(), b.get(k).copied());
        let (sa, sb) = (symbols(ia), symbols(ib));
        let mut names: Vec<&(String, String)> = sa.keys().chain(sb.keys()).collect();
        names.sort();
        names.dedup();
        let mut syms: Vec<SymbolDelta> = names
            .into_iter()
            .filter_map(|n| {
                let (x, y) = (sa.get(n).copied(), sb.get(n).copied());
                let (x0, y0) = (x.unwrap_or_default(), y.unwrap_or_default());
                (x0 != y0).then(|| SymbolDelta {
                    name: n.1.clone(),
                    section: n.0.clone(),
                    before: x,
                    after: y,
                    delta_pages: d(x0.dirty_pages, y0.dirty_pages),
                    delta_bytes: d(x0.dirty_bytes, y0.dirty_bytes),
                    delta_relocations: d(x0.relocations, y0.relocations),
                })
            })
            .collect();
        syms.sort_by(|p, q| {
            q.delta_bytes
                .unsigned_abs()
                .cmp(&p.delta_bytes.unsigned_abs())
                .then(
                    q.delta_relocations
                        .unsigned_abs()
                        .cmp(&p.delta_relocations.unsigned_abs()),
                )
                .then(p.name.cmp(&q.name))
        });
        let (pa, pb) = (ia.map(|i| i.dirty_pages), ib.map(|i| i.dirty_pages));
        images.push(ImageDelta {
            image: k.clone(),
            before_path: ia.map(|i| i.path.clone()),
            after_path: ib.map(|i| i.path.clone()),
            before: pa,
            after: pb,
            delta_pages: d(pa.unwrap_or(0), pb.unwrap_or(0)),
            symbols: syms,
        });
    }
    images.sort_by(|p, q| {
        q.delta_pages
            .unsigned_abs()
            .cmp(&p.delta_pages.unsigned_abs())
            .then(q.symbols.len().cmp(&p.symbols.len()))
            .then(p.image.cmp(&q.image))
    });
    let total = |r: &Report| r.images.iter().map(|i| i.dirty_pages).sum::<u64>();
    let (ta, tb) = (total(before), total(after));
    Diff {
        before_pid: before.pid,
        after_pid: after.pid,
        exe: after.exe.clone(),
        page_size: after.page_size,
        before_pages: ta,
        after_pages: tb,
        delta_pages: d(ta, tb),
        images,
    }
}

/// Pairs the processes of two recordings: alone with alone, otherwise by executable file
/// name in recording order. Returns the pairs and what was left unpaired on each side.
pub fn pair<'a>(
    before: &'a [Report],
    after: &'a [Report],
) -> (
    Vec<(&'a Report, &'a Report)>,
    Vec<&'a Report>,
    Vec<&'a Report>,
) {
    if before.len() == 1 && after.len() == 1 {
        return (vec![(&before[0], &after[0])], vec![], vec![]);
    }
    let mut used = vec![false; after.len()];
    let mut pairs = Vec::new();
    let mut left = Vec::new();
    for a in before {
        let k = image_key(&a.exe);
        match (0..after.len()).find(|&i| !used[i] && image_key(&after[i].exe) == k) {
            Some(i) => {
                used[i] = true;
                pairs.push((a, &after[i]));
            }
            None => left.push(a),
        }
    }
    let right = after
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| r)
        .collect();
    (pairs, left, right)
}
