//! The power role's own database, `<state_dir>/power/power.db` (SQLite, WAL), with the
//! migrations in `services/pinas-power/migrations`. Every SQL statement of the role is
//! here, with typed rows in and out.
//!
//! The role keeps everything it writes under `<state_dir>/power/` (mode 0700): this
//! database and the plugs' Tapo accounts (`credentials.json`, 0600), so that
//! `pinas power` runs as its own user with only that folder writable.

use std::path::{Path, PathBuf};

use pinas_core::db::Db;
use rusqlite::{params, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;

use crate::config::Settings;
use crate::energy::Hourly;
use crate::error::PowerError;
use crate::sampler::Reading;

/// The database file's name inside the role's folder.
pub const DB_FILE: &str = "power.db";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!("../migrations/0001_power.sql"))])
}

/// `<state_dir>/power`: where the role keeps everything it writes.
pub fn role_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("power")
}

/// Creates `dir` if missing, makes it private (0700), and opens (creating if needed)
/// `<dir>/power.db` with mode 0600, WAL, foreign keys and a 5 s busy timeout, migrated.
///
/// # Errors
/// 503 `power_state_unavailable` naming the folder or file.
pub fn open(dir: &Path) -> Result<Db, PowerError> {
    // synchronous = NORMAL, as pinas.db: durable across crashes of the process; a power
    // cut may lose the last samples, never the file. One fsync per checkpoint, not per
    // sample.
    let conn = pinas_core::db::open_role_db(
        dir,
        DB_FILE,
        &[("synchronous", "NORMAL"), ("foreign_keys", "ON")],
        &migrations(),
    )
    .map_err(|m| PowerError::unavailable("power_state_unavailable", m))?;
    Ok(Db::from_connection(conn))
}

// ---- settings ----

/// The settings an admin saved, with when (Unix ms); `None` before the first save.
///
/// # Errors
/// Database errors; a stored row that no longer parses is an internal error.
pub fn settings(db: &Db) -> Result<Option<(Settings, i64)>, PowerError> {
    let row: Option<(String, i64)> = db
        .conn()
        .query_row(
            "SELECT json, saved_at_ms FROM settings WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(json, at)| {
        serde_json::from_str(&json)
            .map(|s| (s, at))
            .map_err(|e| PowerError::internal(format!("stored power settings: {e}")))
    })
    .transpose()
}

/// Saves `s` at `now_ms`.
///
/// # Errors
/// Database errors.
pub fn save_settings(db: &Db, s: &Settings, now_ms: i64) -> Result<(), PowerError> {
    let json = serde_json::to_string(s).map_err(|e| PowerError::internal(e.to_string()))?;
    db.conn().execute(
        "INSERT INTO settings (id, json, saved_at_ms) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET json = excluded.json, saved_at_ms = excluded.saved_at_ms",
        params![json, now_ms],
    )?;
    Ok(())
}

// ---- plugs ----

/// A plug as stored (without its Tapo account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlugRow {
    pub id: i64,
    /// Shown to people, e.g. `NAS` (1 to 64 characters, unique).
    pub name: String,
    /// `host` or `host:port` (port 80 by default).
    pub address: String,
    /// This plug powers the NAS: its running time and cost are the NAS's.
    pub is_nas: bool,
    /// An admin may switch it on and off from PiNAS.
    pub switchable: bool,
    pub created_at_ms: i64,
}

