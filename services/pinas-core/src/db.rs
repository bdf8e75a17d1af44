//! The PiNAS database: one SQLite file in WAL mode, schema from embedded migrations.
//!
//! Migrations live in `services/pinas-core/migrations/`, one file per step, applied in
//! order with `rusqlite_migration` (the schema version is SQLite's `user_version`). Each
//! role owns its tables (named in its migration file); other roles only read them.
//! Append new steps; never edit a step that has shipped.
//!
//! Every database is migrated with [`migrate_keeping_copy`]: before a new version of
//! PiNAS changes a schema it keeps a copy of the file as it was (SQLite's online backup,
//! `<file>.schema-<old version>`), and an older version that meets a schema newer than it
//! knows (it was booted again after an update was rolled back) restores that copy,
//! setting the newer file aside, instead of refusing to start (docs/updates.md).
//!
//! A process reaches the file through [`Db`], a pool of up to [`POOL_SIZE`] connections
//! (r2d2), so one slow caller never holds the database for the others. Write
//! transactions go through [`Db::write`] and stay short: no program and no password
//! hashing inside them.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
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
    #[error("cannot migrate database {path}: {message}")]
    Migrate { path: String, message: String },
}

/// What [`migrate_keeping_copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// The schema was already this version's.
    UpToDate,
    /// Migrated from schema `from` to `to`, after keeping the file as it was in `copy`.
    Upgraded {
        from: usize,
        to: usize,
        copy: Option<PathBuf>,
    },
    /// The schema was `from`, newer than this version's `to` (a rollback): the copy kept
    /// before the upgrade to `from` was restored, and the newer file set aside as
    /// `set_aside`.
    Restored {
        from: usize,
        to: usize,
        set_aside: PathBuf,
    },
}

/// `<db>.schema-<version>`: the copy of `db` kept before it left schema `version`.
pub fn schema_copy_path(db: &Path, version: usize) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(format!(".schema-{version}"));
    PathBuf::from(p)
}

/// Brings the database behind `conn` (the file `path`) to the newest schema of
/// `migrations`, keeping what a rollback needs:
///
/// - schema older than `migrations` (and not empty): the file is copied first with
///   SQLite's online backup to [`schema_copy_path`]`(path, old)` (written beside it,
///   mode 0600, fsynced, renamed into place), then migrated; a failed migration leaves
///   the file at its old schema (each run is one transaction);
/// - schema newer (the file was migrated by a newer PiNAS, then the system slot rolled
///   back): the newer file is set aside as `<path>.schema-<new>.rolled-back` (`VACUUM
///   INTO`), and the copy `<path>.schema-<this version's schema>` is restored into it
///   (online backup). Without such a copy nothing is changed and the error says so.
///
/// The caller holds the only connection (the start-up migration lock).
///
/// # Errors
/// `"<why>"` when the copy, the restore or a migration fails, or the schema is newer and
/// no copy was kept.
pub fn migrate_keeping_copy(
    conn: &mut Connection,
    path: &Path,
    migrations: &Migrations<'_>,
) -> Result<Migrated, String> {
    let current: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(|e| format!("cannot read the schema version: {e}"))? as usize;
    let pending = migrations
        .pending_migrations(conn)
        .map_err(|e| format!("cannot read the schema version: {e}"))?;
    let latest = (current as i64 + i64::from(pending)) as usize;
    if pending < 0 {
        let copy = schema_copy_path(path, latest);
        if !copy.is_file() {
            return Err(format!(
                "its schema is version {current}, newer than this version of PiNAS knows \
                 ({latest}), and there is no copy of it at version {latest} ({}) to go back to",
                copy.display()
            ));
        }
        let mut aside = schema_copy_path(path, current).into_os_string();
        aside.push(".rolled-back");
        let aside = PathBuf::from(aside);
        let _ = std::fs::remove_file(&aside);
        let aside_text = aside
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", aside.display()))?;
        conn.execute("VACUUM INTO ?1", [aside_text])
            .map_err(|e| format!("cannot set the newer database aside: {e}"))?;
        set_private(&aside);
        conn.restore(
            rusqlite::MAIN_DB,
            &copy,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(|e| format!("cannot restore {}: {e}", copy.display()))?;
        migrations
            .to_latest(conn)
            .map_err(|e| format!("after restoring {}: {e}", copy.display()))?;
        return Ok(Migrated::Restored {
            from: current,
            to: latest,
            set_aside: aside,
        });
    }
    if pending == 0 {
        return Ok(Migrated::UpToDate);
    }
    // A new file (schema 0) has nothing to keep.
    let copy = if current > 0 {
        let copy = schema_copy_path(path, current);
        let mut tmp = copy.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        conn.backup(rusqlite::MAIN_DB, &tmp, None)
            .map_err(|e| format!("cannot copy it before migrating: {e}"))?;
        set_private(&tmp);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &copy))
            .map_err(|e| format!("cannot keep the copy {}: {e}", copy.display()))?;
        if let Some(dir) = copy.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Some(copy)
    } else {
        None
    };
    migrations.to_latest(conn).map_err(|e| e.to_string())?;
    Ok(Migrated::Upgraded {
        from: current,
        to: latest,
        copy,
    })
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Logs what [`migrate_keeping_copy`] did to `path`.
pub fn log_migrated(path: &Path, m: &Migrated) {
    match m {
        Migrated::UpToDate => {}
        Migrated::Upgraded { from, to, copy } => tracing::info!(
            db = %path.display(), from, to, copy = ?copy,
            "database schema upgraded; the copy of the old one is kept for a rollback"
        ),
        Migrated::Restored {
            from,
            to,
            set_aside,
        } => tracing::warn!(
            db = %path.display(), from, to, set_aside = %set_aside.display(),
            "database schema newer than this version (a rollback): the copy kept before the update was restored; the newer database is set aside"
        ),
    }
}

