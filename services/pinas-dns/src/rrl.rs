//! Response-rate limiting over UDP, after BIND 9's RRL: each client network (a /24 for
//! IPv4, a /56 for IPv6, as BIND's defaults group them) has a token bucket holding one
//! second of `responses_per_sec`. Over the limit a query is dropped, except that every
//! `slip`-th one gets an empty truncated (TC) answer: a real client behind a busy
//! network retries over TCP, which is never limited, while a spoofed flood gains nothing
//! (the TC answer is no larger than the query).
//!
//! Memory is bounded: at most [`MAX_NETWORKS`] networks are tracked; when the table is
//! full, networks idle for a second (whose buckets are full again) are forgotten, and if
//! that frees nothing the new network is answered untracked.
//!
//! Not for: which clients are answered at all ([`crate::networks`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Most client networks tracked at once (about 32 bytes each).
pub const MAX_NETWORKS: usize = 32_768;

const SHARDS: usize = 16;

/// What to do with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: answer it.
    Answer,
    /// Over the limit: send nothing.
    Drop,
    /// Over the limit: send an empty answer with TC set.
    Slip,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f32,
    last_ms: u32,
    over: u32,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<u64, Bucket>,
}

/// The per-network token buckets; shared by every UDP loop.
pub struct RateLimiter {
    shards: [Mutex<Shard>; SHARDS],
    per_sec: AtomicU32,
    slip: AtomicU32,
    epoch: Instant,
}

/// The network a client counts in: its /24 (IPv4) or /56 (IPv6), tagged by family.
pub fn network_key(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(a) => (1 << 63) | u64::from(u32::from(a) >> 8),
        IpAddr::V6(a) => (u128::from(a) >> 72) as u64,
    }
}

impl RateLimiter {
    /// A limiter allowing `per_sec` responses per second per network (0: no limit), with
    /// a TC answer for every `slip`-th query over it (0: never).
    pub fn new(per_sec: u32, slip: u32) -> Self {
        RateLimiter {
            shards: Default::default(),
            per_sec: AtomicU32::new(per_sec),
            slip: AtomicU32::new(slip),
            epoch: Instant::now(),
        }
    }

    /// Changes the limit and the slip; buckets already tracked keep their tokens.
    pub fn set(&self, per_sec: u32, slip: u32) {
        self.per_sec.store(per_sec, Ordering::Relaxed);
        self.slip.store(slip, Ordering::Relaxed);
    }

    /// Networks tracked now.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).buckets.len())
            .sum()
    }

    /// Takes a token for a query from `ip` at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Verdict {
        let rate = self.per_sec.load(Ordering::Relaxed);
        if rate == 0 {
            return Verdict::Answer;
        }
        let key = network_key(ip);
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u32;
        // Fibonacci hashing spreads neighbouring networks over the shards.
        let shard = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS;
        let mut s = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        let cap = rate as f32;
        if !s.buckets.contains_key(&key) && s.buckets.len() >= MAX_NETWORKS / SHARDS {
            s.buckets
                .retain(|_, b| now_ms.wrapping_sub(b.last_ms) < 1000);
            if s.buckets.len() >= MAX_NETWORKS / SHARDS {
                return Verdict::Answer;
            }
        }
        let b = s.buckets.entry(key).or_insert(Bucket {
            tokens: cap,
            last_ms: now_ms,
            over: 0,
        });
        let elapsed = now_ms.wrapping_sub(b.last_ms) as f32 / 1000.0;
        b.tokens = (b.tokens + elapsed * cap).min(cap);
        b.last_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Answer;
        }
        b.over = b.over.wrapping_add(1);
        let slip = self.slip.load(Ordering::Relaxed);
        if slip > 0 && b.over.is_multiple_of(slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_per_network_with_slip_and_refill() {
        let r = RateLimiter::new(10, 2);
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_24: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "192.0.3.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(r.check(a, t), Verdict::Answer);
        }
        assert_eq!(r.check(same_24, t), Verdict::Drop);
        assert_eq!(r.check(a, t), Verdict::Slip);
        assert_eq!(r.check(a, t), Verdict::Drop);
        assert_eq!(r.check(other, t), Verdict::Answer);
        // A tenth of a second later, one token is back.
        let later = t + Duration::from_millis(100);
        assert_eq!(r.check(a, later), Verdict::Answer);
        assert_ne!(r.check(a, later), Verdict::Answer);
        r.set(0, 2);
        assert_eq!(r.check(a, later), Verdict::Answer);
    }

    #[test]
    fn ipv6_counts_per_56_and_memory_is_bounded() {
        assert_eq!(
            network_key("2001:db8:0:1200::1".parse().unwrap()),
            network_key("2001:db8:0:12ff:1::2".parse().unwrap())
        );
        assert_ne!(
            network_key("2001:db8:0:1300::1".parse().unwrap()),
            network_key("2001:db8:0:1200::1".parse().unwrap())
        );
        let r = RateLimiter::new(5, 0);
        let t = Instant::now();
        for i in 0..(MAX_NETWORKS as u32 * 2) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i << 8));
            r.check(ip, t);
        }
        assert!(r.tracked() <= MAX_NETWORKS, "{}", r.tracked());
    }
}
