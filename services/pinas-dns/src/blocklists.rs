//! Blocklist subscriptions: download, keep a local copy, parse, and swap in one set.
//!
//! Each list (table `dns_blocklists`) is downloaded to `<state>/dns/lists/<id>.txt`
//! (atomically). An update downloads every enabled list; a list whose URL cannot be
//! reached keeps its previous copy and records the error. Then all copies are parsed into
//! one new [`DomainSet`], built aside while the old set keeps answering, and swapped in at
//! once. URLs may be `http://`, `https://`, `file://` or an absolute path.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinas_core::events::now_secs;
use pinas_core::Error;
use serde::Serialize;

use crate::domains::DomainSetBuilder;
use crate::lists::{parse_line, Line, ParseStats};
use crate::state::DnsState;

/// Largest list accepted, bytes.
pub const MAX_LIST_BYTES: u64 = 256 << 20;

/// One subscription, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Blocklist {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub enabled: bool,
    /// Names read from the list at the last load.
    pub domains: i64,
    /// Lines that were not in any known syntax.
    pub bad_lines: i64,
    /// Unix seconds of the last successful download.
    pub updated_at: Option<i64>,
    /// Why the last download failed, if it did.
    pub last_error: Option<String>,
}

/// The result of a rebuild.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoadReport {
    /// Distinct blocked names in force.
    pub domains: usize,
    /// Time to parse and build, milliseconds.
    pub load_ms: u64,
    /// Heap bytes of the set.
    pub set_bytes: usize,
    pub lists: Vec<Blocklist>,
}

