//! The Pi-hole v5 API token and the small parts of Pi-hole's `api.php` behaviour that
//! PiNAS follows (Pi-hole v5: core v5.18, web interface v5.21, FTL v5.25, the last v5
//! releases; `api.php` and `api_FTL.php` of the web interface).
//!
//! The token is what Pi-hole v5 calls the API token (there the double SHA-256 of the web
//! password; here 32 random bytes): 64 hexadecimal characters, passed as `auth=` in the
//! query string. With it, `?enable` and `?disable[=seconds]` change the blocking switch;
//! without it (missing or wrong) they do nothing, as in Pi-hole.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinas_core::events::{now_ms, now_secs};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::querylog::ReplyKind;
use crate::state::DnsState;
use crate::store;

use crate::error::DnsError;

/// Who changes blocking through the Pi-hole API, in `dns.blocking.changed` events.
pub const BY_PIHOLE_API: &str = "pihole-api";

/// The token's file inside the role's folder; mode 0600.
pub const TOKEN_FILE: &str = "pihole-token";

/// The saved token (`<dir>/pihole-token`), creating one the first time.
///
/// # Errors
/// [`DnsError`] naming the file when it cannot be read or written.
pub fn load_or_create(dir: &Path) -> Result<String, DnsError> {
    let path = dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => regenerate(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => regenerate(dir),
        Err(e) => Err(DnsError::internal(format!(
            "reading the Pi-hole API token {}: {e}",
            path.display()
        ))),
    }
}

/// Replaces the token with a new random one (64 hex characters) and returns it; the old
/// one stops working at once.
///
/// # Errors
/// [`DnsError`] naming the file when it cannot be written.
pub fn regenerate(dir: &Path) -> Result<String, DnsError> {
    let token = pinas_core::auth::new_token();
    save_token(dir, &token)?;
    Ok(token)
}

/// Writes `token` to `<dir>/pihole-token` atomically, mode 0600.
///
/// # Errors
/// [`DnsError`] naming the file when it cannot be written.
pub fn save_token(dir: &Path, token: &str) -> Result<(), DnsError> {
    let path = dir.join(TOKEN_FILE);
    pinas_core::fsutil::write_atomic(&path, format!("{token}\n").as_bytes(), 0o600).map_err(|e| {
        DnsError::internal(format!(
            "saving the Pi-hole API token {}: {e}",
            path.display()
        ))
    })
}

/// Longest time a summary is served from the cache: the summary needs no login, so
/// however often it is asked for, the query log is read at most this often.
pub const SUMMARY_MAX_AGE: Duration = Duration::from_secs(5);

/// Pi-hole v5 `api.php?summaryRaw` / `summary` (FTL v5 era), for dashboards and Home
/// Assistant's Pi-hole integration. Counts only: never names or clients.
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)] // the field names are Pi-hole's
pub struct PiholeSummary {
    pub domains_being_blocked: serde_json::Value,
    pub dns_queries_today: serde_json::Value,
    pub ads_blocked_today: serde_json::Value,
    pub ads_percentage_today: serde_json::Value,
    pub unique_domains: serde_json::Value,
    pub queries_forwarded: serde_json::Value,
    pub queries_cached: serde_json::Value,
    pub clients_ever_seen: serde_json::Value,
    pub unique_clients: serde_json::Value,
    pub dns_queries_all_types: serde_json::Value,
    /// Answers without records of the asked type, last 24 hours.
    pub reply_NODATA: serde_json::Value,
    pub reply_NXDOMAIN: serde_json::Value,
    /// Answers starting with a CNAME.
    pub reply_CNAME: serde_json::Value,
    /// Answers with an address (blocked names answered `0.0.0.0` too).
    pub reply_IP: serde_json::Value,
    /// Answers with a name (PTR).
    pub reply_DOMAIN: serde_json::Value,
    pub reply_SERVFAIL: serde_json::Value,
    pub reply_REFUSED: serde_json::Value,
    pub reply_NOTIMP: serde_json::Value,
    pub reply_OTHER: serde_json::Value,
    pub privacy_level: u8,
    pub status: String,
    pub gravity_last_updated: serde_json::Value,
}