fn plug_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PlugRow> {
    Ok(PlugRow {
        id: r.get(0)?,
        name: r.get(1)?,
        address: r.get(2)?,
        is_nas: r.get(3)?,
        switchable: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

const PLUG_COLS: &str = "id, name, address, is_nas, switchable, created_at_ms";

/// Every plug, by id.
///
/// # Errors
/// Database errors.
pub fn plugs(db: &Db) -> Result<Vec<PlugRow>, PowerError> {
    let conn = db.conn();
    let mut st = conn.prepare_cached(&format!("SELECT {PLUG_COLS} FROM plugs ORDER BY id"))?;
    let rows = st.query_map([], plug_row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Plug `id`.
///
/// # Errors
/// 404 `plug_not_found`; database errors.
pub fn plug(db: &Db, id: i64) -> Result<PlugRow, PowerError> {
    db.conn()
        .query_row(
            &format!("SELECT {PLUG_COLS} FROM plugs WHERE id = ?1"),
            [id],
            plug_row,
        )
        .optional()?
        .ok_or_else(|| PowerError::no_plug(id))
}

fn unique_clash(e: rusqlite::Error, name: &str, address: &str) -> PowerError {
    match &e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            if msg.contains("plugs.name") {
                PowerError::conflict(
                    "plug_name_taken",
                    format!("a plug is already named {name:?}"),
                )
            } else if msg.contains("plugs.address") {
                PowerError::conflict(
                    "plug_address_taken",
                    format!("a plug at {address} is already added"),
                )
            } else {
                e.into()
            }
        }
        _ => e.into(),
    }
}

/// Adds a plug (the NAS's mark moves to it when `is_nas`) and returns it.
///
/// # Errors
/// 409 `plug_name_taken` / `plug_address_taken`; database errors.
pub fn insert_plug(
    db: &Db,
    name: &str,
    address: &str,
    is_nas: bool,
    switchable: bool,
    now_ms: i64,
) -> Result<PlugRow, PowerError> {
    let id = db.write(|tx| {
        if is_nas {
            tx.execute("UPDATE plugs SET is_nas = 0 WHERE is_nas = 1", [])?;
        }
        tx.execute(
            "INSERT INTO plugs (name, address, is_nas, switchable, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, address, is_nas, switchable, now_ms],
        )
        .map_err(|e| unique_clash(e, name, address))?;
        Ok::<_, PowerError>(tx.last_insert_rowid())
    })?;
    plug(db, id)
}

/// Replaces plug `p.id`'s name, address and flags.
///
/// # Errors
/// 404, 409 as [`insert_plug`]; database errors.
pub fn update_plug(db: &Db, p: &PlugRow) -> Result<(), PowerError> {
    db.write(|tx| {
        if p.is_nas {
            tx.execute("UPDATE plugs SET is_nas = 0 WHERE is_nas = 1 AND id <> ?1", [p.id])?;
        }
        let n = tx
            .execute(
                "UPDATE plugs SET name = ?2, address = ?3, is_nas = ?4, switchable = ?5 WHERE id = ?1",
                params![p.id, p.name, p.address, p.is_nas, p.switchable],
            )
            .map_err(|e| unique_clash(e, &p.name, &p.address))?;
        if n == 0 {
            return Err(PowerError::no_plug(p.id));
        }
        Ok(())
    })
}

/// Deletes plug `id` and its history.
///
/// # Errors
/// 404; database errors.
pub fn delete_plug(db: &Db, id: i64) -> Result<(), PowerError> {
    let n = db.conn().execute("DELETE FROM plugs WHERE id = ?1", [id])?;
    if n == 0 {
        return Err(PowerError::no_plug(id));
    }
    Ok(())
}

// ---- samples and gaps ----

/// A stored sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SampleRow {
    pub at_ms: i64,
    pub power_w: f64,
    pub today_wh: i64,
    pub month_wh: i64,
    /// PiNAS's running total for the plug, Wh.
    pub total_wh: i64,
}

/// Plug `plug`'s last sample.
///
/// # Errors
/// Database errors.
pub fn last_sample(db: &Db, plug: i64) -> Result<Option<SampleRow>, PowerError> {
    let conn = db.conn();
    let row = conn
        .query_row(
            "SELECT at_ms, power_w, today_wh, month_wh, total_wh FROM samples
             WHERE plug_id = ?1 ORDER BY at_ms DESC LIMIT 1",
            [plug],
            |r| {
                Ok(SampleRow {
                    at_ms: r.get(0)?,
                    power_w: r.get(1)?,
                    today_wh: r.get(2)?,
                    month_wh: r.get(3)?,
                    total_wh: r.get(4)?,
                })
            },
        )
        .optional()?;
    // Raw samples may be gone (a long stop): the total carries on from the aggregates.
    if row.is_some() {
        return Ok(row);
    }
    let total: Option<i64> = conn.query_row(
        "SELECT MAX(t) FROM (SELECT MAX(total_wh) AS t FROM minutes WHERE plug_id = ?1
                            UNION ALL SELECT MAX(total_wh) FROM hours WHERE plug_id = ?1)",
        [plug],
        |r| r.get(0),
    )?;
    Ok(total.map(|t| SampleRow {
        at_ms: 0,
        power_w: 0.0,
        // Unknown counters: the next reading starts a new baseline (see energy::delta).
        today_wh: -1,
        month_wh: -1,
        total_wh: t,
    }))
}

/// One write of the pollers, queued and stored in batches ([`write_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A sample of `plug` at `at_ms` with PiNAS's running total; it closes the plug's open
    /// gap.
    Sample {
        plug: i64,
        at_ms: i64,
        reading: Reading,
        total_wh: i64,
    },
    /// `plug` stopped answering after `start_ms` (its last sample): a gap opens unless
    /// one is open.
    Gap {
        plug: i64,
        start_ms: i64,
        reason: String,
    },
}

