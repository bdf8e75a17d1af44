//! Limits on password and setup-code guessing: attempts per client network and per
//! account in a sliding window, and a cap on concurrent password hashing. The current
//! password asked for when an account changes its own password is limited per account
//! too, so a stolen session cannot be used to guess it.
//!
//! An attempt is counted when it starts, before any hashing, so a burst of parallel
//! requests cannot all slip through while the first ones are still being checked. A
//! successful login gives back only its own attempt: logging in to one account never
//! clears the failures another account (or another guess) left on the same address.
//! Memory is bounded: each tracker keeps at most [`MAX_TRACKED`] keys and forgets the
//! least recently used one beyond that.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts allowed per client network within [`WINDOW`].
pub const MAX_PER_ADDRESS: usize = 5;
/// Attempts allowed per account within [`WINDOW`], from all addresses together.
pub const MAX_PER_ACCOUNT: usize = 10;
/// The sliding window of both limits.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys (networks or accounts) each tracker remembers at most.
pub const MAX_TRACKED: usize = 4096;
/// Longest account name kept as its own key, in bytes (names have at most 32).
const MAX_ACCOUNT_KEY_BYTES: usize = 64;
/// Password hashes (argon2id, about 19 MiB each) computed at the same time at most.
pub const MAX_CONCURRENT_HASHES: usize = 2;

/// The client network an address counts for: the address itself for IPv4, its /64 for
/// IPv6 (one host usually owns a whole /64 and can pick any address in it). IPv4-mapped
/// IPv6 addresses count as their IPv4 address.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Attempt times per key in a sliding window, for at most [`MAX_TRACKED`] keys.
pub struct Tracker<K: Hash + Eq> {
    max: usize,
    window: Duration,
    entries: Mutex<LruCache<K, Vec<Instant>>>,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    /// A tracker allowing `max` attempts per key within `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Tracker {
            max,
            window,
            entries: Mutex::new(LruCache::new(MAX_TRACKED)),
        }
    }

    /// Counts an attempt for `key` at `now`, or, when `key` has used up its attempts,
    /// returns `Err(seconds until one frees up)` without counting.
    pub fn try_acquire(&self, key: &K, now: Instant) -> Result<(), u64> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let list = match map.get_mut(key) {
            Some(l) => l,
            None => {
                map.insert(key.clone(), Vec::new());
                map.get_mut(key).expect("just inserted")
            }
        };
        list.retain(|t| now.duration_since(*t) < self.window);
        if list.len() >= self.max {
            let wait = self.window.saturating_sub(now.duration_since(list[0]));
            return Err(wait.as_secs().max(1));
        }
        list.push(now);
        Ok(())
    }

    /// Gives back the attempt counted at `at` (a login that succeeded).
    pub fn release(&self, key: &K, at: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(key) {
            if let Some(i) = list.iter().position(|t| *t == at) {
                list.remove(i);
            }
        }
    }

    /// Forgets every attempt of `key`.
    pub fn clear(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// How many keys are remembered (at most [`MAX_TRACKED`]).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an attempt was refused before any checking: answer 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany {
    /// Seconds until an attempt frees up.
    pub retry_after_secs: u64,
    /// Whether the account's limit (rather than the address's) was reached.
    pub account: bool,
}

/// An attempt in progress; give it to [`Limiter::succeeded`] when it succeeds.
#[derive(Debug)]
pub struct Attempt {
    kind: Kind,
    at: Instant,
}

#[derive(Debug)]
enum Kind {
    Login { network: IpAddr, account: String },
    Setup { network: IpAddr },
    CurrentPassword { account: String },
}

/// The limits of the web role: logins per network and per account, setup-code tries per
/// network, and the hashing semaphore.
pub struct Limiter {
    login_networks: Tracker<IpAddr>,
    login_accounts: Tracker<String>,
    setup_networks: Tracker<IpAddr>,
    current_passwords: Tracker<String>,
    hashing: Arc<Semaphore>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// The default limits ([`MAX_PER_ADDRESS`], [`MAX_PER_ACCOUNT`], [`WINDOW`],
    /// [`MAX_CONCURRENT_HASHES`]).
    pub fn new() -> Self {
        Limiter {
            login_networks: Tracker::new(MAX_PER_ADDRESS, WINDOW),
            login_accounts: Tracker::new(MAX_PER_ACCOUNT, WINDOW),
            setup_networks: Tracker::new(MAX_PER_ADDRESS, WINDOW),
            current_passwords: Tracker::new(MAX_PER_ADDRESS, WINDOW),
            hashing: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
        }
    }

    /// Counts a login attempt from `ip` for `account` (a name as typed, compared without
    /// case), before the password is checked.
    ///
    /// # Errors
    /// [`TooMany`] when the network or the account has used up its attempts; then
    /// nothing is counted.
    pub fn begin_login(&self, ip: IpAddr, account: &str) -> Result<Attempt, TooMany> {
        let now = Instant::now();
        let network = client_network(ip);
        // No account name is longer than 32 bytes; a longer one (a request body may hold
        // a megabyte) is kept as one shared key, so it cannot inflate memory.
        let account = if account.len() <= MAX_ACCOUNT_KEY_BYTES {
            account.to_lowercase()
        } else {
            String::from("\0too long")
        };
        self.login_networks
            .try_acquire(&network, now)
            .map_err(|s| TooMany {
                retry_after_secs: s,
                account: false,
            })?;
        if let Err(s) = self.login_accounts.try_acquire(&account, now) {
            self.login_networks.release(&network, now);
            return Err(TooMany {
                retry_after_secs: s,
                account: true,
            });
        }
        Ok(Attempt {
            kind: Kind::Login { network, account },
            at: now,
        })
    }

