//! The pairing token the NAS presents (`Authorization: Bearer <token>`) on the handshake
//! endpoints, and the limit on how often a client may call them.
//!
//! The token is 32 random bytes as hex, made by [`Pairing::rotate`] and shown once: only
//! its SHA-256 is kept, in `<role dir>/pairing-token` (0600, written atomically), so it
//! can never be shown, returned or logged again. Rotating makes the old token invalid at
//! once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::error::CompanionError;

/// The file holding the token's hash, in the role's folder.
pub const TOKEN_FILE: &str = "pairing-token";

/// The pairing token's hash, loaded at start and swapped on rotation.
pub struct Pairing {
    path: PathBuf,
    /// `(sha256 hex, created Unix ms)`.
    current: ArcSwapOption<(String, i64)>,
}

impl Pairing {
    /// Loads `<dir>/pairing-token` if there is one.
    ///
    /// # Errors
    /// 503 `companion_state_unavailable` when the file exists but cannot be read.
    pub fn load(dir: &Path) -> Result<Pairing, CompanionError> {
        let path = dir.join(TOKEN_FILE);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => parse_file(&text).map(std::sync::Arc::new),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(CompanionError::unavailable(
                    "companion_state_unavailable",
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        Ok(Pairing {
            path,
            current: ArcSwapOption::new(current),
        })
    }

    /// When the current token was made (Unix ms), `None` when there is none.
    pub fn created_at_ms(&self) -> Option<i64> {
        self.current.load().as_ref().map(|c| c.1)
    }

    /// Makes a new token, stores its hash (0600, atomically) and returns the token: the
    /// only time it is seen. The previous token stops working.
    ///
    /// # Errors
    /// 503 `companion_state_unavailable` when the file cannot be written (the old token
    /// then stays valid).
    pub fn rotate(&self, now_ms: i64) -> Result<String, CompanionError> {
        let token = pinas_core::auth::new_token();
        let hash = pinas_core::auth::token_hash(&token);
        pinas_core::fsutil::write_atomic(
            &self.path,
            format!("{hash} {now_ms}\n").as_bytes(),
            0o600,
        )
        .map_err(|e| {
            CompanionError::unavailable(
                "companion_state_unavailable",
                format!("cannot write {}: {e}", self.path.display()),
            )
        })?;
        self.current
            .store(Some(std::sync::Arc::new((hash, now_ms))));
        Ok(token)
    }

    /// Checks an `Authorization` header value.
    ///
    /// # Errors
    /// 401 when it is missing, not `Bearer <token>`, no token exists yet, or the token is
    /// not the current one.
    pub fn verify(&self, authorization: Option<&str>) -> Result<(), CompanionError> {
        let given = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CompanionError::unauthorized(
                    "the pairing token is missing (Authorization: Bearer <token>)",
                )
            })?;
        let current = self.current.load();
        let Some(cur) = current.as_ref() else {
            return Err(CompanionError::unauthorized(
                "this companion has no pairing token yet: make one in its settings",
            ));
        };
        let hash = pinas_core::auth::token_hash(given);
        // Both are 64 hex characters; compare all of them so the time says nothing.
        let same = hash.len() == cur.0.len()
            && hash
                .bytes()
                .zip(cur.0.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(CompanionError::unauthorized("wrong pairing token"))
        }
    }
}

fn parse_file(text: &str) -> Option<(String, i64)> {
    let mut it = text.split_whitespace();
    let hash = it.next()?;
    let at = it.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (hash.to_string(), at))
}

/// Requests a client may make to the token endpoints per [`WINDOW`].
pub const MAX_REQUESTS: usize = 60;
/// Failed token checks a client may have per [`WINDOW`]; beyond, 429 until they age out.
pub const MAX_FAILURES: usize = 5;
/// The sliding window of both limits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most; beyond, the ones with nothing in the window are dropped.
const MAX_CLIENTS: usize = 1024;

#[derive(Default)]
struct Client {
    requests: Vec<Instant>,
    failures: Vec<Instant>,
}

/// Per-client limits on the token endpoints. The client is the address the web role
/// names in `x-pinas-client` (`local` for callers on the socket itself).
#[derive(Default)]
pub struct Limiter {
    clients: Mutex<HashMap<String, Client>>,
}

impl Limiter {
    /// Counts a request from `client` and refuses it when the client is over either
    /// limit.
    ///
    /// # Errors
    /// 429 with the seconds until the oldest counted attempt leaves the window.
    pub fn begin(&self, client: &str, now: Instant) -> Result<(), CompanionError> {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_CLIENTS && !map.contains_key(client) {
            map.retain(|_, c| c.requests.iter().any(|t| now.duration_since(*t) < WINDOW));
            if map.len() >= MAX_CLIENTS {
                map.clear();
            }
        }
        let c = map.entry(client.to_string()).or_default();
        c.requests.retain(|t| now.duration_since(*t) < WINDOW);
        c.failures.retain(|t| now.duration_since(*t) < WINDOW);
        let over = if c.failures.len() >= MAX_FAILURES {
            Some((c.failures[0], "failed pairing-token checks"))
        } else if c.requests.len() >= MAX_REQUESTS {
            Some((c.requests[0], "requests"))
        } else {
            None
        };
        if let Some((oldest, what)) = over {
            let retry = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs() + 1;
            return Err(CompanionError::TooMany {
                message: format!("too many {what} from this client; try again in {retry} s"),
                retry_secs: retry,
            });
        }
        c.requests.push(now);
        Ok(())
    }

    /// Counts a failed token check of `client`.
    pub fn failed(&self, client: &str, now: Instant) {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(client.to_string())
            .or_default()
            .failures
            .push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_shown_once_kept_as_a_private_hash_and_rotated() {
        let d = tempfile::tempdir().unwrap();
        let p = Pairing::load(d.path()).unwrap();
        assert!(p.verify(Some("Bearer x")).is_err(), "no token yet");
        let t1 = p.rotate(1000).unwrap();
        assert_eq!(t1.len(), 64);
        let file = std::fs::read_to_string(d.path().join(TOKEN_FILE)).unwrap();
        assert!(!file.contains(&t1), "the token itself is never stored");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        p.verify(Some(&format!("Bearer {t1}"))).unwrap();
        p.verify(Some(&format!("bearer  {t1} "))).unwrap();
        assert!(p.verify(None).is_err());
        assert!(p.verify(Some(&t1)).is_err(), "scheme required");
        // A restart finds it; a rotation ends the old one.
        let p = Pairing::load(d.path()).unwrap();
        assert_eq!(p.created_at_ms(), Some(1000));
        p.verify(Some(&format!("Bearer {t1}"))).unwrap();
        let t2 = p.rotate(2000).unwrap();
        assert!(p.verify(Some(&format!("Bearer {t1}"))).is_err());
        p.verify(Some(&format!("Bearer {t2}"))).unwrap();
    }

    #[test]
    fn failures_and_floods_are_limited_per_client() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            l.begin("10.0.0.9", t0).unwrap();
            l.failed("10.0.0.9", t0);
        }
        match l.begin("10.0.0.9", t0) {
            Err(CompanionError::TooMany { retry_secs, .. }) => assert!(retry_secs >= 60),
            other => panic!("{other:?}"),
        }
        l.begin("10.0.0.10", t0).unwrap();
        l.begin("10.0.0.9", t0 + WINDOW + Duration::from_secs(1))
            .unwrap();
        for _ in 1..MAX_REQUESTS {
            l.begin("10.0.0.10", t0).unwrap();
        }
        assert!(l.begin("10.0.0.10", t0).is_err());
    }
}