/// Stores `writes` in order in one transaction. A write for a plug deleted meanwhile is
/// skipped.
///
/// # Errors
/// Database errors (nothing is stored then).
pub fn write_batch(db: &Db, writes: &[Write]) -> Result<(), PowerError> {
    db.write(|tx| {
        let mut sample = tx.prepare_cached(
            "INSERT OR REPLACE INTO samples (plug_id, at_ms, power_w, today_wh, month_wh, total_wh)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM plugs WHERE id = ?1)",
        )?;
        let mut close =
            tx.prepare_cached("UPDATE gaps SET end_ms = ?2 WHERE plug_id = ?1 AND end_ms IS NULL")?;
        let mut open = tx.prepare_cached(
            "INSERT INTO gaps (plug_id, start_ms, reason)
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM plugs WHERE id = ?1)
               AND NOT EXISTS (SELECT 1 FROM gaps WHERE plug_id = ?1 AND end_ms IS NULL)",
        )?;
        for w in writes {
            match w {
                Write::Sample {
                    plug,
                    at_ms,
                    reading: r,
                    total_wh,
                } => {
                    sample.execute(params![
                        plug, at_ms, r.power_w, r.today_wh, r.month_wh, total_wh
                    ])?;
                    close.execute(params![plug, at_ms])?;
                }
                Write::Gap {
                    plug,
                    start_ms,
                    reason,
                } => {
                    open.execute(params![plug, start_ms, reason])?;
                }
            }
        }
        Ok(())
    })
}

/// Stores a sample of `plug` at `at_ms` and closes its open gap, in one transaction.
///
/// # Errors
/// Database errors.
pub fn insert_sample(
    db: &Db,
    plug: i64,
    at_ms: i64,
    r: &Reading,
    total_wh: i64,
) -> Result<(), PowerError> {
    write_batch(
        db,
        &[Write::Sample {
            plug,
            at_ms,
            reading: *r,
            total_wh,
        }],
    )
}

/// Stores many samples of `plug` in one transaction (imports, tests, the benchmark):
/// `(at_ms, reading, total_wh)` each.
///
/// # Errors
/// Database errors (nothing is stored then).
pub fn insert_samples(db: &Db, plug: i64, rows: &[(i64, Reading, i64)]) -> Result<(), PowerError> {
    db.write(|tx| {
        let mut st = tx.prepare_cached(
            "INSERT OR REPLACE INTO samples (plug_id, at_ms, power_w, today_wh, month_wh, total_wh)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (at, r, total) in rows {
            st.execute(params![plug, at, r.power_w, r.today_wh, r.month_wh, total])?;
        }
        Ok(())
    })
}

/// Opens a gap for `plug` from `start_ms` unless one is open.
///
/// # Errors
/// Database errors.
pub fn open_gap(db: &Db, plug: i64, start_ms: i64, reason: &str) -> Result<(), PowerError> {
    write_batch(
        db,
        &[Write::Gap {
            plug,
            start_ms,
            reason: reason.to_string(),
        }],
    )
}

/// A time without samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Gap {
    pub start_ms: i64,
    /// `null` while the plug still does not answer.
    pub end_ms: Option<i64>,
    /// The first error, e.g. `plug_unreachable: ...`.
    pub reason: String,
}

