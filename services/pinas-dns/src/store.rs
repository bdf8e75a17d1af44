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
use pinas_core::Error;
use rusqlite::Connection;
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
pub fn ensure_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::unavailable(
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
pub fn open(dir: &Path, legacy: Option<&Path>) -> Result<Db, Error> {
    ensure_dir(dir)?;
    let path = dir.join(DB_FILE);
    let fail = |e: &dyn std::fmt::Display| {
        Error::unavailable(
            "dns_state_unavailable",
            format!("cannot open {}: {e}", path.display()),
        )
    };
    let fresh = !path.exists();
    let mut conn = Connection::open(&path).map_err(|e| fail(&e))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    configure(&conn).map_err(|e| fail(&e))?;
    migrations().to_latest(&mut conn).map_err(|e| fail(&e))?;
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
            use rusqlite::OptionalExtension;
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

/// `<state_dir>/dns`: where the role keeps everything it writes.
pub fn role_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dns")
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
