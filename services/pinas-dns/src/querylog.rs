//! The query log: every answered query, written to SQLite in batches, with retention, and
//! the statistics computed from it.
//!
//! The query path only pushes an [`Entry`] into a bounded channel (dropping and counting
//! it when the writer is behind, so DNS never waits on the disk). The writer inserts up to
//! 1000 entries per transaction, at least once a second, and in the same transaction
//! deletes the oldest rows beyond `max_rows`, so a flood of queries never grows the file
//! past that. Rows older than `retention_days` go every ten minutes.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use pinas_core::db::Db;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::DnsError;
use crate::state::DnsState;
use crate::store;
pub use crate::store::{Bucket, LogRow, Stats, Top};

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

/// What an answer held, in the terms of Pi-hole's FTL (`reply_IP`, `reply_CNAME`, ... in
/// its summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// An address (A or AAAA), including the `0.0.0.0` of a blocked name.
    Ip,
    /// A CNAME first (followed by whatever the chain led to).
    Cname,
    /// A name other than through CNAME (PTR).
    Domain,
    /// NOERROR without records of the asked type.
    Nodata,
    Nxdomain,
    Servfail,
    Refused,
    Notimp,
    Other,
}

impl ReplyKind {
    /// Every kind, in Pi-hole's summary order.
    pub const ALL: [ReplyKind; 9] = [
        ReplyKind::Nodata,
        ReplyKind::Nxdomain,
        ReplyKind::Cname,
        ReplyKind::Ip,
        ReplyKind::Domain,
        ReplyKind::Servfail,
        ReplyKind::Refused,
        ReplyKind::Notimp,
        ReplyKind::Other,
    ];

