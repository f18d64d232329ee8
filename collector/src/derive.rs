//! Names for relocated data that has no symbol. Compilers emit much of a program's relocated
//! constant data without names: Rust vtables and panic locations, string-slice tables, LTO's
//! `anon.*` constants. What the relocations in such bytes point at says what they are:
//! - a vtable starts with a pointer to `core::ptr::drop_in_place<T>` (or 0), then the size and
//!   alignment of T, then pointers to the trait's methods (`<T as Trait>::method`);
//! - a panic location is a pointer to a file name ending in ".rs", its length, a line and a
//!   column (24 bytes);
//! - a string slice is a pointer to text and its length.
//!
//! Anything else is named after the symbol its pointer targets. Panic locations and string
//! slices are gathered per source file (there can be thousands).

use crate::dirty::demangle;
use crate::elfimage::{ElfInfo, Reloc, Segment, Symbol};
use std::collections::BTreeMap;

/// Unnamed bytes given a name: one or more pieces (address, length) in file addresses.
#[derive(Clone, Debug)]
pub struct Derived {
    pub name: String,
    pub pieces: Vec<(u64, u64)>,
}

/// Reads the file behind an image's addresses.
pub struct FileView<'a> {
    pub data: &'a [u8],
    pub segments: &'a [Segment],
}

impl FileView<'_> {
    fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let s = self.segments.iter().find(|s| {
            addr >= s.vaddr && addr.saturating_add(len) <= s.vaddr.saturating_add(s.filesz)
        })?;
        let off = usize::try_from(addr - s.vaddr + s.offset).ok()?;
        self.data
            .get(off..off.checked_add(usize::try_from(len).ok()?)?)
    }
    fn word(&self, addr: u64) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(addr, 8)?.try_into().ok()?))
    }
    fn text(&self, addr: u64, len: u64) -> Option<&str> {
        if len == 0 || len > 4096 {
            return None;
        }
        let s = std::str::from_utf8(self.bytes(addr, len)?).ok()?;
        s.chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\t')
            .then_some(s)
    }
}

fn containing(symbols: &[Symbol], addr: u64) -> Option<&Symbol> {
    let i = symbols.partition_point(|s| s.addr <= addr);
    symbols[..i]
        .iter()
        .rev()
        .take(64)
        .find(|s| addr < s.addr.saturating_add(s.size))
}