/// `plug`'s gaps that overlap `[from_ms, to_ms)`.
///
/// # Errors
/// Database errors.
pub fn gaps(db: &Db, plug: i64, from_ms: i64, to_ms: i64) -> Result<Vec<Gap>, PowerError> {
    let conn = db.conn();
    let mut st = conn.prepare_cached(
        "SELECT start_ms, end_ms, reason FROM gaps
         WHERE plug_id = ?1 AND start_ms < ?3 AND (end_ms IS NULL OR end_ms > ?2)
         ORDER BY start_ms",
    )?;
    let rows = st
        .query_map(params![plug, from_ms, to_ms], |r| {
            Ok(Gap {
                start_ms: r.get(0)?,
                end_ms: r.get(1)?,
                reason: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Which table a series comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

/// One point of a series: a sample, or a period's mean (`at_ms` its start).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub at_ms: i64,
    pub power_w: f64,
    pub min_w: f64,
    pub max_w: f64,
    /// Samples behind the point (1 for a raw sample).
    pub samples: i64,
    pub total_wh: i64,
}

/// `plug`'s points in `[from_ms, to_ms)` at `res`.
///
/// # Errors
/// Database errors.
pub fn series(
    db: &Db,
    plug: i64,
    res: Resolution,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Point>, PowerError> {
    let sql = match res {
        Resolution::Raw => {
            "SELECT at_ms, power_w, power_w, power_w, 1, total_wh FROM samples
             WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms"
        }
        Resolution::Minute => {
            "SELECT at_ms, mean_w, min_w, max_w, samples, total_wh FROM minutes
             WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms"
        }
        Resolution::Hour => {
            "SELECT at_ms, mean_w, min_w, max_w, samples, total_wh FROM hours
             WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms"
        }
    };
    let conn = db.conn();
    let mut st = conn.prepare_cached(sql)?;
    let rows = st
        .query_map(params![plug, from_ms, to_ms], |r| {
            Ok(Point {
                at_ms: r.get(0)?,
                power_w: r.get(1)?,
                min_w: r.get(2)?,
                max_w: r.get(3)?,
                samples: r.get(4)?,
                total_wh: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

// ---- rollups ----

/// What one rollup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupStats {
    pub minutes: usize,
    pub hours: usize,
    pub deleted: usize,
}

fn watermark(tx: &rusqlite::Transaction<'_>, level: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT done_until_ms FROM rollups WHERE level = ?1",
        [level],
        |r| r.get(0),
    )
    .optional()
}

fn set_watermark(tx: &rusqlite::Transaction<'_>, level: &str, at: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO rollups (level, done_until_ms) VALUES (?1, ?2)
         ON CONFLICT (level) DO UPDATE SET done_until_ms = excluded.done_until_ms",
        params![level, at],
    )?;
    Ok(())
}

/// Folds samples into 1-minute means up to the last whole minute before `now_ms` (less
/// 10 s for a sample being written), whole minutes into 1-hour means, then deletes what
/// is past its retention in `s` and already folded. A sample counts `interval_ms` (a
/// minute counts at most 60 s) towards `active_secs` when its power is at least
/// `s.nas_threshold_w`, towards `standby_secs` when it is at least `s.nas_standby_w` and
/// below the threshold.
///
/// # Errors
/// Database errors (nothing is changed then).
pub fn rollup(db: &Db, now_ms: i64, s: &Settings) -> Result<RollupStats, PowerError> {
    let minute_cut = (now_ms - 10_000).div_euclid(MINUTE_MS) * MINUTE_MS;
    let hour_cut = minute_cut.div_euclid(HOUR_MS) * HOUR_MS;
    let secs = (s.interval_ms / 1000).max(1) as i64;
    db.write(|tx| {
        let mut st = RollupStats::default();
        let from = watermark(tx, "minutes")?.unwrap_or(i64::MIN);
        st.minutes = tx.execute(
            "INSERT OR REPLACE INTO minutes
             SELECT plug_id, (at_ms / 60000) * 60000 AS m, AVG(power_w), MIN(power_w), MAX(power_w),
                    COUNT(*), MIN(60, SUM(power_w >= ?3) * ?4),
                    MIN(60, SUM(power_w >= ?5 AND power_w < ?3) * ?4), MAX(total_wh)
             FROM samples WHERE at_ms >= ?1 AND at_ms < ?2 GROUP BY plug_id, m",
            params![from, minute_cut, s.nas_threshold_w, secs, s.nas_standby_w],
        )?;
        set_watermark(tx, "minutes", minute_cut)?;
        let from = watermark(tx, "hours")?.unwrap_or(i64::MIN);
        st.hours = tx.execute(
            "INSERT OR REPLACE INTO hours
             SELECT plug_id, (at_ms / 3600000) * 3600000 AS h,
                    SUM(mean_w * samples) / SUM(samples), MIN(min_w), MAX(max_w),
                    SUM(samples), SUM(active_secs), SUM(standby_secs), MAX(total_wh)
             FROM minutes WHERE at_ms >= ?1 AND at_ms < ?2 GROUP BY plug_id, h",
            params![from, hour_cut],
        )?;
        set_watermark(tx, "hours", hour_cut)?;
        let raw_keep = now_ms - i64::from(s.raw_retention_hours) * HOUR_MS;
        st.deleted = tx.execute(
            "DELETE FROM samples WHERE at_ms < ?1",
            [raw_keep.min(minute_cut)],
        )?;
        let min_keep = now_ms - i64::from(s.minute_retention_days) * DAY_MS;
        st.deleted += tx.execute(
            "DELETE FROM minutes WHERE at_ms < ?1",
            [min_keep.min(hour_cut)],
        )?;
        if s.hour_retention_days > 0 {
            let hour_keep = now_ms - i64::from(s.hour_retention_days) * DAY_MS;
            st.deleted += tx.execute("DELETE FROM hours WHERE at_ms < ?1", [hour_keep])?;
            st.deleted += tx.execute(
                "DELETE FROM gaps WHERE end_ms IS NOT NULL AND end_ms < ?1",
                [hour_keep],
            )?;
        }
        Ok(st)
    })
}

// ---- energy ----

/// `plug`'s running total at the end of each hour with data in `[from_ms, to_ms)`
/// (`(hour_start_ms, total_wh)`, ascending), and the total before `from_ms` (`None`
/// when nothing is older), from whichever of samples, minutes and hours hold it; with
/// [`hourly_active_secs`] as `active`.
///
/// # Errors
/// Database errors.
pub fn hourly(db: &Db, plug: i64, from_ms: i64, to_ms: i64) -> Result<Hourly, PowerError> {
    let conn = db.conn();
    let base: Option<i64> = conn.query_row(
        "SELECT MAX(t) FROM (
            SELECT MAX(total_wh) AS t FROM samples WHERE plug_id = ?1 AND at_ms < ?2
            UNION ALL SELECT MAX(total_wh) FROM minutes WHERE plug_id = ?1 AND at_ms < ?2
            UNION ALL SELECT MAX(total_wh) FROM hours WHERE plug_id = ?1 AND at_ms < ?2)",
        params![plug, from_ms],
        |r| r.get(0),
    )?;
    let mut st = conn.prepare_cached(
        "SELECT (at_ms / 3600000) * 3600000 AS h, MAX(total_wh) FROM (
            SELECT at_ms, total_wh FROM samples WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
            UNION ALL SELECT at_ms, total_wh FROM minutes WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
            UNION ALL SELECT at_ms, total_wh FROM hours WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3)
         GROUP BY h ORDER BY h",
    )?;
    let totals = st
        .query_map(params![plug, from_ms, to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    drop(st);
    drop(conn);
    Ok(Hourly {
        base_wh: base,
        totals,
        active: hourly_active_secs(db, plug, from_ms, to_ms)?,
    })
}

/// `plug`'s seconds at or above the NAS threshold and in standby per hour in
/// `[from_ms, to_ms)`, `(hour_start_ms, active_secs, standby_secs)`: hours from the
/// hourly means, the rest from the minute means (the minute being sampled is not counted
/// yet).
///
/// # Errors
/// Database errors.
pub fn hourly_active_secs(
    db: &Db,
    plug: i64,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, i64, i64)>, PowerError> {
    let conn = db.conn();
    let mut st = conn.prepare_cached(
        "SELECT (at_ms / 3600000) * 3600000 AS h, SUM(active_secs), SUM(standby_secs) FROM (
            SELECT at_ms, active_secs, standby_secs FROM hours
              WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
            UNION ALL SELECT at_ms, active_secs, standby_secs FROM minutes
              WHERE plug_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
              AND at_ms >= COALESCE((SELECT done_until_ms FROM rollups WHERE level = 'hours'), 0))
         GROUP BY h ORDER BY h",
    )?;
    let rows = st
        .query_map(params![plug, from_ms, to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Rows in each table, for the benchmark: `(samples, minutes, hours, gaps)`.
///
/// # Errors
/// Database errors.
pub fn row_counts(db: &Db) -> Result<(i64, i64, i64, i64), PowerError> {
    let c = db.conn();
    let n = |t: &str| -> rusqlite::Result<i64> {
        c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
    };
    Ok((n("samples")?, n("minutes")?, n("hours")?, n("gaps")?))
}
