//! Events: what happened, sent to browsers over `/api/ws` and kept in the event log.
//!
//! Envelope: `{"type":"share.created","ts":1732230000123,"data":{...}}`, `ts` in Unix
//! milliseconds. Types in use: `system.stats.update`, `storage.disk.added`,
//! `storage.disk.removed`, `storage.mounted`, `storage.unmounted`, `share.created`,
//! `share.updated`, `share.deleted`, `task.progress`, `notification.new`, plus each
//! role's own (`dns.switch.changed`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::db::Db;

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Dotted type, e.g. `storage.mounted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, Unix milliseconds.
    pub ts: i64,
    /// Type-specific payload.
    pub data: Value,
}

/// Unix time now, in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix time now, in seconds.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

impl Event {
    /// An event of `kind` with `data`, stamped now.
    pub fn new(kind: impl Into<String>, data: Value) -> Self {
        Event {
            kind: kind.into(),
            ts: now_ms(),
            data,
        }
    }

    /// Periodic events are broadcast but not kept in the event log.
    fn is_ephemeral(&self) -> bool {
        self.kind == "system.stats.update"
            || self.kind == "task.progress"
            || self.kind == "power.reading"
    }
}

/// Fan-out of events to subscribers, and the persistent event log.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    db: Option<Db>,
}

/// How many events the log keeps.
const EVENT_LOG_KEEP: i64 = 5000;

impl EventBus {
    /// A bus that keeps non-periodic events in `db`'s `events` table when given.
    pub fn new(db: Option<Db>) -> Self {
        let (tx, _) = broadcast::channel(256);
        EventBus { tx, db }
    }

    /// Sends `event` to every subscriber and records it in the log.
    pub fn publish(&self, event: Event) {
        if let (Some(db), false) = (&self.db, event.is_ephemeral()) {
            let conn = db.conn();
            let res = conn
                .execute(
                    "INSERT INTO events (ts, type, data) VALUES (?1, ?2, ?3)",
                    rusqlite::params![event.ts, event.kind, event.data.to_string()],
                )
                .and_then(|_| {
                    conn.execute(
                        "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
                        [EVENT_LOG_KEEP],
                    )
                });
            if let Err(e) = res {
                tracing::warn!(error = %e, "cannot record event");
            }
        }
        let _ = self.tx.send(event);
    }

    /// Shorthand for `publish(Event::new(kind, data))`.
    pub fn emit(&self, kind: &str, data: Value) {
        self.publish(Event::new(kind, data));
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The `limit` most recent logged events, newest first.
    pub fn recent(&self, limit: u32) -> rusqlite::Result<Vec<Event>> {
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        let conn = db.conn();
        let mut st = conn.prepare("SELECT ts, type, data FROM events ORDER BY id DESC LIMIT ?1")?;
        let rows = st.query_map([limit], |r| {
            let data: String = r.get(2)?;
            Ok(Event {
                ts: r.get(0)?,
                kind: r.get(1)?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            })
        })?;
        rows.collect()
    }
}
