//! Domain names as the DNS role stores and compares them, and a compact set of a million.
//!
//! A name here is lower-case ASCII without the trailing dot (`ads.example.com`); the root
//! is the empty string. [`normalize`] turns user or list input into that form and rejects
//! what is not a valid host name (RFC 1035 section 2.3.4 lengths; letters, digits, `-`
//! and `_`, which real blocklists use).
//!
//! [`DomainSet`] holds blocked names in one byte arena, sorted and deduplicated, searched
//! by binary search: about 30 bytes per name with no per-name allocation, where a
//! `HashSet<String>` costs three times that.

use std::cmp::Ordering;

/// Longest name in text form (RFC 1035: 255 octets on the wire, 253 characters as text).
pub const MAX_NAME_LEN: usize = 253;

/// Lower-cases `input`, strips one trailing dot, and checks it is a valid host name.
///
/// Returns `None` for empty input, labels longer than 63 bytes, names longer than 253,
/// empty labels and characters other than letters, digits, `-` and `_`. A leading `*.` is
/// not accepted here; wildcard syntax is handled by the callers that allow it.
pub fn normalize(input: &str) -> Option<String> {
    let s = input.strip_suffix('.').unwrap_or(input);
    if !is_valid(s) {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// True when `s` (without trailing dot) is a valid host name in any case.
pub fn is_valid(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return false;
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return false;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    true
}

/// The parents of `name`, nearest first: `a.b.c` gives `b.c`, then `c`.
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(move |(i, _)| &name[i + 1..])
}

/// How an entry of a [`DomainSet`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Only the name itself (hosts and plain domain lists, as Pi-hole reads them).
    Exact,
    /// The name and every name below it (`||name^` and `*.name`).
    Subtree,
}

/// Builds a [`DomainSet`]: add names in any order, then [`DomainSetBuilder::build`].
#[derive(Default)]
pub struct DomainSetBuilder {
    arena: Vec<u8>,
    /// (start, len, subtree) per added name; sorted and deduplicated in `build`.
    entries: Vec<(u32, u8, bool)>,
}

impl DomainSetBuilder {
    /// An empty builder with room for about `names` names.
    pub fn with_capacity(names: usize) -> Self {
        DomainSetBuilder {
            arena: Vec::with_capacity(names * 24),
            entries: Vec::with_capacity(names),
        }
    }

    /// Adds a normalized name (see [`normalize`]). Names longer than 253 bytes are ignored.
    pub fn insert(&mut self, name: &str, how: Match) {
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || self.arena.len() > u32::MAX as usize - 256
        {
            return;
        }
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(name.as_bytes());
        self.entries
            .push((start, name.len() as u8, how == Match::Subtree));
    }

    /// Names added so far, duplicates included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts, merges duplicates (a name that is both exact and subtree becomes subtree)
    /// and returns the set. The names stay where they were added, so building needs no
    /// second copy of them (a 1 M name set peaks at its final size, not twice it); only
    /// when duplicates waste more than an eighth of the arena are the names repacked.
    pub fn build(self) -> DomainSet {
        let DomainSetBuilder { arena, mut entries } = self;
        let key = |_: &[u8], e: &(u32, u8, bool)| e.0 as usize..e.0 as usize + e.1 as usize;
        entries.sort_unstable_by(|a, b| {
            arena[key(&arena, a)]
                .cmp(&arena[key(&arena, b)])
                .then(b.2.cmp(&a.2))
        });
        // `a` is the kept (earlier) one; it already has the subtree flag if any did.
        entries.dedup_by(|b, a| arena[key(&arena, a)] == arena[key(&arena, b)]);
        let used: usize = entries.iter().map(|e| e.1 as usize).sum();
        let (arena, entries) = if arena.len() - used > arena.len() / 8 {
            let mut packed = Vec::with_capacity(used);
            let mut moved = Vec::with_capacity(entries.len());
            for e in &entries {
                moved.push((packed.len() as u32, e.1, e.2));
                packed.extend_from_slice(&arena[key(&arena, e)]);
            }
            (packed, moved)
        } else {
            (arena, entries)
        };
        DomainSet {
            arena: arena.into_boxed_slice(),
            index: entries.into_boxed_slice(),
        }
    }
}