    /// The stored name, as in Pi-hole's `reply_<NAME>`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Ip => "IP",
            ReplyKind::Cname => "CNAME",
            ReplyKind::Domain => "DOMAIN",
            ReplyKind::Nodata => "NODATA",
            ReplyKind::Nxdomain => "NXDOMAIN",
            ReplyKind::Servfail => "SERVFAIL",
            ReplyKind::Refused => "REFUSED",
            ReplyKind::Notimp => "NOTIMP",
            ReplyKind::Other => "OTHER",
        }
    }

    /// The kind of an answer with `rcode` whose answer section holds records of `types`,
    /// in order.
    pub fn of(rcode: ResponseCode, mut types: impl Iterator<Item = RecordType>) -> Self {
        match rcode {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return ReplyKind::Nxdomain,
            ResponseCode::ServFail => return ReplyKind::Servfail,
            ResponseCode::Refused => return ReplyKind::Refused,
            ResponseCode::NotImp => return ReplyKind::Notimp,
            _ => return ReplyKind::Other,
        }
        let Some(first) = types.next() else {
            return ReplyKind::Nodata;
        };
        match first {
            RecordType::CNAME => ReplyKind::Cname,
            RecordType::A | RecordType::AAAA => ReplyKind::Ip,
            RecordType::PTR => ReplyKind::Domain,
            _ if types.any(|t| matches!(t, RecordType::A | RecordType::AAAA)) => ReplyKind::Ip,
            _ => ReplyKind::Other,
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
    pub reply: ReplyKind,
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

/// Window for the statistics.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatsParams {
    /// Hours back from now (default 24, at most 24 × retention days).
    pub hours: Option<u32>,
    /// Entries per top list (default 10, at most 100).
    pub top: Option<u32>,
}

/// Totals, blocked share, top lists and queries over time for the window `p` asks for.
///
/// # Errors
/// [`DnsError::Database`].
pub fn window_stats(st: &DnsState, p: &StatsParams) -> Result<Stats, DnsError> {
    let hours = p.hours.unwrap_or(24).clamp(
        1,
        24 * (st.settings.load().settings.query_log_retention_days as u32).max(1),
    ) as i64;
    let top = p.top.unwrap_or(10).clamp(1, 100);
    // About 144 points whatever the window, at least 10 minutes each.
    let bucket = (hours * 3600 / 144).max(600);
    Ok(store::stats(
        &st.db,
        pinas_core::events::now_ms() - hours * 3_600_000,
        top,
        bucket,
    )?)
}

/// The newest rows matching `f`, newest first.
///
/// # Errors
/// [`DnsError::Database`].
pub fn list(st: &DnsState, f: &LogFilter) -> Result<Vec<LogRow>, DnsError> {
    Ok(store::log_rows(&st.db, f)?)
}

/// Sender side held by the query path.
pub type LogSender = mpsc::Sender<Entry>;

/// Capacity of the channel between the query path and the writer.
pub const CHANNEL_CAPACITY: usize = 5_000;

/// Writes batches from `rx` into `db` until the channel closes, keeping at most
/// `max_rows` rows.
pub async fn writer(db: Db, mut rx: mpsc::Receiver<Entry>, max_rows: u64) {
    let mut batch = Vec::with_capacity(1000);
    loop {
        let n = rx.recv_many(&mut batch, 1000).await;
        if n == 0 {
            return;
        }
        let rows = std::mem::take(&mut batch);
        let db2 = db.clone();
        let res =
            tokio::task::spawn_blocking(move || store::insert_log(&db2, &rows, max_rows)).await;
        match res {
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the DNS query log"),
            Err(e) => tracing::warn!(error = %e, "query log writer failed"),
            Ok(Ok(())) => {}
        }
        // Collect for a moment so bursts become one transaction.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let d = tempfile::tempdir().unwrap();
        let db = crate::store::open(d.path(), None).unwrap();
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
            reply: ReplyKind::Ip,
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
        store::insert_log(&db, &rows, 100).unwrap();
        let l = store::log_rows(
            &db,
            &LogFilter {
                status: Some(Status::Blocked),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        let l = store::log_rows(
            &db,
            &LogFilter {
                name: Some("A.ex".into()),
                client: Some("10.0.0.2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.len(), 1);
        let s = store::stats(&db, now - 3_600_000, 10, 600).unwrap();
        assert_eq!(s.total, 4);
        assert_eq!(s.blocked, 2);
        assert_eq!(s.blocked_percent, 50.0);
        assert_eq!(s.top_blocked[0].key, "ads.example");
        assert_eq!(s.top_clients[0].key, "10.0.0.2");
        assert_eq!(s.over_time.iter().map(|b| b.total).sum::<i64>(), 4);
        assert_eq!(store::prune_log(&db, 7, 3, now).unwrap(), 2);
        assert_eq!(
            store::log_rows(&db, &LogFilter::default()).unwrap().len(),
            3
        );
        // The writer keeps max_rows as it inserts.
        store::insert_log(&db, &rows, 4).unwrap();
        let l = store::log_rows(&db, &LogFilter::default()).unwrap();
        assert_eq!(l.len(), 4);
        assert!(
            l.iter().all(|r| r.name != "old.example"),
            "the oldest went first"
        );
    }

    #[test]
    fn reply_kinds_as_pihole_counts_them() {
        use RecordType as T;
        let k = |rc, t: &[T]| ReplyKind::of(rc, t.iter().copied());
        assert_eq!(k(ResponseCode::NoError, &[T::A]), ReplyKind::Ip);
        assert_eq!(
            k(ResponseCode::NoError, &[T::CNAME, T::A]),
            ReplyKind::Cname
        );
        assert_eq!(k(ResponseCode::NoError, &[]), ReplyKind::Nodata);
        assert_eq!(k(ResponseCode::NoError, &[T::PTR]), ReplyKind::Domain);
        assert_eq!(k(ResponseCode::NoError, &[T::TXT]), ReplyKind::Other);
        assert_eq!(k(ResponseCode::NXDomain, &[]), ReplyKind::Nxdomain);
        assert_eq!(k(ResponseCode::ServFail, &[]), ReplyKind::Servfail);
    }
}
