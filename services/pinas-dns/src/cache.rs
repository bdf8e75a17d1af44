//! The answer cache: TTL-honouring, with min/max TTL, negative caching and a size cap.
//!
//! Entries are keyed by (lower-case name, type). An entry lives for the smallest TTL of
//! its records, clamped to `[min_ttl, max_ttl]`; NXDOMAIN and empty (NODATA) answers live
//! for the SOA's negative TTL (RFC 2308 section 5: `min(SOA TTL, SOA MINIMUM)`), capped by
//! `negative_ttl`. SERVFAIL and other errors are not cached. On a hit, each record's TTL
//! is decreased by the time spent in the cache. Eviction when full is CLOCK-Pro
//! (`quick_cache`), which keeps hot names under a scan of one-off names.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

/// A cached answer.
#[derive(Debug)]
pub struct Entry {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    stored: Instant,
    lifetime: Duration,
}

impl Entry {
    /// Seconds left before the entry expires, or `None` when it has.
    pub fn remaining_secs(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored);
        (age < self.lifetime).then(|| (self.lifetime - age).as_secs() as u32)
    }

    /// The records with TTLs lowered by the time spent in the cache.
    pub fn aged(&self, now: Instant) -> Option<(Vec<Record>, Vec<Record>)> {
        let left = self.remaining_secs(now)?;
        let age = self.lifetime.as_secs() as u32 - left;
        let fix = |rs: &[Record]| {
            rs.iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(age).max(1).min(left.max(1));
                    r
                })
                .collect()
        };
        Some((fix(&self.answers), fix(&self.authorities)))
    }
}

/// Cache limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub capacity: usize,
    pub min_ttl_secs: u32,
    pub max_ttl_secs: u32,
    pub negative_ttl_secs: u32,
}

type Key = (Box<str>, u16);

/// Most entries a thread keeps in front of the shared cache.
const LOCAL_MAX: usize = 4096;

/// A thread's front of the shared cache. At a few hundred thousand queries per second,
/// touching the shared cache's shard locks (memory another core just wrote) costs more
/// than the lookup itself; hot names are found here instead. Emptied whenever the shared
/// cache is cleared (records, rules or lists changed) or fills up.
#[derive(Default)]
struct Local {
    owner: usize,
    generation: u64,
    by_type: HashMap<u16, HashMap<Box<str>, Arc<Entry>>>,
    len: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// The cache.
pub struct Cache {
    inner: quick_cache::sync::Cache<Key, Arc<Entry>>,
    /// Swapped whole by [`Cache::set_limits`] when the settings change.
    limits: arc_swap::ArcSwap<Limits>,
    id: usize,
    generation: AtomicU64,
}

impl Cache {
    /// An empty cache holding at most `limits.capacity` answers.
    pub fn new(limits: Limits) -> Self {
        Cache {
            inner: quick_cache::sync::Cache::new(limits.capacity.max(1)),
            limits: arc_swap::ArcSwap::from_pointee(limits),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// The live entry for (`name`, `qtype`), if any; an expired one is removed.
    pub fn get(&self, name: &str, qtype: RecordType, now: Instant) -> Option<Arc<Entry>> {
        let t = u16::from(qtype);
        let generation = self.generation.load(Ordering::Acquire);
        let local = LOCAL.with_borrow_mut(|l| {
            if l.owner != self.id || l.generation != generation {
                l.by_type.clear();
                l.len = 0;
                l.owner = self.id;
                l.generation = generation;
            }
            let m = l.by_type.get_mut(&t)?;
            match m.get(name) {
                Some(e) if e.remaining_secs(now).is_some() => Some(e.clone()),
                Some(_) => {
                    m.remove(name);
                    l.len -= 1;
                    None
                }
                None => None,
            }
        });
        if local.is_some() {
            return local;
        }
        let key: Key = (name.into(), t);
        let e = self.inner.get(&key)?;
        if e.remaining_secs(now).is_none() {
            self.inner.remove(&key);
            return None;
        }
        LOCAL.with_borrow_mut(|l| {
            if l.owner == self.id && l.generation == generation {
                if l.len >= LOCAL_MAX {
                    l.by_type.clear();
                    l.len = 0;
                }
                if l.by_type
                    .entry(t)
                    .or_default()
                    .insert(key.0, e.clone())
                    .is_none()
                {
                    l.len += 1;
                }
            }
        });
        Some(e)
    }

    /// Stores `answer` for (`name`, `qtype`) when it is cacheable; returns whether it was.
    pub fn insert(&self, name: &str, qtype: RecordType, answer: &Message, now: Instant) -> bool {
        let Some(secs) = self.lifetime_secs(answer) else {
            return false;
        };
        if secs == 0 {
            return false;
        }
        let limits = self.limits.load();
        let clamp = |r: &Record| {
            let mut r = r.clone();
            r.ttl = r.ttl.clamp(
                limits.min_ttl_secs,
                limits.max_ttl_secs.max(limits.min_ttl_secs).max(1),
            );
            r
        };
        let entry = Entry {
            rcode: answer.metadata.response_code,
            answers: answer.answers.iter().map(clamp).collect(),
            authorities: answer.authorities.iter().map(clamp).collect(),
            stored: now,
            lifetime: Duration::from_secs(secs.into()),
        };
        self.inner
            .insert((name.into(), u16::from(qtype)), Arc::new(entry));
        true
    }

    fn lifetime_secs(&self, m: &Message) -> Option<u32> {
        let l = self.limits.load();
        match m.metadata.response_code {
            ResponseCode::NoError if !m.answers.is_empty() => {
                let min = m.answers.iter().map(|r| r.ttl).min()?;
                Some(min.clamp(l.min_ttl_secs, l.max_ttl_secs))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let soa = m.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                });
                // Without an SOA, RFC 2308 section 5 says not to cache; a short time
                // still shields upstreams from bursts.
                let ttl = soa.unwrap_or(l.negative_ttl_secs.min(60));
                Some(
                    ttl.min(l.negative_ttl_secs)
                        .clamp(l.min_ttl_secs.min(l.negative_ttl_secs), l.max_ttl_secs),
                )
            }
            _ => None,
        }
    }

