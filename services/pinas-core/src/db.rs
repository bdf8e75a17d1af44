//! The PiNAS database: one SQLite file in WAL mode, schema from embedded migrations.
//!
//! Migrations live in `services/pinas-core/migrations/`, one file per step, applied in
//! order with `rusqlite_migration` (the schema version is SQLite's `user_version`). Each
//! role owns its tables (named in its migration file); other roles only read them.
//! Append new steps; never edit a step that has shipped.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

/// The ordered schema migrations.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_core.sql")),
        M::up(include_str!("../migrations/0002_nas.sql")),
        M::up(include_str!("../migrations/0003_dns.sql")),
        M::up(include_str!("../migrations/0004_dns_control.sql")),
    ])
}

/// A database error with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: String,
        source: rusqlite_migration::Error,
    },
}

/// Opens (creating if needed) the database at `path`, sets WAL mode, foreign keys and a
/// 5 s busy timeout, and applies pending migrations.
///
/// # Errors
/// [`DbError`] when the file cannot be opened or a migration fails (the file is then left
/// at its previous schema version: each step runs in a transaction).
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let p = path.display().to_string();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Roles start together at boot: set up and migrate one process at a time, or both
    // would see the old schema version and the second would fail with "table already
    // exists" (or meet the first one's switch to WAL mode, which SQLite reports as busy
    // without waiting). Without the lock (read-only folder, odd filesystem) go ahead.
    let _lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path.with_extension("migrate.lock"))
        .and_then(|f| f.lock().map(|()| f));
    make_private(path).map_err(|e| DbError::Open {
        path: p.clone(),
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot make it private (mode 0600): {e}")),
        ),
    })?;
    let mut conn = Connection::open(path).map_err(|source| DbError::Open {
        path: p.clone(),
        source,
    })?;
    configure(&conn).map_err(|source| DbError::Open {
        path: p.clone(),
        source,
    })?;
    migrations()
        .to_latest(&mut conn)
        .map_err(|source| DbError::Migrate { path: p, source })?;
    Ok(conn)
}

/// Creates the database file with mode 0600, or narrows an existing one (and its `-wal`
/// and `-shm` files) to 0600: it holds password hashes and session tokens' hashes.
/// SQLite gives the `-wal` and `-shm` files it creates the database file's mode.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL is durable across application crashes in WAL mode; only a power cut can
    // lose the last transactions, never corrupt the file.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// A shared connection. SQLite serialises writers anyway; one connection behind a mutex
/// keeps memory small, and queries here are short.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    /// Opens the database (see [`open`]).
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Ok(Db(Arc::new(Mutex::new(open(path)?))))
    }

    /// Wraps an open connection.
    pub fn from_connection(conn: Connection) -> Db {
        Db(Arc::new(Mutex::new(conn)))
    }

    /// Locks the connection. Keep the guard for one short unit of work; never across an
    /// `.await`.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads a setting from the `settings` table.
    pub fn setting(&self, key: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.conn()
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()
    }

    /// Writes a setting to the `settings` table.
    pub fn set_setting(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn processes_starting_together_both_open() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || open(&p).map(drop))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }

    #[test]
    fn database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        // An older box's database, readable by everyone, is narrowed at the next open.
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = open(&p).unwrap();
        c.execute("INSERT INTO settings (key, value) VALUES ('k', 'v')", [])
            .unwrap();
        for name in ["pinas.db", "pinas.db-wal", "pinas.db-shm"] {
            let mode = std::fs::metadata(d.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn open_twice_is_idempotent_and_wal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        drop(open(&p).unwrap());
        let c = open(&p).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let db = Db::from_connection(c);
        db.set_setting("a", "1").unwrap();
        db.set_setting("a", "2").unwrap();
        assert_eq!(db.setting("a").unwrap().as_deref(), Some("2"));
    }
}
