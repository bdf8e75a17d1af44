//! The Pi-hole v5 API token and the small parts of Pi-hole's `api.php` behaviour that
//! PiNAS follows (Pi-hole v5: core v5.18, web interface v5.21, FTL v5.25, the last v5
//! releases; `api.php` and `api_FTL.php` of the web interface).
//!
//! The token is what Pi-hole v5 calls the API token (there the double SHA-256 of the web
//! password; here 32 random bytes): 64 hexadecimal characters, passed as `auth=` in the
//! query string. With it, `?enable` and `?disable[=seconds]` change the blocking switch;
//! without it (missing or wrong) they do nothing, as in Pi-hole.

use pinas_core::db::Db;
use pinas_core::events::now_ms;
use pinas_core::Error;
use rusqlite::OptionalExtension;

/// Who changes blocking through the Pi-hole API, in `dns.blocking.changed` events.
pub const BY_PIHOLE_API: &str = "pihole-api";

/// The saved token, creating one the first time.
///
/// # Errors
/// [`Error`] when the database cannot be read or written.
pub fn load_or_create(db: &Db) -> Result<String, Error> {
    let got: Option<String> = db
        .conn()
        .query_row("SELECT token FROM dns_pihole_token WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| Error::internal(format!("reading the Pi-hole API token: {e}")))?;
    match got {
        Some(t) => Ok(t),
        None => regenerate(db),
    }
}

/// Replaces the token with a new random one (64 hex characters) and returns it; the old
/// one stops working at once.
///
/// # Errors
/// [`Error`] when the database cannot be written.
pub fn regenerate(db: &Db) -> Result<String, Error> {
    let token = pinas_core::auth::new_token();
    db.conn()
        .execute(
            "INSERT INTO dns_pihole_token (id, token, created_at) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET token = excluded.token, created_at = excluded.created_at",
            rusqlite::params![token, now_ms()],
        )
        .map_err(|e| Error::internal(format!("saving the Pi-hole API token: {e}")))?;
    Ok(token)
}

/// Compares two tokens in time that depends only on their lengths, so a client cannot
/// find the token byte by byte from response times.
pub fn tokens_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() || b.is_empty() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The seconds in `?disable=...`, read as PHP's `intval` reads them (Pi-hole v5 does):
/// leading digits, anything else 0. 0 or less means "until enabled again"; `None` then.
pub fn disable_secs(v: &str) -> Option<u64> {
    let v = v.trim_start();
    let (neg, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = n.parse().unwrap_or(0);
    (!neg && n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_intval() {
        assert!(tokens_match("ab", "ab"));
        assert!(!tokens_match("ab", "ac"));
        assert!(!tokens_match("a", "ab"));
        assert!(!tokens_match("", ""));
        assert_eq!(disable_secs("300"), Some(300));
        assert_eq!(disable_secs("300s"), Some(300));
        assert_eq!(disable_secs(""), None);
        assert_eq!(disable_secs("True"), None);
        assert_eq!(disable_secs("0"), None);
        assert_eq!(disable_secs("-5"), None);
    }
}
