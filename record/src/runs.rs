//! Runs of pages in one state: how a Pages record stores a mapping's pages (see
//! `records::Pages`), built page by page or by ranges, and combined.

use crate::records::Run;

/// Appends pages to a run list, merging equal states.
#[derive(Default)]
pub struct Runs(pub Vec<Run>);

impl Runs {
    pub fn push(&mut self, mut n: u64, state: u8) {
        while n > 0 {
            match self.0.last_mut() {
                Some(r) if r.state == state && r.pages < u32::MAX => {
                    let add = n.min((u32::MAX - r.pages) as u64);
                    r.pages += add as u32;
                    n -= add;
                }
                _ => {
                    let add = n.min(u32::MAX as u64);
                    self.0.push(Run {
                        pages: add as u32,
                        state,
                    });
                    n -= add;
                }
            }
        }
    }
}

/// Combines two run lists over the same pages, state by state.
pub fn overlay(a: &[Run], b: &[Run], f: impl Fn(u8, u8) -> u8) -> Vec<Run> {
    let mut out = Runs(Vec::with_capacity(a.len().max(b.len())));
    let (mut ia, mut ib) = (a.iter().copied(), b.iter().copied());
    let (mut ra, mut rb) = (ia.next(), ib.next());
    while let (Some(x), Some(y)) = (ra, rb) {
        let n = x.pages.min(y.pages);
        out.push(n as u64, f(x.state, y.state));
        ra = if x.pages > n {
            Some(Run {
                pages: x.pages - n,
                ..x
            })
        } else {
            ia.next()
        };
        rb = if y.pages > n {
            Some(Run {
                pages: y.pages - n,
                ..y
            })
        } else {
            ib.next()
        };
    }
    // Whatever one side has left (they cover the same pages, so nothing, unless a read fell
    // short): keep its states.
    for r in ra.into_iter().chain(ia) {
        out.push(r.pages as u64, f(r.state, 0));
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_overlay() {
        let mut a = Runs::default();
        a.push(3, 1);
        a.push(2, 1);
        a.push(4, 0);
        assert_eq!(a.0.len(), 2);
        let mut b = Runs::default();
        b.push(4, 0x10);
        b.push(5, 0);
        let o = overlay(&a.0, &b.0, |x, y| x | y);
        let flat: Vec<(u32, u8)> = o.iter().map(|r| (r.pages, r.state)).collect();
        assert_eq!(flat, vec![(4, 0x11), (1, 1), (4, 0)]);
    }

    #[test]
    fn long_runs_split_at_u32() {
        let mut a = Runs::default();
        a.push(u32::MAX as u64 + 5, 1);
        let flat: Vec<(u32, u8)> = a.0.iter().map(|r| (r.pages, r.state)).collect();
        assert_eq!(flat, vec![(u32::MAX, 1), (5, 1)]);
    }
}