/// Reads every subscription.
///
/// # Errors
/// [`Error`] on database errors.
pub fn all(st: &DnsState) -> Result<Vec<Blocklist>, Error> {
    let conn = st.db.conn();
    let mut s = conn.prepare(
        "SELECT id, url, name, enabled, domains, bad_lines, updated_at, last_error FROM dns_blocklists ORDER BY id",
    )?;
    let rows = s.query_map([], |r| {
        Ok(Blocklist {
            id: r.get(0)?,
            url: r.get(1)?,
            name: r.get(2)?,
            enabled: r.get::<_, i64>(3)? != 0,
            domains: r.get(4)?,
            bad_lines: r.get(5)?,
            updated_at: r.get(6)?,
            last_error: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checks a list URL.
///
/// # Errors
/// A 422 [`Error`] on field `url` for anything but http(s), file URLs and absolute paths.
pub fn validate_url(url: &str) -> Result<String, Error> {
    let u = url.trim();
    let ok = (u.starts_with("http://") || u.starts_with("https://")) && u.len() > 8
        || u.starts_with("file:///")
        || u.starts_with('/');
    if ok && !u.chars().any(char::is_whitespace) {
        Ok(u.to_string())
    } else {
        Err(Error::invalid(
            "invalid_url",
            format!("{url:?} is not an http(s) URL, a file:// URL or an absolute path"),
        )
        .with_field("url"))
    }
}

/// Downloads `url`.
///
/// # Errors
/// A message saying what failed (HTTP status, I/O, size).
pub async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = url
        .strip_prefix("file://")
        .or(url.starts_with('/').then_some(url))
    {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if meta.len() > MAX_LIST_BYTES {
            return Err(format!("{path}: larger than {MAX_LIST_BYTES} bytes"));
        }
        return tokio::fs::read(path)
            .await
            .map_err(|e| format!("{path}: {e}"));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("PiNAS/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_LIST_BYTES {
            return Err(format!("{url}: larger than {MAX_LIST_BYTES} bytes"));
        }
    }
    Ok(body)
}

/// Parses a list file line by line into `into`; lines that are not UTF-8 count as bad.
///
/// # Errors
/// I/O errors reading the file.
pub fn parse_file(path: &Path, into: &mut DomainSetBuilder) -> std::io::Result<ParseStats> {
    let f = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    parse_reader(&mut r, into)
}

/// Like [`parse_file`], from any reader.
///
/// # Errors
/// I/O errors from the reader.
pub fn parse_reader(
    r: &mut impl BufRead,
    into: &mut DomainSetBuilder,
) -> std::io::Result<ParseStats> {
    let mut st = ParseStats::default();
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(st);
        }
        st.lines += 1;
        let Ok(line) = std::str::from_utf8(&buf) else {
            st.bad_lines += 1;
            continue;
        };
        match parse_line(line) {
            Line::Skip => {}
            Line::Bad(_) => st.bad_lines += 1,
            Line::Names(names) => {
                for (n, how) in names {
                    into.insert(&n, how);
                    st.domains += 1;
                }
            }
        }
    }
}

/// Gives freed memory back to the kernel after a large rebuild (glibc keeps it otherwise).
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Downloads every enabled list (when `download`), then rebuilds the blocked set from the
/// local copies and swaps it in. Emits `dns.blocklists.updated`.
///
/// # Errors
/// [`Error`] on database errors; download errors are recorded per list, not returned.
pub async fn update(st: &Arc<DnsState>, download: bool) -> Result<LoadReport, Error> {
    let _guard = st.update_lock.lock().await;
    let lists = all(st)?;
    let dir = st.lists_dir();
    if download {
        for l in lists.iter().filter(|l| l.enabled) {
            let res = match fetch(&l.url).await {
                Ok(body) => pinas_core::fsutil::write_atomic(
                    &dir.join(format!("{}.txt", l.id)),
                    &body,
                    0o644,
                )
                .map_err(|e| format!("cannot save the list: {e}")),
                Err(e) => Err(e),
            };
            let conn = st.db.conn();
            match res {
                Ok(()) => conn.execute(
                    "UPDATE dns_blocklists SET updated_at = ?1, last_error = NULL WHERE id = ?2",
                    rusqlite::params![now_secs(), l.id],
                )?,
                Err(e) => {
                    tracing::warn!(list = %l.url, error = %e, "blocklist download failed; keeping the previous copy");
                    conn.execute(
                        "UPDATE dns_blocklists SET last_error = ?1 WHERE id = ?2",
                        rusqlite::params![e, l.id],
                    )?
                }
            };
        }
    }
    let st2 = st.clone();
    let report = tokio::task::spawn_blocking(move || rebuild(&st2))
        .await
        .map_err(|e| Error::internal(format!("blocklist rebuild failed: {e}")))??;
    st.events.emit(
        "dns.blocklists.updated",
        serde_json::json!({ "domains": report.domains, "load_ms": report.load_ms, "lists": report.lists }),
    );
    Ok(report)
}

/// Parses the local copies of the enabled lists into a new set and swaps it in; records
/// per-list counts. Blocking: call from a blocking thread.
///
/// # Errors
/// [`Error`] on database errors.
pub fn rebuild(st: &DnsState) -> Result<LoadReport, Error> {
    let t0 = Instant::now();
    let lists = all(st)?;
    let dir = st.lists_dir();
    let mut b = DomainSetBuilder::with_capacity(st.blocked.load().len().max(1024));
    let mut counts = Vec::new();
    for l in lists.iter().filter(|l| l.enabled) {
        let path = dir.join(format!("{}.txt", l.id));
        match parse_file(&path, &mut b) {
            Ok(s) => counts.push((l.id, s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                counts.push((l.id, ParseStats::default()))
            }
            Err(e) => {
                tracing::warn!(list = %l.url, error = %e, "cannot read the local copy of a blocklist")
            }
        }
    }
    let set = b.build();
    let report_domains = set.len();
    let set_bytes = set.heap_bytes();
    st.blocked.store(Arc::new(set));
    st.cache.clear();
    release_memory();
    {
        let conn = st.db.conn();
        for (id, s) in &counts {
            conn.execute(
                "UPDATE dns_blocklists SET domains = ?1, bad_lines = ?2 WHERE id = ?3",
                rusqlite::params![s.domains as i64, s.bad_lines as i64, id],
            )?;
        }
    }
    let load_ms = t0.elapsed().as_millis() as u64;
    tracing::info!(
        domains = report_domains,
        load_ms,
        set_bytes,
        "blocklists loaded"
    );
    Ok(LoadReport {
        domains: report_domains,
        load_ms,
        set_bytes,
        lists: all(st)?,
    })
}

/// Runs forever: downloads lists whose copy is missing right away, then all of them every
/// `blocklist_update_interval_secs`.
pub async fn schedule(st: Arc<DnsState>) {
    let every = Duration::from_secs(st.cfg.blocklist_update_interval_secs.max(60));
    let mut first = true;
    loop {
        let stale = all(&st).map(|ls| {
            ls.iter().any(|l| {
                l.enabled
                    && (l.updated_at.is_none()
                        || now_secs() - l.updated_at.unwrap_or(0) >= every.as_secs() as i64)
            })
        });
        if !first || stale.unwrap_or(false) {
            if let Err(e) = update(&st, true).await {
                tracing::warn!(error = %e, "scheduled blocklist update failed");
            }
        }
        first = false;
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_counts_bad_and_non_utf8_lines() {
        let data: &[u8] = b"0.0.0.0 a.example\n\xff\xfe bad\n||b.example^\n???\n";
        let mut b = DomainSetBuilder::default();
        let s = parse_reader(&mut &data[..], &mut b).unwrap();
        assert_eq!((s.domains, s.bad_lines, s.lines), (2, 2, 4));
    }

    #[test]
    fn urls() {
        assert!(validate_url("https://example.org/list.txt").is_ok());
        assert!(validate_url("/srv/list.txt").is_ok());
        assert!(validate_url("ftp://x").is_err());
        assert!(validate_url("https://").is_err());
    }
}