/// Opens a role's own database, the one file of a role that runs as its own user
/// (`pinas power`, `pinas companion`): creates `dir` if missing and makes it private
/// (0700, best effort: a folder the system prepared for the role may belong to root),
/// opens (creating if needed) `<dir>/<file>` with mode 0600, a 5 s busy timeout and WAL,
/// sets each of `pragmas` (name, value), and applies `migrations`.
///
/// # Errors
/// `"cannot open <folder or file>: <why>"`, for the role to answer in its own error
/// (503 `<role>_state_unavailable`).
pub fn open_role_db(
    dir: &Path,
    file: &str,
    pragmas: &[(&str, &str)],
    migrations: &Migrations<'_>,
) -> Result<Connection, String> {
    use std::os::unix::fs::PermissionsExt;
    let fail =
        |what: &Path, e: &dyn std::fmt::Display| format!("cannot open {}: {e}", what.display());
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, &e))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let path = dir.join(file);
    let mut conn = Connection::open(&path).map_err(|e| fail(&path, &e))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| fail(&path, &e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail(&path, &e))?;
    for (name, value) in pragmas {
        conn.pragma_update(None, name, value)
            .map_err(|e| fail(&path, &e))?;
    }
    let m = migrate_keeping_copy(&mut conn, &path, migrations).map_err(|e| fail(&path, &e))?;
    log_migrated(&path, &m);
    Ok(conn)
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
    let m = migrate_keeping_copy(&mut conn, path, &migrations())
        .map_err(|message| DbError::Migrate { path: p, message })?;
    log_migrated(path, &m);
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

/// Connections of one process to the database: a small pool, so a slow caller holding a
/// connection (a long read, a write transaction) never makes the others wait for it.
/// In WAL mode readers never wait for the writer; writers queue on SQLite's lock for up
/// to the busy timeout (5 s).
///
/// Keep a connection for one short unit of work: no program (`smbpasswd`, `testparm`),
/// no password hashing and no `.await` while a connection, and above all a write
/// transaction, is open.
#[derive(Clone)]
pub struct Db(Source);

#[derive(Clone)]
enum Source {
    Pool {
        pool: r2d2::Pool<SqliteConnectionManager>,
        path: Arc<PathBuf>,
    },
    /// An in-memory database has no file a second connection could open.
    Single(Arc<Mutex<Connection>>),
}

/// Connections a process keeps at most. Each costs a file handle and up to SQLite's
/// page cache (2 MiB by default); four cover the web role's concurrent requests and the
/// DNS role's query log on a two-core board.
pub const POOL_SIZE: u32 = 4;

/// How long [`Db::conn`] waits for a pooled connection before it opens one of its own.
pub const POOL_WAIT: Duration = Duration::from_secs(5);

/// A connection from [`Db::conn`]: pooled, of its own when every pooled one was busy for
/// [`POOL_WAIT`], or the one connection of an in-memory database. Derefs to
/// [`rusqlite::Connection`].
pub enum Conn<'a> {
    Pooled(r2d2::PooledConnection<SqliteConnectionManager>),
    Own(Connection),
    Single(MutexGuard<'a, Connection>),
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Own(c) => c,
            Conn::Single(c) => c,
        }
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Own(c) => c,
            Conn::Single(c) => c,
        }
    }
}

