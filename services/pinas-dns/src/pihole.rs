//! The Pi-hole v5 API token and the small parts of Pi-hole's `api.php` behaviour that
//! PiNAS follows (Pi-hole v5: core v5.18, web interface v5.21, FTL v5.25, the last v5
//! releases; `api.php` and `api_FTL.php` of the web interface).
//!
//! The token is what Pi-hole v5 calls the API token (there the double SHA-256 of the web
//! password; here 32 random bytes): 64 hexadecimal characters, passed as `auth=` in the
//! query string. With it, `?enable` and `?disable[=seconds]` change the blocking switch;
//! without it (missing or wrong) they do nothing, as in Pi-hole.

use std::path::Path;

use pinas_core::Error;

/// Who changes blocking through the Pi-hole API, in `dns.blocking.changed` events.
pub const BY_PIHOLE_API: &str = "pihole-api";

/// The token's file inside the role's folder; mode 0600.
pub const TOKEN_FILE: &str = "pihole-token";

/// The saved token (`<dir>/pihole-token`), creating one the first time.
///
/// # Errors
/// [`Error`] naming the file when it cannot be read or written.
pub fn load_or_create(dir: &Path) -> Result<String, Error> {
    let path = dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => regenerate(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => regenerate(dir),
        Err(e) => Err(Error::internal(format!(
            "reading the Pi-hole API token {}: {e}",
            path.display()
        ))),
    }
}

/// Replaces the token with a new random one (64 hex characters) and returns it; the old
/// one stops working at once.
///
/// # Errors
/// [`Error`] naming the file when it cannot be written.
pub fn regenerate(dir: &Path) -> Result<String, Error> {
    let token = pinas_core::auth::new_token();
    save_token(dir, &token)?;
    Ok(token)
}

/// Writes `token` to `<dir>/pihole-token` atomically, mode 0600.
///
/// # Errors
/// [`Error`] naming the file when it cannot be written.
pub fn save_token(dir: &Path, token: &str) -> Result<(), Error> {
    let path = dir.join(TOKEN_FILE);
    pinas_core::fsutil::write_atomic(&path, format!("{token}\n").as_bytes(), 0o600).map_err(|e| {
        Error::internal(format!(
            "saving the Pi-hole API token {}: {e}",
            path.display()
        ))
    })
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