/// A sorted, deduplicated, immutable set of domain names.
#[derive(Default)]
pub struct DomainSet {
    arena: Box<[u8]>,
    /// (start in `arena`, length, subtree) per name, sorted by name.
    index: Box<[(u32, u8, bool)]>,
}

impl DomainSet {
    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the set holds no name.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Heap bytes the set uses.
    pub fn heap_bytes(&self) -> usize {
        self.arena.len() + std::mem::size_of_val(&*self.index)
    }

    fn get(&self, i: usize) -> &[u8] {
        let (start, len, _) = self.index[i];
        &self.arena[start as usize..start as usize + len as usize]
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.index.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    fn is_subtree(&self, i: usize) -> bool {
        self.index[i].2
    }

    /// The entry that matches normalized `name`: the name itself, or the nearest parent
    /// added as [`Match::Subtree`]. Returns the matching entry's name.
    pub fn matches<'a>(&'a self, name: &str) -> Option<&'a str> {
        if self.is_empty() {
            return None;
        }
        if let Some(i) = self.find(name.as_bytes()) {
            return Some(self.entry(i));
        }
        for parent in parents(name) {
            if let Some(i) = self.find(parent.as_bytes()) {
                if self.is_subtree(i) {
                    return Some(self.entry(i));
                }
            }
        }
        None
    }

    fn entry(&self, i: usize) -> &str {
        // Only valid ASCII names are inserted.
        std::str::from_utf8(self.get(i)).unwrap_or("")
    }

    /// Every name with its match kind, in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Match)> {
        (0..self.len()).map(move |i| {
            let how = if self.is_subtree(i) {
                Match::Subtree
            } else {
                Match::Exact
            };
            (self.entry(i), how)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_rejects_bad_names() {
        assert_eq!(
            normalize("Ads.Example.COM.").as_deref(),
            Some("ads.example.com")
        );
        assert_eq!(normalize("_dmarc.x.org").as_deref(), Some("_dmarc.x.org"));
        for bad in [
            "",
            ".",
            "a..b",
            "a b",
            "ex*ample.com",
            &"a".repeat(64),
            "é.com",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn set_exact_subtree_and_dedup() {
        let mut b = DomainSetBuilder::default();
        b.insert("ads.example.com", Match::Exact);
        b.insert("tracker.net", Match::Subtree);
        b.insert("ads.example.com", Match::Subtree);
        b.insert("only.exact.org", Match::Exact);
        b.insert("only.exact.org", Match::Exact);
        let s = b.build();
        assert_eq!(s.len(), 3);
        assert_eq!(s.matches("ads.example.com"), Some("ads.example.com"));
        assert_eq!(s.matches("x.ads.example.com"), Some("ads.example.com"));
        assert_eq!(s.matches("a.b.tracker.net"), Some("tracker.net"));
        assert_eq!(s.matches("only.exact.org"), Some("only.exact.org"));
        assert_eq!(s.matches("sub.only.exact.org"), None);
        assert_eq!(s.matches("example.com"), None);
        assert_eq!(s.matches("net"), None);
    }

    #[test]
    fn many_duplicates_are_repacked() {
        let mut b = DomainSetBuilder::default();
        for _ in 0..10 {
            for i in 0..100 {
                b.insert(&format!("n{i}.example"), Match::Exact);
            }
        }
        let s = b.build();
        assert_eq!(s.len(), 100);
        assert!(s.heap_bytes() < 100 * (12 + 8) + 64, "{}", s.heap_bytes());
        assert!(s.matches("n42.example").is_some());
        let names: Vec<_> = s.iter().map(|(n, _)| n.to_string()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn parents_nearest_first() {
        assert_eq!(parents("a.b.c").collect::<Vec<_>>(), ["b.c", "c"]);
        assert_eq!(parents("c").count(), 0);
    }
}
