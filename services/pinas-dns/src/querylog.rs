//! The query log: every answered query, written to SQLite in batches, with retention, and
//! the statistics computed from it.
//!
//! The query path only pushes an [`Entry`] into a bounded channel (dropping and counting
//! it when the writer is behind, so DNS never waits on the disk). The writer inserts up to
//! 1000 entries per transaction, at least once a second. Retention runs every ten minutes:
//! rows older than `retention_days` go, then the oldest rows beyond `max_rows`.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use pinas_core::db::Db;
use rusqlite::params_from_iter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How a query was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Sent to an upstream.
    Forwarded = 0,
    /// From the cache.
    Cached = 1,
    /// Blocked by a blocklist or the denylist.
    Blocked = 2,
    /// From local records or the switch record.
    Local = 3,
    /// No upstream answered, or the query was malformed.
    Error = 4,
}

impl Status {
    /// Every status, in counter order.
    pub const ALL: [Status; 5] = [
        Status::Forwarded,
        Status::Cached,
        Status::Blocked,
        Status::Local,
        Status::Error,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Forwarded => "forwarded",
            Status::Cached => "cached",
            Status::Blocked => "blocked",
            Status::Local => "local",
            Status::Error => "error",
        }
    }
}

/// One logged query.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ts_ms: i64,
    pub client: IpAddr,
    pub name: String,
    pub qtype: RecordType,
    pub status: Status,
    pub rcode: ResponseCode,
    pub upstream: Option<String>,
    pub duration_us: u64,
}

/// The conventional upper-case name of a response code (`NOERROR`, `NXDOMAIN`, ...), as
/// dig prints it.
pub fn rcode_name(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}

/// Sender side held by the query path.
pub type LogSender = mpsc::Sender<Entry>;

/// Capacity of the channel between the query path and the writer.
pub const CHANNEL_CAPACITY: usize = 5_000;

/// Writes batches from `rx` into `db` until the channel closes.
pub async fn writer(db: Db, mut rx: mpsc::Receiver<Entry>) {
    let mut batch = Vec::with_capacity(1000);
    loop {
        let n = rx.recv_many(&mut batch, 1000).await;
        if n == 0 {
            return;
        }
        let rows = std::mem::take(&mut batch);
        let db2 = db.clone();
        let res = tokio::task::spawn_blocking(move || insert(&db2, &rows)).await;
        match res {
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the DNS query log"),
            Err(e) => tracing::warn!(error = %e, "query log writer failed"),
            Ok(Ok(())) => {}
        }
        // Collect for a moment so bursts become one transaction.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Inserts `rows` in one transaction.
///
/// # Errors
/// SQLite errors.
pub fn insert(db: &Db, rows: &[Entry]) -> rusqlite::Result<()> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO dns_query_log (ts_ms, client, name, qtype, status, rcode, upstream, duration_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for e in rows {
            st.execute(rusqlite::params![
                e.ts_ms,
                e.client.to_string(),
                e.name,
                e.qtype.to_string(),
                e.status.as_str(),
                rcode_name(e.rcode),
                e.upstream,
                e.duration_us as i64
            ])?;
        }
    }
    tx.commit()
}

/// Deletes rows older than `retention_days` and the oldest beyond `max_rows`; returns
/// how many rows went.
///
/// # Errors
/// SQLite errors.
pub fn prune(db: &Db, retention_days: u32, max_rows: u64, now_ms: i64) -> rusqlite::Result<usize> {
    let conn = db.conn();
    let cutoff = now_ms - i64::from(retention_days) * 86_400_000;
    let mut n = conn.execute("DELETE FROM dns_query_log WHERE ts_ms < ?1", [cutoff])?;
    n += conn.execute(
        "DELETE FROM dns_query_log WHERE id <= (SELECT MAX(id) FROM dns_query_log) - ?1",
        [max_rows as i64],
    )?;
    Ok(n)
}

/// Filters for [`list`]; all optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// At most this many rows (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Only rows with an id below this (paging: pass the last id you got).
    pub before_id: Option<i64>,
    /// Client IP address, exact.
    pub client: Option<String>,
    /// Substring of the queried name.
    pub name: Option<String>,
    /// forwarded, cached, blocked, local or error.
    pub status: Option<Status>,
    /// Record type, e.g. A or AAAA.
    pub qtype: Option<String>,
    /// Only rows at or after this time, Unix milliseconds.
    pub since_ms: Option<i64>,
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

/// The newest rows matching `f`, newest first.
///
/// # Errors
/// SQLite errors.
pub fn list(db: &Db, f: &LogFilter) -> rusqlite::Result<Vec<LogRow>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("t.db")).unwrap();
        (d, db)
    }

    fn e(ts: i64, client: &str, name: &str, status: Status) -> Entry {
        Entry {
            ts_ms: ts,
            client: client.parse().unwrap(),
            name: name.into(),
            qtype: RecordType::A,
            status,
            rcode: ResponseCode::NoError,
            upstream: None,
            duration_us: 10,
        }
    }

    #[test]
    fn insert_filter_stats_prune() {
        let (_d, db) = db();
        let now = 10 * 86_400_000;
        let rows = vec![
            e(
                now - 8 * 86_400_000,
                "10.0.0.1",
                "old.example",
                Status::Forwarded,
            ),
            e(now - 1000, "10.0.0.1", "a.example", Status::Forwarded),
            e(now - 900, "10.0.0.2", "ads.example", Status::Blocked),
            e(now - 800, "10.0.0.2", "ads.example", Status::Blocked),
            e(now - 700, "10.0.0.2", "a.example", Status::Cached),
        ];
        insert(&db, &rows).unwrap();
        let l = list(
            &db,
            &LogFilter {
                status: Some(Status::Blocked),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        let l = list(
            &db,
            &LogFilter {
                name: Some("A.ex".into()),
                client: Some("10.0.0.2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.len(), 1);
        let s = stats(&db, now - 3_600_000, 10, 600).unwrap();
        assert_eq!(s.total, 4);
        assert_eq!(s.blocked, 2);
        assert_eq!(s.blocked_percent, 50.0);
        assert_eq!(s.top_blocked[0].key, "ads.example");
        assert_eq!(s.top_clients[0].key, "10.0.0.2");
        assert_eq!(s.over_time.iter().map(|b| b.total).sum::<i64>(), 4);
        assert_eq!(prune(&db, 7, 3, now).unwrap(), 2);
        assert_eq!(list(&db, &LogFilter::default()).unwrap().len(), 3);
    }
}
