//! The DNS role's own database: `<state_dir>/dns/dns.db` (SQLite, WAL), with the role's
//! migrations from `services/pinas-dns/migrations`.
//!
//! The role keeps all of its state under `<state_dir>/dns/` (mode 0700): this database,
//! the downloaded blocklists (`lists/`) and the Pi-hole API token (`pihole-token`, 0600),
//! so that `pinas dns` can run as its own unprivileged user with only that folder
//! writable. No other role opens this file; they ask the control API.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pinas_core::db::Db;
use pinas_core::events::now_secs;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::DnsError;
use crate::querylog::{rcode_name, Entry, LogFilter, Status};
use crate::zone::LocalType;
use rusqlite_migration::{Migrations, M};

/// The database file's name inside the role's folder.
pub const DB_FILE: &str = "dns.db";

/// The role's migrations, in order; append, never edit a shipped step.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!("../migrations/0001_dns.sql"))])
}

/// Creates the role's folder (and its parents) if missing and makes it private (0700).
///
/// # Errors
/// 503 `dns_state_unavailable` naming the folder when it cannot be created; a folder
/// this user does not own keeps its mode.
pub fn ensure_dir(dir: &Path) -> Result<(), DnsError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        DnsError::unavailable(
            "dns_state_unavailable",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    // Best effort: a folder prepared by the system for this user may belong to root.
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Opens (creating if needed) `<dir>/dns.db` with mode 0600, WAL mode, a 5 s busy
/// timeout, and applies pending migrations. When the file is new and `legacy` names the
/// shared database of earlier versions (`pinas.db`, where DNS tables used to live), its
/// DNS rows and Pi-hole token are copied over once, if this user can read it.
///
/// # Errors
/// 503 `dns_state_unavailable` naming the file when it cannot be opened or migrated.
pub fn open(dir: &Path, legacy: Option<&Path>) -> Result<Db, DnsError> {
    ensure_dir(dir)?;
    let path = dir.join(DB_FILE);
    let fail = |e: &dyn std::fmt::Display| {
        DnsError::unavailable(
            "dns_state_unavailable",
            format!("cannot open {}: {e}", path.display()),
        )
    };
    let fresh = !path.exists();
    let mut conn = Connection::open(&path).map_err(|e| fail(&e))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    configure(&conn).map_err(|e| fail(&e))?;
    let m = pinas_core::db::migrate_keeping_copy(&mut conn, &path, &migrations())
        .map_err(|e| fail(&e))?;
    pinas_core::db::log_migrated(&path, &m);
    if fresh {
        if let Some(old) = legacy.filter(|p| p.exists()) {
            match import_legacy(&conn, old, dir) {
                Ok(n) => {
                    tracing::info!(from = %old.display(), rows = n, "DNS data moved to its own database")
                }
                Err(e) => tracing::warn!(from = %old.display(), error = %e,
                    "cannot read DNS data of the earlier version; starting empty"),
            }
        }
    }
    Ok(Db::from_connection(conn))
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Durable across crashes of the process in WAL mode; a power cut may lose the last
    // transactions, never corrupt the file.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Tables copied from the shared database of earlier versions, with their columns.
const LEGACY_TABLES: [(&str, &str); 8] = [
    (
        "dns_records",
        "id, name, type, value, ttl_secs, comment, created_at",
    ),
    ("dns_forwards", "id, domain, server, comment, created_at"),
    ("dns_switch", "id, target, reason, changed_at"),
    (
        "dns_blocklists",
        "id, url, name, enabled, domains, bad_lines, updated_at, last_error, created_at",
    ),
    ("dns_rules", "id, kind, pattern, comment, created_at"),
    (
        "dns_blocking",
        "id, enabled, until_ms, changed_by, reason, changed_at",
    ),
    ("dns_settings", "id, settings, updated_at"),
    (
        "dns_query_log",
        "id, ts_ms, client, name, qtype, status, rcode, upstream, duration_us",
    ),
];

/// Copies the DNS tables of `old` (read-only) into `conn`, and its Pi-hole token into
/// `<dir>/pihole-token`; returns the rows copied.
fn import_legacy(conn: &Connection, old: &Path, dir: &Path) -> rusqlite::Result<usize> {
    // A URI, so SQLite opens the old file read-only and never creates or changes it.
    let uri = format!(
        "file:{}?mode=ro",
        old.display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    conn.execute("ATTACH DATABASE ?1 AS legacy", [uri])?;
    let result = (|| {
        let has = |t: &str| -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT COUNT(*) FROM legacy.sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        let tx = conn.unchecked_transaction()?;
        let mut n = 0;
        for (table, cols) in LEGACY_TABLES {
            if has(table)? {
                n += tx.execute(
                    &format!("INSERT INTO main.{table} ({cols}) SELECT {cols} FROM legacy.{table}"),
                    [],
                )?;
            }
        }
        tx.commit()?;
        if has("dns_pihole_token")? {
            let token: Option<String> = conn
                .query_row(
                    "SELECT token FROM legacy.dns_pihole_token WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(t) = token {
                if let Err(e) = crate::pihole::save_token(dir, &t) {
                    tracing::warn!(error = %e, "cannot keep the Pi-hole API token; a new one is made");
                }
            }
        }
        Ok(n)
    })();
    let _ = conn.execute("DETACH DATABASE legacy", []);
    result
}

/// Runs `f` (database work) on a blocking thread.
///
/// # Errors
/// What `f` returns; [`DnsError::Internal`] when the thread failed.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DnsError> + Send + 'static,
) -> Result<T, DnsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DnsError::internal(format!("DNS database task failed: {e}")))?
}