/// Derived names for the relocations among `relocs` (sorted) that lie in `gaps` (sorted,
/// disjoint file-address ranges no symbol covers).
pub fn derive(info: &ElfInfo, view: &FileView<'_>, gaps: &[(u64, u64)]) -> Vec<Derived> {
    let relocs = &info.relocs;
    let has_reloc = |a: u64| relocs.binary_search_by_key(&a, |r| r.addr).is_ok();
    let reloc_at = |a: u64| -> Option<&Reloc> {
        relocs
            .binary_search_by_key(&a, |r| r.addr)
            .ok()
            .map(|i| &relocs[i])
    };
    // The function a relocation points to; demangled only where a name is wanted, since
    // demangling every target is most of the cost on a large Rust library.
    let target_sym = |r: &Reloc| containing(&info.symbols, r.target?).filter(|s| s.func);
    let target_fn = |r: &Reloc| target_sym(r).map(|s| demangle(&s.name));
    let mut out: Vec<Derived> = Vec::new();
    let mut grouped: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for &(lo, hi) in gaps {
        let first = relocs.partition_point(|r| r.addr < lo);
        let mut i = first;
        while i < relocs.len() && relocs[i].addr < hi {
            let r = &relocs[i];
            let a = r.addr;
            // A vtable: drop_in_place<T> (a pointer), size, align, then method pointers.
            // Both manglings spell the identifier out, so filter before demangling.
            let drop_fn = target_sym(r).filter(|s| s.name.contains("drop_in_place"));
            if let Some(f) = drop_fn
                .map(|s| demangle(&s.name))
                .filter(|f| f.starts_with("core::ptr::drop_in_place<"))
            {
                let align = view.word(a + 16).unwrap_or(0);
                if !has_reloc(a + 8)
                    && !has_reloc(a + 16)
                    && align.is_power_of_two()
                    && align <= 4096
                {
                    let mut end = a + 24;
                    let mut method = None;
                    while end < hi {
                        match reloc_at(end) {
                            Some(m) => {
                                if method.is_none() {
                                    method = target_fn(m);
                                }
                                end += 8;
                            }
                            None => break,
                        }
                    }
                    let ty = f
                        .trim_start_matches("core::ptr::drop_in_place<")
                        .trim_end_matches('>');
                    let name = match method.as_deref().and_then(impl_of) {
                        Some(imp) => format!("vtable for {imp}"),
                        None => format!("vtable for {ty}"),
                    };
                    out.push(Derived {
                        name,
                        pieces: vec![(a, end - a)],
                    });
                    i = relocs.partition_point(|r| r.addr < end);
                    continue;
                }
            }
            // A panic location or a string slice: pointer to text, then its length.
            if let (Some(t), false) = (r.target, has_reloc(a + 8)) {
                let len = view.word(a + 8).unwrap_or(u64::MAX);
                if let Some(s) = view.text(t, len) {
                    if s.ends_with(".rs") && !has_reloc(a + 16) {
                        grouped
                            .entry(format!("panic locations in {s}"))
                            .or_default()
                            .push((a, 24));
                        i += 1;
                        continue;
                    }
                    let short: String = s.chars().take(40).collect();
                    grouped
                        .entry(format!("string slices (\"{}\"...)", short.escape_debug()))
                        .or_default()
                        .push((a, 16));
                    i += 1;
                    continue;
                }
            }
            // A vtable of a type without drop glue: 0, size, align, then method pointers.
            if a >= lo + 24 && !has_reloc(a - 8) && !has_reloc(a - 16) && !has_reloc(a - 24) {
                let align = view.word(a - 8).unwrap_or(0);
                let size = view.word(a - 16).unwrap_or(u64::MAX);
                if let Some(method) = target_sym(r) {
                    if view.word(a - 24) == Some(0)
                        && align.is_power_of_two()
                        && align <= 4096
                        && size.is_multiple_of(align)
                        && size < 1 << 32
                    {
                        let mut end = a;
                        while end < hi && reloc_at(end).and_then(target_sym).is_some() {
                            end += 8;
                        }
                        let method = demangle(&method.name);
                        let name = match impl_of(&method) {
                            Some(imp) => format!("vtable for {imp}"),
                            None => format!("vtable ({method}, ...)"),
                        };
                        out.push(Derived {
                            name,
                            pieces: vec![(a - 24, end - (a - 24))],
                        });
                        i = relocs.partition_point(|r| r.addr < end);
                        continue;
                    }
                }
            }
            // A slice of something that is not text: a pointer and a plausible length.
            if let (Some(t), false) = (r.target, has_reloc(a + 8)) {
                let len = view.word(a + 8).unwrap_or(u64::MAX);
                if len > 0 && len < 1 << 24 && containing(&info.symbols, t).is_none_or(|s| !s.func)
                {
                    let what = match containing(&info.symbols, t) {
                        Some(s) => demangle(&s.name),
                        None => format!("unnamed data in {}", section_name(info, t)),
                    };
                    grouped
                        .entry(format!("slices of {what}"))
                        .or_default()
                        .push((a, 16));
                    i += 1;
                    continue;
                }
            }
            // Anything else: named after what it points to.
            let name = match (r.target, &r.symbol) {
                (_, Some(s)) => format!("pointers to {}", demangle(s)),
                (Some(t), None) => match containing(&info.symbols, t) {
                    Some(s) if s.func => "pointers to functions".to_string(),
                    Some(s) => format!("pointers to {}", demangle(&s.name)),
                    None => format!("pointers to unnamed data in {}", section_name(info, t)),
                },
                (None, None) => "other relocated words".to_string(),
            };
            grouped.entry(name).or_default().push((a, 8));
            i += 1;
        }
    }
    for (name, pieces) in grouped {
        out.push(Derived { name, pieces });
    }
    out
}

fn section_name(info: &ElfInfo, addr: u64) -> &str {
    info.sections
        .iter()
        .find(|s| addr >= s.addr && addr < s.addr + s.size)
        .map_or("no section", |s| s.name.as_str())
}

/// "<T as Trait>" from "<T as Trait>::method".
fn impl_of(method: &str) -> Option<String> {
    if !method.starts_with('<') {
        return None;
    }
    // The matching '>' of the leading '<'.
    let mut depth = 0;
    for (i, c) in method.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let imp = &method[..=i];
                    return imp.contains(" as ").then(|| imp.to_string());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::impl_of;
    #[test]
    fn trait_impls() {
        assert_eq!(
            impl_of("<alloc::vec::Vec<u8> as core::fmt::Debug>::fmt").as_deref(),
            Some("<alloc::vec::Vec<u8> as core::fmt::Debug>")
        );
        assert_eq!(impl_of("core::ptr::drop_in_place<u8>"), None);
        assert_eq!(impl_of("<T>::f"), None);
    }
}
