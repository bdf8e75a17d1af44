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

use crate::error::DnsError;
use pinas_core::events::now_secs;
use serde::Serialize;

use crate::domains::DomainSetBuilder;
use crate::lists::{parse_line, Line, ParseStats};
use crate::state::DnsState;

/// Largest list accepted, bytes.
pub const MAX_LIST_BYTES: u64 = 256 << 20;

pub use crate::store::Blocklist;

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
/// [`DnsError`] on database errors.
pub fn all(st: &DnsState) -> Result<Vec<Blocklist>, DnsError> {
    Ok(crate::store::blocklists(&st.db)?)
}

/// A blocklist subscription to add.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct BlocklistInput {
    /// `https://...`, `http://...`, `file:///...` or an absolute path.
    pub url: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Changes to a subscription.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct BlocklistPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
}

/// Subscribes to a list and downloads it now (the previous set keeps answering
/// meanwhile).
///
/// # Errors
/// 422 `invalid_url`; 409 `blocklist_exists`; [`DnsError::Database`].
pub async fn subscribe(st: &Arc<DnsState>, b: BlocklistInput) -> Result<LoadReport, DnsError> {
    let url = validate_url(&b.url)?;
    let st2 = st.clone();
    crate::store::run_blocking(move || {
        match crate::store::insert_blocklist(&st2.db, &url, &b.name, b.enabled) {
            Err(e) if crate::error::is_constraint(&e) => Err(DnsError::conflict(
                "blocklist_exists",
                format!("{url} is already subscribed"),
            )
            .with_field("url")),
            r => r.map(drop).map_err(Into::into),
        }
    })
    .await?;
    update(st, true).await
}

/// Renames, enables or disables subscription `id`, and reloads the set.
///
/// # Errors
/// 404 `blocklist_not_found`; [`DnsError::Database`].
pub async fn patch(st: &Arc<DnsState>, id: i64, p: BlocklistPatch) -> Result<LoadReport, DnsError> {
    let st2 = st.clone();
    crate::store::run_blocking(move || {
        if crate::store::update_blocklist(&st2.db, id, p.name.as_deref(), p.enabled)? {
            Ok(())
        } else {
            Err(DnsError::not_found(
                "blocklist_not_found",
                format!("no blocklist {id}"),
            ))
        }
    })
    .await?;
    update(st, false).await
}

/// Unsubscribes from list `id`, deletes its copy and reloads the set.
///
/// # Errors
/// 404 `blocklist_not_found`; [`DnsError::Database`].
pub async fn unsubscribe(st: &Arc<DnsState>, id: i64) -> Result<LoadReport, DnsError> {
    let st2 = st.clone();
    crate::store::run_blocking(move || {
        if !crate::store::delete_blocklist(&st2.db, id)? {
            return Err(DnsError::not_found(
                "blocklist_not_found",
                format!("no blocklist {id}"),
            ));
        }
        let _ = std::fs::remove_file(st2.lists_dir().join(format!("{id}.txt")));
        Ok(())
    })
    .await?;
    update(st, false).await
}

/// Checks a list URL.
///
/// # Errors
/// A 422 [`DnsError`] on field `url` for anything but http(s), file URLs and absolute paths.
pub fn validate_url(url: &str) -> Result<String, DnsError> {
    let u = url.trim();
    let bad = || {
        DnsError::invalid(
            "invalid_url",
            format!("{url:?} is not an http(s) URL, a file:// URL or an absolute path"),
        )
        .with_field("url")
    };
    if u.is_empty() || u.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    if u.starts_with('/') {
        return Ok(u.to_string());
    }
    let parsed = url::Url::parse(u).map_err(|_| bad())?;
    let ok = match parsed.scheme() {
        "http" | "https" => parsed.host_str().is_some_and(|h| !h.is_empty()),
        "file" => parsed.to_file_path().is_ok(),
        _ => false,
    };
    if ok {
        Ok(u.to_string())
    } else {
        Err(bad())
    }
}

/// Downloads `url`.
///
/// # Errors
/// A message saying what failed (HTTP status, I/O, size).
pub async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let local = if url.starts_with('/') {
        Some(std::path::PathBuf::from(url))
    } else {
        url::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok())
    };
    if let Some(path) = local {
        let path = path.display().to_string();
        let path = path.as_str();
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
/// [`DnsError`] on database errors; download errors are recorded per list, not returned.
pub async fn update(st: &Arc<DnsState>, download: bool) -> Result<LoadReport, DnsError> {
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
            if let Err(e) = &res {
                tracing::warn!(list = %l.url, error = %e, "blocklist download failed; keeping the previous copy");
            }
            crate::store::blocklist_downloaded(&st.db, l.id, res.err().as_deref())?;
        }
    }
    let st2 = st.clone();
    let report = tokio::task::spawn_blocking(move || rebuild(&st2))
        .await
        .map_err(|e| DnsError::internal(format!("blocklist rebuild failed: {e}")))??;
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
/// [`DnsError`] on database errors.
pub fn rebuild(st: &DnsState) -> Result<LoadReport, DnsError> {
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
    let counts: Vec<(i64, u64, u64)> = counts
        .iter()
        .map(|(id, s)| (*id, s.domains, s.bad_lines))
        .collect();
    crate::store::blocklist_counts(&st.db, &counts)?;
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