    /// Number of entries (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        **self.limits.load()
    }

    /// Applies new limits: the size cap changes at once (the least useful entries go when
    /// it shrinks) and, when a TTL bound changed, every entry is dropped, since entries
    /// were stored with the old bounds.
    pub fn set_limits(&self, limits: Limits) {
        let old = self.limits();
        self.limits.store(Arc::new(limits));
        if old.capacity != limits.capacity {
            self.inner.set_capacity(limits.capacity.max(1) as u64);
        }
        if (old.min_ttl_secs, old.max_ttl_secs, old.negative_ttl_secs)
            != (
                limits.min_ttl_secs,
                limits.max_ttl_secs,
                limits.negative_ttl_secs,
            )
        {
            self.clear();
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.inner.clear();
        self.generation.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::Name;

    fn limits() -> Limits {
        Limits {
            capacity: 100,
            min_ttl_secs: 10,
            max_ttl_secs: 3600,
            negative_ttl_secs: 300,
        }
    }

    fn answer(ttl: u32) -> Message {
        let mut m = Message::query();
        m.add_answer(Record::from_rdata(
            Name::from_ascii("a.example.").unwrap(),
            ttl,
            RData::A(A::new(1, 2, 3, 4)),
        ));
        m
    }

    #[test]
    fn ttl_is_clamped_and_aged() {
        let c = Cache::new(limits());
        let t0 = Instant::now();
        assert!(c.insert("a.example", RecordType::A, &answer(2), t0));
        // min_ttl 10 raised the lifetime from 2 to 10 seconds.
        let e = c
            .get("a.example", RecordType::A, t0 + Duration::from_secs(5))
            .unwrap();
        let (ans, _) = e.aged(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(ans[0].ttl, 5);
        assert!(c
            .get("a.example", RecordType::A, t0 + Duration::from_secs(11))
            .is_none());
        c.insert("b.example", RecordType::A, &answer(100_000), t0);
        let e = c.get("b.example", RecordType::A, t0).unwrap();
        assert_eq!(e.answers[0].ttl, 3600);
    }

    #[test]
    fn negative_answers_use_soa_and_errors_are_not_cached() {
        let c = Cache::new(limits());
        let t0 = Instant::now();
        let mut nx = Message::query();
        nx.metadata.response_code = ResponseCode::NXDomain;
        let soa = SOA::new(Name::root(), Name::root(), 1, 1, 1, 1, 30);
        nx.add_authority(Record::from_rdata(
            Name::from_ascii("example.").unwrap(),
            900,
            RData::SOA(soa),
        ));
        assert!(c.insert("nx.example", RecordType::A, &nx, t0));
        let e = c.get("nx.example", RecordType::A, t0).unwrap();
        assert_eq!(e.remaining_secs(t0), Some(30));
        let mut sf = Message::query();
        sf.metadata.response_code = ResponseCode::ServFail;
        assert!(!c.insert("sf.example", RecordType::A, &sf, t0));
    }

    #[test]
    fn clear_reaches_the_thread_front() {
        let c = Cache::new(limits());
        let t0 = Instant::now();
        c.insert("a.example", RecordType::A, &answer(300), t0);
        assert!(c.get("a.example", RecordType::A, t0).is_some());
        assert!(
            c.get("a.example", RecordType::A, t0).is_some(),
            "second hit from the front"
        );
        c.clear();
        assert!(c.get("a.example", RecordType::A, t0).is_none());
        let other = Cache::new(limits());
        assert!(
            other.get("a.example", RecordType::A, t0).is_none(),
            "fronts are per cache"
        );
        // Expiry applies to the front too.
        c.insert("b.example", RecordType::A, &answer(20), t0);
        assert!(c.get("b.example", RecordType::A, t0).is_some());
        assert!(c
            .get("b.example", RecordType::A, t0 + Duration::from_secs(21))
            .is_none());
    }

    #[test]
    fn size_cap() {
        let c = Cache::new(Limits {
            capacity: 50,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..1000 {
            c.insert(&format!("n{i}.example"), RecordType::A, &answer(300), t0);
        }
        assert!(c.len() <= 60, "{}", c.len());
        c.set_limits(Limits {
            capacity: 10,
            ..limits()
        });
        for i in 0..100 {
            c.insert(&format!("m{i}.example"), RecordType::A, &answer(300), t0);
        }
        assert!(c.len() <= 15, "shrunk: {}", c.len());
    }

    #[test]
    fn new_ttl_bounds_drop_old_entries() {
        let c = Cache::new(limits());
        let t0 = Instant::now();
        c.insert("a.example", RecordType::A, &answer(300), t0);
        c.set_limits(Limits {
            max_ttl_secs: 60,
            ..limits()
        });
        assert!(c.get("a.example", RecordType::A, t0).is_none());
        c.insert("a.example", RecordType::A, &answer(300), t0);
        let e = c.get("a.example", RecordType::A, t0).unwrap();
        assert_eq!(e.answers[0].ttl, 60);
    }
}
