//! The companion role's own database, `<state_dir>/companion/companion.db` (SQLite, WAL),
//! with the migrations in `services/pinas-companion/migrations`. Every SQL statement of
//! the role is here, with typed rows in and out.
//!
//! The role keeps everything it writes under `<state_dir>/companion/` (mode 0700): this
//! database and the pairing token's hash (`pairing-token`, 0600), so that
//! `pinas companion` can run as its own user with only that folder writable. Other roles
//! ask its API; none opens this file.

use std::path::{Path, PathBuf};

use pinas_core::db::Db;
use rusqlite::{params, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;

use crate::config::Settings;
use crate::error::CompanionError;
use crate::nas::NasState;

/// The database file's name inside the role's folder.
pub const DB_FILE: &str = "companion.db";

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!(
        "../migrations/0001_companion.sql"
    ))])
}

/// `<state_dir>/companion`: where the role keeps everything it writes.
pub fn role_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("companion")
}

/// Creates `dir` if missing, makes it private (0700), and opens (creating if needed)
/// `<dir>/companion.db` with mode 0600, WAL and a 5 s busy timeout, migrated.
///
/// # Errors
/// 503 `companion_state_unavailable` naming the folder or file.
pub fn open(dir: &Path) -> Result<Db, CompanionError> {
    let conn = pinas_core::db::open_role_db(dir, DB_FILE, &[], &migrations())
        .map_err(|m| CompanionError::unavailable("companion_state_unavailable", m))?;
    Ok(Db::from_connection(conn))
}

// ---- settings ----

/// The settings an admin saved, with when (Unix ms); `None` before the first save.
///
/// # Errors
/// Database errors; a stored row that no longer parses is an internal error.
pub fn settings(db: &Db) -> Result<Option<(Settings, i64)>, CompanionError> {
    let row: Option<(String, i64)> = db
        .conn()
        .query_row(
            "SELECT json, saved_at_ms FROM settings WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(json, at)| {
        serde_json::from_str::<StoredSettings>(&json)
            .map(|s| (s.into(), at))
            .map_err(|e| CompanionError::internal(format!("stored companion settings: {e}")))
    })
    .transpose()
}

/// Replaces the saved settings (the SecureOn password too, stored as given).
///
/// # Errors
/// Database errors.
pub fn save_settings(db: &Db, s: &Settings, at_ms: i64) -> Result<(), CompanionError> {
    let json = serde_json::to_string(&StoredSettings::from(s.clone()))
        .map_err(|e| CompanionError::internal(e.to_string()))?;
    db.conn().execute(
        "INSERT INTO settings (id, json, saved_at_ms) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET json = excluded.json, saved_at_ms = excluded.saved_at_ms",
        params![json, at_ms],
    )?;
    Ok(())
}

/// [`Settings`] as stored: the SecureOn password is kept, which the API never shows.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSettings {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    secureon: String,
}

impl From<Settings> for StoredSettings {
    fn from(mut s: Settings) -> Self {
        let secureon = s.secureon_password.take().unwrap_or_default();
        StoredSettings {
            settings: s,
            secureon,
        }
    }
}

impl From<StoredSettings> for Settings {
    fn from(s: StoredSettings) -> Self {
        Settings {
            secureon_password: Some(s.secureon),
            ..s.settings
        }
    }
}

// ---- the NAS's state history ----

/// One transition of the NAS's state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateRow {
    pub state: NasState,
    /// Why it changed, for people, e.g. `3 heartbeats missed`.
    pub reason: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// The current state: the last transition, `None` before the first.
///
/// # Errors
/// Database errors.
pub fn current_state(db: &Db) -> Result<Option<StateRow>, CompanionError> {
    let row = db
        .conn()
        .query_row(
            "SELECT state, reason, at_ms FROM nas_states ORDER BY id DESC LIMIT 1",
            [],
            state_row,
        )
        .optional()?;
    Ok(row)
}

/// Records a transition.
///
/// # Errors
/// Database errors.
pub fn push_state(db: &Db, row: &StateRow) -> Result<(), CompanionError> {
    db.conn().execute(
        "INSERT INTO nas_states (state, reason, at_ms) VALUES (?1, ?2, ?3)",
        params![row.state.as_str(), row.reason, row.at_ms],
    )?;
    Ok(())
}

/// The transitions since `from_ms` (inclusive), oldest first, plus the last one before
/// it (the state in force at `from_ms`), at most `limit`.
///
/// # Errors
/// Database errors.
pub fn history(db: &Db, from_ms: i64, limit: u32) -> Result<Vec<StateRow>, CompanionError> {
    let conn = db.conn();
    let before = conn
        .query_row(
            "SELECT state, reason, at_ms FROM nas_states WHERE at_ms < ?1
             ORDER BY at_ms DESC, id DESC LIMIT 1",
            [from_ms],
            state_row,
        )
        .optional()?;
    let mut stmt = conn.prepare(
        "SELECT state, reason, at_ms FROM nas_states WHERE at_ms >= ?1
         ORDER BY at_ms, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from_ms, limit], state_row)?;
    let mut out: Vec<StateRow> = before.into_iter().collect();
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateRow> {
    let s: String = r.get(0)?;
    Ok(StateRow {
        state: NasState::parse(&s).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown NAS state {s:?}").into(),
            )
        })?,
        reason: r.get(1)?,
        at_ms: r.get(2)?,
    })
}

// ---- the snapshot ----

/// The NAS's last snapshot as stored.
#[derive(Debug, Clone)]
pub struct SnapshotRow {
    pub schema_version: u32,
    /// The JSON the NAS sent, unchanged.
    pub body: String,
    pub size_bytes: i64,
    pub received_at_ms: i64,
}

/// Replaces the snapshot in one statement: a reader sees the old one or the new one.
///
/// # Errors
/// Database errors.
pub fn save_snapshot(db: &Db, s: &SnapshotRow) -> Result<(), CompanionError> {
    db.conn().execute(
        "INSERT INTO snapshot (id, schema_version, body, size_bytes, received_at_ms)
         VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET schema_version = excluded.schema_version,
             body = excluded.body, size_bytes = excluded.size_bytes,
             received_at_ms = excluded.received_at_ms",
        params![s.schema_version, s.body, s.size_bytes, s.received_at_ms],
    )?;
    Ok(())
}

/// The last snapshot, `None` before the first.
///
/// # Errors
/// Database errors.
pub fn snapshot(db: &Db) -> Result<Option<SnapshotRow>, CompanionError> {
    Ok(db
        .conn()
        .query_row(
            "SELECT schema_version, body, size_bytes, received_at_ms FROM snapshot WHERE id = 1",
            [],
            |r| {
                Ok(SnapshotRow {
                    schema_version: r.get(0)?,
                    body: r.get(1)?,
                    size_bytes: r.get(2)?,
                    received_at_ms: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Runs `f` (database work) on tokio's blocking pool.
///
/// # Errors
/// `f`'s error; 500 when the task panicked.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CompanionError> + Send + 'static,
) -> Result<T, CompanionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CompanionError::internal(format!("companion task failed: {e}")))?
}