/// Pi-hole v5 API query string. Read-only without a token: `summaryRaw`, `summary`
/// (formatted numbers), `status`, `versions`. With `auth=<token>`: `enable`, and
/// `disable` or `disable=<seconds>` (0 or no number: until enabled again; at most 86400).
#[derive(Debug, Deserialize, IntoParams)]
pub struct PiholeParams {
    #[serde(rename = "summaryRaw")]
    pub summary_raw: Option<String>,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub versions: Option<String>,
    /// Turns blocking on (needs `auth`).
    pub enable: Option<String>,
    /// Turns blocking off, for that many seconds when a number is given (needs `auth`).
    pub disable: Option<String>,
    /// The Pi-hole API token (`GET /api/dns/pihole/token`).
    pub auth: Option<String>,
}

/// The counts behind a summary, read from the query log over the last 24 hours.
#[derive(Debug)]
pub struct SummaryCounts {
    pub stats: crate::querylog::Stats,
    pub clients_ever: i64,
    /// Answers per [`ReplyKind`], in [`ReplyKind::ALL`] order.
    pub replies: [i64; ReplyKind::ALL.len()],
    /// Unix seconds of the newest blocklist download.
    pub gravity_updated: Option<i64>,
    /// When they were read.
    pub read_at: Instant,
}

/// The last counts read, for [`SUMMARY_MAX_AGE`].
#[derive(Default)]
pub struct SummaryCache(tokio::sync::Mutex<Option<Arc<SummaryCounts>>>);

/// The counts, from the cache while younger than [`SUMMARY_MAX_AGE`]. Callers arriving
/// while they are read wait for that read instead of starting another.
///
/// # Errors
/// [`DnsError::Database`].
pub async fn summary_counts(st: &Arc<DnsState>) -> Result<Arc<SummaryCounts>, DnsError> {
    let mut cached = st.pihole_summary.0.lock().await;
    if let Some(c) = cached
        .as_ref()
        .filter(|c| c.read_at.elapsed() < SUMMARY_MAX_AGE)
    {
        return Ok(c.clone());
    }
    let st2 = st.clone();
    let counts = store::run_blocking(move || {
        let since = now_ms() - 86_400_000;
        let stats = store::stats(&st2.db, since, 1, 3600)?;
        let clients_ever = store::clients_ever(&st2.db)?;
        let mut replies = [0i64; ReplyKind::ALL.len()];
        for (kind, n) in store::reply_counts(&st2.db, since)? {
            if let Some(i) = ReplyKind::ALL.iter().position(|k| k.as_str() == kind) {
                replies[i] += n;
            }
        }
        let gravity_updated = store::blocklists(&st2.db)?
            .iter()
            .filter_map(|l| l.updated_at)
            .max();
        Ok(SummaryCounts {
            stats,
            clients_ever,
            replies,
            gravity_updated,
            read_at: Instant::now(),
        })
    })
    .await?;
    let counts = Arc::new(counts);
    *cached = Some(counts.clone());
    Ok(counts)
}

fn pihole_number(n: f64, raw: bool, percent: bool) -> serde_json::Value {
    if raw {
        if percent {
            serde_json::json!(n)
        } else {
            serde_json::json!(n as i64)
        }
    } else if percent {
        serde_json::json!(format!("{n:.1}"))
    } else {
        // Pi-hole formats with thousands separators.
        let s = (n as i64).to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        serde_json::json!(out)
    }
}

