//! Page snapshots in a recording: which were taken, choosing one, and the state of any page in
//! it, classified the way the dirty-page analysis needs.

use crate::error::{Error, Result};
use crate::timeline::Timeline;
use mapagent_record::records::{kind, page, snapshot_trigger, Pages, SnapshotEnd};
use mapagent_record::region::Region;
use mapagent_record::replay::Replayer;

/// A snapshot as the timeline lists it; its Pages records follow item `item` in the file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotInfo {
    pub id: u32,
    pub ts: u64,
    pub trigger: u8,
    pub tid: u32,
    pub label: String,
    #[serde(skip)]
    pub item: usize,
    #[serde(skip)]
    pub end: Option<SnapshotEnd>,
}

impl SnapshotInfo {
    pub fn trigger_name(&self) -> &'static str {
        match self.trigger {
            snapshot_trigger::EXIT => "exit",
            snapshot_trigger::INTERVAL => "interval",
            snapshot_trigger::SIGNAL => "signal",
            snapshot_trigger::API => "mapagent_snapshot",
            _ => "unknown",
        }
    }
}

/// Which snapshot to use: the last one (normally the exit snapshot) or the last with a label.
#[derive(Clone, Debug)]
pub enum Which {
    End,
    Label(String),
}

impl Which {
    pub fn parse(s: &str) -> std::result::Result<Which, String> {
        match s {
            "" => Err("empty snapshot label".into()),
            "end" => Ok(Which::End),
            l => Ok(Which::Label(l.to_string())),
        }
    }
}

/// The snapshot of `t` that `which` names.
pub fn choose<'t>(t: &'t Timeline<'_>, which: &Which) -> Result<&'t SnapshotInfo> {
    let found = match which {
        Which::End => t.snapshots.last(),
        Which::Label(l) => t.snapshots.iter().rev().find(|s| &s.label == l),
    };
    found.ok_or_else(|| {
        let have: Vec<String> = t
            .snapshots
            .iter()
            .map(|s| format!("'{}'", s.label))
            .collect();
        Error::input(format!(
            "{}: {} (snapshots in this recording: {})",
            t.file.display(),
            match which {
                Which::End =>
                    "no page snapshot (the process was killed before exiting?)".to_string(),
                Which::Label(l) => format!("no snapshot labelled '{l}'"),
            },
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ))
    })
}

/// How a page of an image counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// A private file page that was written: copied on write, private dirty memory.
    Cow,
    /// Present and still the page-cache page (shared with every process mapping the file).
    Clean,
    /// Not present in this process (never touched, or reclaimed).
    Absent,
    /// Anonymous memory (an image's .bss beyond its file), touched.
    Anon,
    /// Not mapped at the snapshot, or its state could not be read.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
pub struct PageState {
    pub state: u8,
    pub known: u8,
}

/// The pages of one snapshot with the mappings they belong to, for lookups by address.
pub struct PageMap {
    pub page: u64,
    pub info: SnapshotInfo,
    regions: Vec<Pages>,
    space: Replayer,
}

impl PageMap {
    pub fn load(t: &Timeline<'_>, s: &SnapshotInfo) -> PageMap {
        let mut regions: Vec<Pages> = t.items()[s.item..]
            .iter()
            .take_while(|i| i.kind != kind::SNAPSHOT_END)
            .filter_map(|i| i.get::<Pages>(kind::PAGES))
            .filter(|p| p.id == s.id)
            .collect();
        regions.sort_by_key(|p| p.start);
        PageMap {
            page: t.page_size(),
            info: s.clone(),
            regions,
            space: t.space_at(Some(s.ts)),
        }
    }

    /// Whether the file was cut inside the snapshot (some mappings missing).
    pub fn complete(&self) -> bool {
        self.info.end.is_some()
    }

    pub fn regions(&self) -> &[Pages] {
        &self.regions
    }

    /// The mapping (as the address-space model has it at the snapshot) holding `addr`.
    pub fn mapping(&self, addr: u64) -> Option<&Region> {
        self.space.space.find(addr)
    }

    /// The state of every page in [lo, hi) (page-aligned), None where no Pages record covers it.
    pub fn states(&self, lo: u64, hi: u64) -> Vec<Option<PageState>> {
        let n = (hi.saturating_sub(lo) / self.page) as usize;
        let mut out = vec![None; n];
        let first = self.regions.partition_point(|p| p.end <= lo);
        for p in &self.regions[first..] {
            if p.start >= hi {
                break;
            }
            let mut addr = p.start;
            for r in &p.runs {
                let run_end = addr.saturating_add(r.pages as u64 * self.page);
                let (s, e) = (addr.max(lo), run_end.min(hi));
                let mut a = s;
                while a < e {
                    out[((a - lo) / self.page) as usize] = Some(PageState {
                        state: r.state,
                        known: p.known,
                    });
                    a += self.page;
                }
                addr = run_end;
                if addr >= hi {
                    break;
                }
            }
        }
        out
    }

    /// How the page at `addr` with state `s` counts.
    pub fn classify(&self, addr: u64, s: Option<PageState>) -> PageKind {
        let (Some(s), Some(r)) = (s, self.mapping(addr)) else {
            return PageKind::Unknown;
        };
        classify(s, r)
    }
}

pub fn classify(s: PageState, r: &Region) -> PageKind {
    if s.known & page::PRESENT == 0 {
        return PageKind::Unknown;
    }
    let present = s.state & page::PRESENT != 0;
    let swapped = s.state & page::SWAPPED != 0;
    if r.is_file() && !r.shared {
        if s.known & page::FILE == 0 {
            return PageKind::Unknown;
        }
        if (present && s.state & page::FILE == 0) || swapped {
            PageKind::Cow
        } else if present {
            PageKind::Clean
        } else {
            PageKind::Absent
        }
    } else if !r.is_file() {
        if present || swapped {
            PageKind::Anon
        } else {
            PageKind::Absent
        }
    } else if present {
        PageKind::Clean
    } else {
        PageKind::Absent
    }
}