fn pool(path: &Path) -> Db {
    let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
    // Unchecked: connections open on first use, and an error then is the caller's to
    // see (the file was just opened and migrated, so it does not happen in practice).
    let pool = r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(0))
        .connection_timeout(POOL_WAIT)
        .build_unchecked(manager);
    Db(Source::Pool {
        pool,
        path: Arc::new(path.to_path_buf()),
    })
}

impl Db {
    /// Opens the database (see [`open`]: created if needed, migrated) with a pool of up
    /// to [`POOL_SIZE`] connections, each with [`open`]'s settings.
    ///
    /// # Errors
    /// [`DbError`] when the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        // Migrate once, here; the pool's connections only set their options.
        drop(open(path)?);
        Ok(pool(path))
    }

    /// A pool for the database file of `conn`, which the caller opened and migrated (a
    /// role with its own database and migrations). Pooled connections get [`open`]'s
    /// settings: 5 s busy timeout, WAL, foreign keys. An in-memory `conn` stays the only
    /// connection.
    pub fn from_connection(conn: Connection) -> Db {
        match conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) {
            Some(path) => {
                drop(conn);
                pool(&path)
            }
            None => Db(Source::Single(Arc::new(Mutex::new(conn)))),
        }
    }

    /// A connection for one short unit of work. Waits up to [`POOL_WAIT`] for a free
    /// pooled connection, then opens one of its own (logged) rather than fail.
    ///
    /// # Panics
    /// Only when the database file, which was open before, can no longer be opened at
    /// all (removed folder, no file handles left).
    pub fn conn(&self) -> Conn<'_> {
        let (pool, path) = match &self.0 {
            Source::Pool { pool, path } => (pool, path),
            Source::Single(c) => return Conn::Single(c.lock().unwrap_or_else(|e| e.into_inner())),
        };
        match pool.get() {
            Ok(c) => Conn::Pooled(c),
            Err(e) => {
                tracing::warn!(error = %e, "every database connection is busy; opening another");
                let c = Connection::open(path.as_path())
                    .and_then(|c| configure(&c).map(|()| c))
                    .unwrap_or_else(|e| panic!("cannot open database {}: {e}", path.display()));
                Conn::Own(c)
            }
        }
    }

    /// Runs `f` in one write transaction and commits it when `f` returns `Ok` (rolls back
    /// otherwise). The transaction starts `IMMEDIATE`: it takes SQLite's write lock
    /// first, so a read-then-write waits for another writer instead of failing with
    /// "database is locked" halfway. Keep `f` short: no programs, no password hashing.
    ///
    /// # Errors
    /// `f`'s error, or SQLite's when the transaction cannot start or commit.
    pub fn write<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
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

    const V1: [&str; 2] = [
        "CREATE TABLE shares (name TEXT PRIMARY KEY);",
        "ALTER TABLE shares ADD COLUMN path TEXT;",
    ];
    const V2_STEP: &str = "CREATE TABLE records (name TEXT PRIMARY KEY, value TEXT NOT NULL);";

    fn v1() -> Migrations<'static> {
        Migrations::new(V1.iter().map(|s| M::up(s)).collect())
    }

    fn v2() -> Migrations<'static> {
        Migrations::new(V1.iter().chain([&V2_STEP]).map(|s| M::up(s)).collect())
    }

    fn version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn names(conn: &Connection, table: &str) -> Vec<String> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM {table} ORDER BY name"))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn an_upgrade_keeps_a_copy_and_a_rollback_restores_it() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        // Version 1 of PiNAS: a new file has nothing to keep.
        let mut conn = Connection::open(&p).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let m = migrate_keeping_copy(&mut conn, &p, &v1()).unwrap();
        assert_eq!(
            m,
            Migrated::Upgraded {
                from: 0,
                to: 2,
                copy: None
            }
        );
        conn.execute(
            "INSERT INTO shares (name, path) VALUES ('media', '/d/media')",
            [],
        )
        .unwrap();
        assert_eq!(
            migrate_keeping_copy(&mut conn, &p, &v1()).unwrap(),
            Migrated::UpToDate
        );
        drop(conn);

        // Version 2 starts: the file at schema 2 is kept first, then migrated.
        let mut conn = Connection::open(&p).unwrap();
        let m = migrate_keeping_copy(&mut conn, &p, &v2()).unwrap();
        let copy = schema_copy_path(&p, 2);
        assert_eq!(
            m,
            Migrated::Upgraded {
                from: 2,
                to: 3,
                copy: Some(copy.clone())
            }
        );
        assert_eq!(version(&copy), 2);
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            names(&Connection::open(&copy).unwrap(), "shares"),
            ["media"]
        );
        // Version 2 writes what version 1 never knew, and changes a share.
        conn.execute("INSERT INTO records VALUES ('nas.home', '192.0.2.10')", [])
            .unwrap();
        conn.execute("INSERT INTO shares (name) VALUES ('new-in-v2')", [])
            .unwrap();
        drop(conn);
        assert_eq!(version(&p), 3);

        // The slot rolls back: version 1 meets schema 3 and goes back to its copy.
        let mut conn = Connection::open(&p).unwrap();
        let m = migrate_keeping_copy(&mut conn, &p, &v1()).unwrap();
        let aside = d.path().join("pinas.db.schema-3.rolled-back");
        assert_eq!(
            m,
            Migrated::Restored {
                from: 3,
                to: 2,
                set_aside: aside.clone()
            }
        );
        assert_eq!(names(&conn, "shares"), ["media"]);
        assert!(
            conn.prepare("SELECT * FROM records").is_err(),
            "schema 2 has no records"
        );
        drop(conn);
        assert_eq!(version(&p), 2);
        // What version 2 wrote is set aside, not lost.
        assert_eq!(version(&aside), 3);
        let a = Connection::open(&aside).unwrap();
        assert_eq!(names(&a, "records"), ["nas.home"]);
        assert_eq!(names(&a, "shares"), ["media", "new-in-v2"]);
        assert_eq!(
            std::fs::metadata(&aside).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_newer_schema_without_a_copy_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        let mut conn = Connection::open(&p).unwrap();
        migrate_keeping_copy(&mut conn, &p, &v2()).unwrap();
        conn.execute("INSERT INTO records VALUES ('a', 'b')", [])
            .unwrap();
        let e = migrate_keeping_copy(&mut conn, &p, &v1()).unwrap_err();
        assert!(e.contains("newer") && e.contains("schema-2"), "{e}");
        drop(conn);
        assert_eq!(version(&p), 3);
        assert_eq!(names(&Connection::open(&p).unwrap(), "records"), ["a"]);
    }

    #[test]
    fn a_failed_migration_leaves_the_old_schema_and_its_copy() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pinas.db");
        let mut conn = Connection::open(&p).unwrap();
        migrate_keeping_copy(&mut conn, &p, &v1()).unwrap();
        conn.execute("INSERT INTO shares (name) VALUES ('media')", [])
            .unwrap();
        let broken = Migrations::new(
            V1.iter()
                .map(|s| M::up(s))
                .chain([M::up("CREATE TABLE shares (x);")])
                .collect(),
        );
        let e = migrate_keeping_copy(&mut conn, &p, &broken).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(version(&p), 2);
        assert_eq!(version(&schema_copy_path(&p, 2)), 2);
        assert_eq!(names(&conn, "shares"), ["media"]);
    }

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

    /// A caller holding a connection in a write transaction (a slow one) does not make
    /// another caller wait to read, or to get a connection.
    #[test]
    fn a_slow_writer_does_not_block_readers() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("pinas.db")).unwrap();
        db.set_setting("k", "before").unwrap();
        let (started_tx, started) = std::sync::mpsc::channel();
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                db.write(|tx| {
                    tx.execute("UPDATE settings SET value = 'after' WHERE key = 'k'", [])?;
                    started_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(1500));
                    Ok::<_, rusqlite::Error>(())
                })
                .unwrap();
            })
        };
        started.recv().unwrap();
        let t = std::time::Instant::now();
        assert_eq!(db.setting("k").unwrap().as_deref(), Some("before"));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a read waited {:?} for the writer",
            t.elapsed()
        );
        writer.join().unwrap();
        assert_eq!(db.setting("k").unwrap().as_deref(), Some("after"));
    }

    #[test]
    fn an_in_memory_database_keeps_its_one_connection() {
        let mut c = Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut c).unwrap();
        let db = Db::from_connection(c);
        db.set_setting("a", "1").unwrap();
        assert_eq!(db.clone().setting("a").unwrap().as_deref(), Some("1"));
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
    fn a_role_db_is_private_wal_with_its_pragmas_and_migrated() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("role");
        let m = Migrations::new(vec![M::up("CREATE TABLE t (x INTEGER);")]);
        let conn = open_role_db(&dir, "role.db", &[("foreign_keys", "ON")], &m).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("role.db")), 0o600);
        let wal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!((wal.as_str(), fk), ("wal", 1));
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        // a folder that cannot be made: the message names it
        let blocker = d.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let e = open_role_db(&blocker.join("sub"), "role.db", &[], &m).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot open {}", blocker.join("sub").display())),
            "{e}"
        );
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
        drop(c);
        let db = Db::open(&p).unwrap();
        db.set_setting("a", "1").unwrap();
        db.set_setting("a", "2").unwrap();
        assert_eq!(db.setting("a").unwrap().as_deref(), Some("2"));
    }
}