    /// Counts a setup-code try from `ip`.
    ///
    /// # Errors
    /// [`TooMany`] when the network has used up its tries.
    pub fn begin_setup(&self, ip: IpAddr) -> Result<Attempt, TooMany> {
        let now = Instant::now();
        let network = client_network(ip);
        self.setup_networks
            .try_acquire(&network, now)
            .map_err(|s| TooMany {
                retry_after_secs: s,
                account: false,
            })?;
        Ok(Attempt {
            kind: Kind::Setup { network },
            at: now,
        })
    }

    /// Counts a request of `account` that changes its own password, which the current
    /// password must authorize ([`MAX_PER_ADDRESS`] per [`WINDOW`]).
    ///
    /// # Errors
    /// [`TooMany`] when the account has used up its tries.
    pub fn begin_current_password(&self, account: &str) -> Result<Attempt, TooMany> {
        let now = Instant::now();
        let account = account.to_string();
        self.current_passwords
            .try_acquire(&account, now)
            .map_err(|s| TooMany {
                retry_after_secs: s,
                account: true,
            })?;
        Ok(Attempt {
            kind: Kind::CurrentPassword { account },
            at: now,
        })
    }

    /// The attempt succeeded: it is given back, and the account's failures are
    /// forgotten. Other attempts from the same network still count.
    pub fn succeeded(&self, attempt: Attempt) {
        match &attempt.kind {
            Kind::Login { network, account } => {
                self.login_networks.release(network, attempt.at);
                self.login_accounts.clear(account);
            }
            Kind::Setup { network } => self.setup_networks.release(network, attempt.at),
            Kind::CurrentPassword { account } => {
                self.current_passwords.release(account, attempt.at)
            }
        }
    }

    /// Waits for a hashing slot; hold the permit while argon2 runs.
    pub async fn hashing_permit(&self) -> OwnedSemaphorePermit {
        self.hashing
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// How many networks and accounts are remembered, for tests and metrics.
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.login_networks.len() + self.setup_networks.len(),
            self.login_accounts.len() + self.current_passwords.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        let m: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_network(m), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn another_accounts_login_does_not_clear_an_address() {
        let l = Limiter::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_PER_ADDRESS - 1 {
            l.begin_login(ip, "admin").unwrap();
        }
        // The attacker's own account logs in from the same address...
        let own = l.begin_login(ip, "mallory").unwrap();
        l.succeeded(own);
        // ...and gets back only that one attempt, not the four guesses.
        l.begin_login(ip, "admin").unwrap();
        let e = l.begin_login(ip, "admin").unwrap_err();
        assert!(!e.account && e.retry_after_secs > 0, "{e:?}");
    }

    #[test]
    fn an_account_is_limited_across_addresses() {
        let l = Limiter::new();
        for i in 0..MAX_PER_ACCOUNT {
            let ip = IpAddr::from([192, 0, 2, i as u8]);
            l.begin_login(ip, "Admin").unwrap();
        }
        let e = l
            .begin_login(IpAddr::from([198, 51, 100, 1]), "admin")
            .unwrap_err();
        assert!(e.account, "{e:?}");
        // A refused attempt does not use up the new address's allowance.
        for _ in 0..MAX_PER_ADDRESS {
            l.begin_login(IpAddr::from([198, 51, 100, 1]), "bob")
                .unwrap();
        }
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let l = Limiter::new();
        for i in 0..(MAX_TRACKED as u32 * 5) {
            let v6 = std::net::Ipv6Addr::from(u128::from(i) << 64);
            let _ = l.begin_login(IpAddr::V6(v6), &format!("user{i}"));
            let _ = l.begin_setup(IpAddr::V4(i.into()));
        }
        for i in 0..(MAX_TRACKED as u32) {
            let long = format!("{i}{}", "x".repeat(100_000));
            let _ = l.begin_login(IpAddr::V4((i + 1_000_000).into()), &long);
        }
        let kept: usize = l
            .login_accounts
            .entries
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| k.len())
            .sum();
        assert!(kept < MAX_TRACKED * 100, "account keys hold {kept} bytes");
        let (nets, accounts) = l.tracked();
        assert!(nets <= 2 * MAX_TRACKED, "{nets}");
        assert!(accounts <= 2 * MAX_TRACKED, "{accounts}");
    }

    #[test]
    fn window_slides() {
        let t: Tracker<u8> = Tracker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        t.try_acquire(&1, t0).unwrap();
        t.try_acquire(&1, t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(
            t.try_acquire(&1, t0 + Duration::from_secs(5)),
            Err(5),
            "wait until the first attempt leaves the window"
        );
        t.try_acquire(&1, t0 + Duration::from_secs(11)).unwrap();
    }
}