/// The Pi-hole v5 summary over the last 24 hours; `raw` numbers or formatted strings.
///
/// # Errors
/// [`DnsError::Database`].
pub async fn summary(st: &Arc<DnsState>, raw: bool) -> Result<PiholeSummary, DnsError> {
    let c = summary_counts(st).await?;
    let s = &c.stats;
    let n = |v: i64| pihole_number(v as f64, raw, false);
    let reply = |k: ReplyKind| {
        n(ReplyKind::ALL
            .iter()
            .position(|x| *x == k)
            .map_or(0, |i| c.replies[i]))
    };
    let gravity = match c.gravity_updated {
        Some(t) => {
            let rel = (now_secs() - t).max(0);
            serde_json::json!({ "file_exists": true, "absolute": t,
                "relative": { "days": rel / 86400, "hours": rel % 86400 / 3600, "minutes": rel % 3600 / 60 } })
        }
        None => serde_json::json!({ "file_exists": false }),
    };
    Ok(PiholeSummary {
        domains_being_blocked: n(st.blocked.load().len() as i64),
        dns_queries_today: n(s.total),
        ads_blocked_today: n(s.blocked),
        ads_percentage_today: pihole_number(s.blocked_percent, raw, true),
        unique_domains: n(s.unique_domains),
        queries_forwarded: n(s.forwarded),
        queries_cached: n(s.cached + s.local),
        clients_ever_seen: n(c.clients_ever),
        unique_clients: n(s.unique_clients),
        dns_queries_all_types: n(s.total),
        reply_NODATA: reply(ReplyKind::Nodata),
        reply_NXDOMAIN: reply(ReplyKind::Nxdomain),
        reply_CNAME: reply(ReplyKind::Cname),
        reply_IP: reply(ReplyKind::Ip),
        reply_DOMAIN: reply(ReplyKind::Domain),
        reply_SERVFAIL: reply(ReplyKind::Servfail),
        reply_REFUSED: reply(ReplyKind::Refused),
        reply_NOTIMP: reply(ReplyKind::Notimp),
        reply_OTHER: reply(ReplyKind::Other),
        privacy_level: 0,
        status: status(st).into(),
        gravity_last_updated: gravity,
    })
}

/// `enabled` or `disabled`, as Pi-hole says it.
pub fn status(st: &DnsState) -> &'static str {
    if st.blocking_on() {
        "enabled"
    } else {
        "disabled"
    }
}

/// Answers `api.php` as Pi-hole v5's does: `?summaryRaw` / `?summary` (also with no
/// query at all) give the summary over the last 24 hours with `status`; `?status` gives
/// `{"status":"enabled"}` or `{"status":"disabled"}`; `?enable&auth=TOKEN` and
/// `?disable[=SECONDS]&auth=TOKEN` change the blocking switch and answer with the new
/// `status`. Without a valid token `enable` and `disable` are ignored, and a request that
/// asked for nothing else gets `[]`, as Pi-hole v5 answers.
///
/// # Errors
/// [`DnsError::Database`].
pub async fn api_php(st: &Arc<DnsState>, p: PiholeParams) -> Result<serde_json::Value, DnsError> {
    let authed = p
        .auth
        .as_deref()
        .is_some_and(|t| tokens_match(t, &st.pihole_token.load()));
    let mut data = serde_json::Map::new();
    if p.enable.is_some() && authed {
        let st2 = st.clone();
        store::run_blocking(move || {
            st2.set_blocking(true, None, BY_PIHOLE_API, "Pi-hole API: enable")
        })
        .await?;
        data.insert("status".into(), "enabled".into());
    } else if let Some(d) = p.disable.as_deref().filter(|_| authed) {
        let off_for =
            disable_secs(d).map(|s| Duration::from_secs(s.min(crate::blocking::MAX_DISABLE_SECS)));
        let st2 = st.clone();
        store::run_blocking(move || {
            st2.set_blocking(false, off_for, BY_PIHOLE_API, "Pi-hole API: disable")
        })
        .await?;
        data.insert("status".into(), "disabled".into());
    } else if p.versions.is_some() {
        let v = concat!("pinas-", env!("CARGO_PKG_VERSION"));
        for (k, val) in [
            ("core_update", serde_json::json!(false)),
            ("web_update", serde_json::json!(false)),
            ("FTL_update", serde_json::json!(false)),
            ("core_current", serde_json::json!(v)),
            ("web_current", serde_json::json!(v)),
            ("FTL_current", serde_json::json!(v)),
        ] {
            data.insert(k.into(), val);
        }
    }
    if p.status.is_some() {
        data.insert("status".into(), status(st).into());
    }
    let nothing_asked = p.summary_raw.is_none()
        && p.summary.is_none()
        && p.status.is_none()
        && p.versions.is_none()
        && p.enable.is_none()
        && p.disable.is_none()
        && p.auth.is_none();
    if p.summary_raw.is_some() || p.summary.is_some() || nothing_asked {
        let summary = summary(st, p.summary.is_none()).await?;
        if let serde_json::Value::Object(m) =
            serde_json::to_value(summary).map_err(|e| DnsError::internal(e.to_string()))?
        {
            data.extend(m);
        }
    }
    if data.is_empty() {
        // PHP's json_encode of an empty array.
        return Ok(serde_json::json!([]));
    }
    Ok(serde_json::Value::Object(data))
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