/// `<state_dir>/dns`: where the role keeps everything it writes.
pub fn role_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dns")
}

// ---- local records ----

/// A local record as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocalRecordRow {
    pub id: i64,
    /// Owner name, e.g. `printer.home` or `*.lab.home`.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: LocalType,
    /// Address for A/AAAA, target name for CNAME/PTR.
    pub value: String,
    pub ttl_secs: u32,
    pub comment: String,
}

/// A checked record to store.
#[derive(Debug)]
pub struct NewRecord<'a> {
    pub name: &'a str,
    pub rtype: LocalType,
    pub value: &'a str,
    pub ttl_secs: u32,
    pub comment: &'a str,
}

/// Local records, all or the one with `id`, by name.
///
/// # Errors
/// SQLite errors.
pub fn records(db: &Db, id: Option<i64>) -> rusqlite::Result<Vec<LocalRecordRow>> {
    let conn = db.conn();
    let mut s = conn.prepare_cached(
        "SELECT id, name, type, value, ttl_secs, comment FROM dns_records
         WHERE ?1 IS NULL OR id = ?1 ORDER BY name, type, id",
    )?;
    let rows = s.query_map([id], |r| {
        Ok(LocalRecordRow {
            id: r.get(0)?,
            name: r.get(1)?,
            rtype: LocalType::parse(&r.get::<_, String>(2)?).unwrap_or(LocalType::A),
            value: r.get(3)?,
            ttl_secs: r.get::<_, i64>(4)?.clamp(0, u32::MAX.into()) as u32,
            comment: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Adds a record; returns its id.
///
/// # Errors
/// SQLite errors.
pub fn insert_record(db: &Db, r: &NewRecord<'_>) -> rusqlite::Result<i64> {
    let conn = db.conn();
    conn.execute(
        "INSERT INTO dns_records (name, type, value, ttl_secs, comment, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            r.name,
            r.rtype.as_str(),
            r.value,
            r.ttl_secs,
            r.comment,
            now_secs()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Replaces record `id`; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn update_record(db: &Db, id: i64, r: &NewRecord<'_>) -> rusqlite::Result<bool> {
    Ok(db.conn().execute(
        "UPDATE dns_records SET name = ?1, type = ?2, value = ?3, ttl_secs = ?4, comment = ?5 WHERE id = ?6",
        params![r.name, r.rtype.as_str(), r.value, r.ttl_secs, r.comment, id],
    )? > 0)
}

/// Deletes record `id`; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn delete_record(db: &Db, id: i64) -> rusqlite::Result<bool> {
    Ok(db
        .conn()
        .execute("DELETE FROM dns_records WHERE id = ?1", [id])?
        > 0)
}

/// What the local zone is built from: records as `(name, type, value, ttl_secs)` and
/// forwarding rules as `(domain, server)`.
///
/// # Errors
/// SQLite errors.
#[allow(clippy::type_complexity)]
pub fn zone_rows(
    db: &Db,
) -> rusqlite::Result<(Vec<(String, String, String, i64)>, Vec<(String, String)>)> {
    let conn = db.conn();
    let recs = conn
        .prepare_cached("SELECT name, type, value, ttl_secs FROM dns_records")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let fwd = conn
        .prepare_cached("SELECT domain, server FROM dns_forwards")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((recs, fwd))
}

// ---- conditional forwarding ----

/// A conditional forwarding rule as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForwardRow {
    pub id: i64,
    /// A domain (`home`) or reverse zone (`1.168.192.in-addr.arpa`).
    pub domain: String,
    /// `udp://IP:port` or `tcp://IP:port`.
    pub server: String,
    pub comment: String,
}

/// Forwarding rules by domain.
///
/// # Errors
/// SQLite errors.
pub fn forwards(db: &Db) -> rusqlite::Result<Vec<ForwardRow>> {
    let conn = db.conn();
    let mut s = conn
        .prepare_cached("SELECT id, domain, server, comment FROM dns_forwards ORDER BY domain")?;
    let rows = s.query_map([], |r| {
        Ok(ForwardRow {
            id: r.get(0)?,
            domain: r.get(1)?,
            server: r.get(2)?,
            comment: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Adds a forwarding rule; a constraint error when the domain has one.
///
/// # Errors
/// SQLite errors.
pub fn insert_forward(db: &Db, domain: &str, server: &str, comment: &str) -> rusqlite::Result<i64> {
    let conn = db.conn();
    conn.execute(
        "INSERT INTO dns_forwards (domain, server, comment, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![domain, server, comment, now_secs()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Deletes forwarding rule `id`; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn delete_forward(db: &Db, id: i64) -> rusqlite::Result<bool> {
    Ok(db
        .conn()
        .execute("DELETE FROM dns_forwards WHERE id = ?1", [id])?
        > 0)
}

// ---- allow and deny rules ----

/// An allowlist or denylist entry as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleRow {
    pub id: i64,
    /// `allow` or `deny`.
    pub kind: String,
    /// `name` or `*.name`.
    pub pattern: String,
    pub comment: String,
}

/// Rules of `kind` (`allow`, `deny`) or all, by kind and pattern.
///
/// # Errors
/// SQLite errors.
pub fn rules(db: &Db, kind: Option<&str>) -> rusqlite::Result<Vec<RuleRow>> {
    let conn = db.conn();
    let mut s = conn.prepare_cached(
        "SELECT id, kind, pattern, comment FROM dns_rules WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, pattern",
    )?;
    let rows = s.query_map([kind], |r| {
        Ok(RuleRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            pattern: r.get(2)?,
            comment: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Adds a rule; a constraint error when it exists.
///
/// # Errors
/// SQLite errors.
pub fn insert_rule(db: &Db, kind: &str, pattern: &str, comment: &str) -> rusqlite::Result<i64> {
    let conn = db.conn();
    conn.execute(
        "INSERT INTO dns_rules (kind, pattern, comment, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![kind, pattern, comment, now_secs()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Deletes rule `id`; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn delete_rule(db: &Db, id: i64) -> rusqlite::Result<bool> {
    Ok(db
        .conn()
        .execute("DELETE FROM dns_rules WHERE id = ?1", [id])?
        > 0)
}

// ---- blocklists ----

/// A blocklist subscription as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// Every subscription, by id.
///
/// # Errors
/// SQLite errors.
pub fn blocklists(db: &Db) -> rusqlite::Result<Vec<Blocklist>> {
    let conn = db.conn();
    let mut s = conn.prepare_cached(
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
    rows.collect()
}

/// Adds a subscription; a constraint error when the URL is subscribed.
///
/// # Errors
/// SQLite errors.
pub fn insert_blocklist(db: &Db, url: &str, name: &str, enabled: bool) -> rusqlite::Result<i64> {
    let conn = db.conn();
    conn.execute(
        "INSERT INTO dns_blocklists (url, name, enabled, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![url, name, enabled, now_secs()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Renames and/or enables a subscription; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn update_blocklist(
    db: &Db,
    id: i64,
    name: Option<&str>,
    enabled: Option<bool>,
) -> rusqlite::Result<bool> {
    Ok(db.conn().execute(
        "UPDATE dns_blocklists SET name = COALESCE(?1, name), enabled = COALESCE(?2, enabled) WHERE id = ?3",
        params![name, enabled, id],
    )? > 0)
}

/// Deletes subscription `id`; false when there is none.
///
/// # Errors
/// SQLite errors.
pub fn delete_blocklist(db: &Db, id: i64) -> rusqlite::Result<bool> {
    Ok(db
        .conn()
        .execute("DELETE FROM dns_blocklists WHERE id = ?1", [id])?
        > 0)
}

/// Records a download of list `id`: now, or the error that stopped it.
///
/// # Errors
/// SQLite errors.
pub fn blocklist_downloaded(db: &Db, id: i64, error: Option<&str>) -> rusqlite::Result<()> {
    let conn = db.conn();
    match error {
        None => conn.execute(
            "UPDATE dns_blocklists SET updated_at = ?1, last_error = NULL WHERE id = ?2",
            params![now_secs(), id],
        )?,
        Some(e) => conn.execute(
            "UPDATE dns_blocklists SET last_error = ?1 WHERE id = ?2",
            params![e, id],
        )?,
    };
    Ok(())
}

/// Records what the last load read from each list: `(id, domains, bad_lines)`.
///
/// # Errors
/// SQLite errors.
pub fn blocklist_counts(db: &Db, counts: &[(i64, u64, u64)]) -> rusqlite::Result<()> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    for (id, domains, bad) in counts {
        tx.execute(
            "UPDATE dns_blocklists SET domains = ?1, bad_lines = ?2 WHERE id = ?3",
            params![*domains as i64, *bad as i64, id],
        )?;
    }
    tx.commit()
}

// ---- the switch, the blocking switch, settings ----

/// The switch as stored: target (`nas`, `companion`), reason, changed at (Unix ms).
///
/// # Errors
/// SQLite errors.
pub fn switch(db: &Db) -> rusqlite::Result<Option<(String, String, i64)>> {
    db.conn()
        .query_row(
            "SELECT target, reason, changed_at FROM dns_switch WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
}

/// Saves the switch.
///
/// # Errors
/// SQLite errors.
pub fn save_switch(db: &Db, target: &str, reason: &str, at_ms: i64) -> rusqlite::Result<()> {
    db.conn().execute(
        "INSERT INTO dns_switch (id, target, reason, changed_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET target = excluded.target, reason = excluded.reason, changed_at = excluded.changed_at",
        params![target, reason, at_ms],
    )?;
    Ok(())
}

/// The blocking switch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingRow {
    pub enabled: bool,
    /// Unix ms when blocking turns back on by itself.
    pub until_ms: Option<i64>,
    pub changed_by: String,
    pub reason: String,
    /// Unix ms.
    pub changed_at: i64,
}

/// The saved blocking switch, if any.
///
/// # Errors
/// SQLite errors.
pub fn blocking(db: &Db) -> rusqlite::Result<Option<BlockingRow>> {
    db.conn()
        .query_row(
            "SELECT enabled, until_ms, changed_by, reason, changed_at FROM dns_blocking WHERE id = 1",
            [],
            |r| {
                Ok(BlockingRow {
                    enabled: r.get(0)?,
                    until_ms: r.get(1)?,
                    changed_by: r.get(2)?,
                    reason: r.get(3)?,
                    changed_at: r.get(4)?,
                })
            },
        )
        .optional()
}

/// Saves the blocking switch.
///
/// # Errors
/// SQLite errors.
pub fn save_blocking(db: &Db, b: &BlockingRow) -> rusqlite::Result<()> {
    db.conn().execute(
        "INSERT INTO dns_blocking (id, enabled, until_ms, changed_by, reason, changed_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET enabled = excluded.enabled, until_ms = excluded.until_ms,
           changed_by = excluded.changed_by, reason = excluded.reason, changed_at = excluded.changed_at",
        params![b.enabled, b.until_ms, b.changed_by, b.reason, b.changed_at],
    )?;
    Ok(())
}

/// The settings saved through the API, as JSON, and when (Unix ms).
///
/// # Errors
/// SQLite errors.
pub fn settings(db: &Db) -> rusqlite::Result<Option<(String, i64)>> {
    db.conn()
        .query_row(
            "SELECT settings, updated_at FROM dns_settings WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
}

/// Saves the settings (JSON) at `at_ms`.
///
/// # Errors
/// SQLite errors.
pub fn save_settings(db: &Db, json: &str, at_ms: i64) -> rusqlite::Result<()> {
    db.conn().execute(
        "INSERT INTO dns_settings (id, settings, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        params![json, at_ms],
    )?;
    Ok(())
}

// ---- the query log ----

/// Inserts `rows` and deletes the oldest rows beyond `max_rows`, in one transaction.
///
/// # Errors
/// SQLite errors.
pub fn insert_log(db: &Db, rows: &[Entry], max_rows: u64) -> rusqlite::Result<()> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO dns_query_log (ts_ms, client, name, qtype, status, rcode, reply, upstream, duration_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for e in rows {
            st.execute(rusqlite::params![
                e.ts_ms,
                e.client.to_string(),
                e.name,
                e.qtype.to_string(),
                e.status.as_str(),
                rcode_name(e.rcode),
                e.reply.as_str(),
                e.upstream,
                e.duration_us as i64
            ])?;
        }
        // Ids only grow (AUTOINCREMENT), so the newest max_rows rows are those above
        // this; the primary key makes it a range delete.
        tx.prepare_cached("DELETE FROM dns_query_log WHERE id <= last_insert_rowid() - ?1")?
            .execute([max_rows.min(i64::MAX as u64) as i64])?;
    }
    tx.commit()
}

/// Deletes rows older than `retention_days` and the oldest beyond `max_rows`; returns
/// how many rows went. (The writer keeps `max_rows` as it writes; this also applies a
/// smaller limit at once.)
///
/// # Errors
/// SQLite errors.
pub fn prune_log(
    db: &Db,
    retention_days: u32,
    max_rows: u64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let conn = db.conn();
    let cutoff = now_ms - i64::from(retention_days) * 86_400_000;
    let mut n = conn.execute("DELETE FROM dns_query_log WHERE ts_ms < ?1", [cutoff])?;
    n += conn.execute(
        "DELETE FROM dns_query_log WHERE id <= (SELECT MAX(id) FROM dns_query_log) - ?1",
        [max_rows as i64],
    )?;
    Ok(n)
}

/// One row of the query log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogRow {
    pub id: i64,
    /// Unix milliseconds.
    pub ts_ms: i64,
    pub client: String,
    pub name: String,
    pub qtype: String,
    pub status: String,
    pub rcode: String,
    pub upstream: Option<String>,
    pub duration_us: i64,
}

/// The newest rows of the query log matching `f`, newest first.
///
/// # Errors
/// SQLite errors.
pub fn log_rows(db: &Db, f: &LogFilter) -> rusqlite::Result<Vec<LogRow>> {
    let mut sql = String::from(
        "SELECT id, ts_ms, client, name, qtype, status, rcode, upstream, duration_us FROM dns_query_log WHERE 1=1",
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(b) = f.before_id {
        add("id <", b.into());
    }
    if let Some(c) = &f.client {
        add("client =", c.clone().into());
    }
    if let Some(n) = &f.name {
        let esc = n
            .to_ascii_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(format!("%{esc}%").into());
        sql.push_str(&format!(" AND name LIKE ?{} ESCAPE '\\'", args.len()));
    }
    if let Some(s) = f.status {
        args.push(s.as_str().to_string().into());
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(t) = &f.qtype {
        args.push(t.to_ascii_uppercase().into());
        sql.push_str(&format!(" AND qtype = ?{}", args.len()));
    }
    if let Some(s) = f.since_ms {
        args.push(s.into());
        sql.push_str(&format!(" AND ts_ms >= ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        f.limit.unwrap_or(100).clamp(1, 1000)
    ));
    let conn = db.conn();
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args), |r| {
        Ok(LogRow {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            client: r.get(2)?,
            name: r.get(3)?,
            qtype: r.get(4)?,
            status: r.get(5)?,
            rcode: r.get(6)?,
            upstream: r.get(7)?,
            duration_us: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// A name or client with its count.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Top {
    pub key: String,
    pub count: i64,
}

/// Queries in one time bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Bucket start, Unix milliseconds.
    pub ts_ms: i64,
    pub total: i64,
    pub blocked: i64,
}

/// Statistics over a time window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Window start, Unix milliseconds.
    pub since_ms: i64,
    pub total: i64,
    pub blocked: i64,
    pub forwarded: i64,
    pub cached: i64,
    pub local: i64,
    pub errors: i64,
    /// blocked / total × 100.
    pub blocked_percent: f64,
    pub unique_domains: i64,
    pub unique_clients: i64,
    pub top_domains: Vec<Top>,
    pub top_blocked: Vec<Top>,
    pub top_clients: Vec<Top>,
    /// Queries over time, `bucket_secs` apart, oldest first.
    pub over_time: Vec<Bucket>,
    pub bucket_secs: i64,
}

/// Computes [`Stats`] for rows at or after `since_ms`, with `top` entries per list and
/// time buckets of `bucket_secs`.
///
/// # Errors
/// SQLite errors.
pub fn stats(db: &Db, since_ms: i64, top: u32, bucket_secs: i64) -> rusqlite::Result<Stats> {
    let conn = db.conn();
    let mut counts = [0i64; 5];
    {
        let mut st = conn.prepare_cached(
            "SELECT status, COUNT(*) FROM dns_query_log WHERE ts_ms >= ?1 GROUP BY status",
        )?;
        let mut rows = st.query([since_ms])?;
        while let Some(r) = rows.next()? {
            let s: String = r.get(0)?;
            if let Some(i) = Status::ALL.iter().position(|x| x.as_str() == s) {
                counts[i] = r.get(1)?;
            }
        }
    }
    let total: i64 = counts.iter().sum();
    let one =
        |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [since_ms], |r| r.get(0)) };
    let unique_domains = one("SELECT COUNT(DISTINCT name) FROM dns_query_log WHERE ts_ms >= ?1")?;
    let unique_clients = one("SELECT COUNT(DISTINCT client) FROM dns_query_log WHERE ts_ms >= ?1")?;
    let tops = |col: &str, extra: &str| -> rusqlite::Result<Vec<Top>> {
        let sql = format!(
            "SELECT {col}, COUNT(*) AS c FROM dns_query_log WHERE ts_ms >= ?1 {extra} GROUP BY {col} ORDER BY c DESC, {col} LIMIT ?2"
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params![since_ms, top], |r| {
            Ok(Top {
                key: r.get(0)?,
                count: r.get(1)?,
            })
        })?;
        rows.collect()
    };
    let top_domains = tops("name", "AND status != 'blocked'")?;
    let top_blocked = tops("name", "AND status = 'blocked'")?;
    let top_clients = tops("client", "")?;
    let b = bucket_secs.max(60) * 1000;
    let mut st = conn.prepare(
        "SELECT (ts_ms / ?2) * ?2 AS b, COUNT(*), SUM(status = 'blocked') FROM dns_query_log
         WHERE ts_ms >= ?1 GROUP BY b ORDER BY b",
    )?;
    let over_time = st
        .query_map(rusqlite::params![since_ms, b], |r| {
            Ok(Bucket {
                ts_ms: r.get(0)?,
                total: r.get(1)?,
                blocked: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let blocked = counts[Status::Blocked as usize];
    Ok(Stats {
        since_ms,
        total,
        blocked,
        forwarded: counts[Status::Forwarded as usize],
        cached: counts[Status::Cached as usize],
        local: counts[Status::Local as usize],
        errors: counts[Status::Error as usize],
        blocked_percent: if total == 0 {
            0.0
        } else {
            blocked as f64 * 100.0 / total as f64
        },
        unique_domains,
        unique_clients,
        top_domains,
        top_blocked,
        top_clients,
        over_time,
        bucket_secs: b / 1000,
    })
}

/// Answers by kind ([`crate::querylog::ReplyKind`] names) at or after `since_ms`.
///
/// # Errors
/// SQLite errors.
pub fn reply_counts(db: &Db, since_ms: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let conn = db.conn();
    let mut s = conn.prepare_cached(
        "SELECT reply, COUNT(*) FROM dns_query_log WHERE ts_ms >= ?1 GROUP BY reply",
    )?;
    let rows = s.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Distinct clients in the whole query log.
///
/// # Errors
/// SQLite errors.
pub fn clients_ever(db: &Db) -> rusqlite::Result<i64> {
    db.conn().query_row(
        "SELECT COUNT(DISTINCT client) FROM dns_query_log",
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn private_folder_and_file() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("dns");
        open(&dir, None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    }

    #[test]
    fn rows_and_token_of_the_shared_database_move_once() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("pinas.db");
        let shared = pinas_core::db::Db::open(&old).unwrap();
        shared
            .conn()
            .execute_batch(
                "INSERT INTO dns_records (name, type, value, ttl_secs, comment, created_at)
                   VALUES ('printer.home', 'A', '192.168.1.20', 300, '', 1);
                 INSERT INTO dns_pihole_token (id, token, created_at) VALUES (1, 'abc', 1);",
            )
            .unwrap();
        drop(shared);
        let dir = d.path().join("dns");
        let db = open(&dir, Some(&old)).unwrap();
        let n: i64 = db
            .conn()
            .query_row("SELECT COUNT(*) FROM dns_records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(crate::pihole::load_or_create(&dir).unwrap(), "abc");
        drop(db);
        // Only into a new file: a second start does not copy again.
        let db = open(&dir, Some(&old)).unwrap();
        let n: i64 = db
            .conn()
            .query_row("SELECT COUNT(*) FROM dns_records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
