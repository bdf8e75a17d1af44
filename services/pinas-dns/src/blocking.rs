//! The blocking switch: blocklists and the denylist apply while it is on; while it is off
//! every name that is not local is forwarded like any other. It can be turned off until
//! a deadline, after which it turns itself back on, also across a restart (the state and
//! its deadline are kept in `dns_blocking` and re-applied at start).
//!
//! Not for: the DNS switch record (`nas.home`), which is [`crate::state::SwitchState`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::DnsError;
use pinas_core::db::Db;
use pinas_core::events::now_ms;
use serde::Serialize;

use crate::state::DnsState;

/// Longest time blocking can be turned off with a timer, seconds (one day).
pub const MAX_DISABLE_SECS: u64 = 86_400;

/// Who changes blocking when the timer ends.
pub const BY_TIMER: &str = "timer";

/// The blocking switch as `GET /api/dns/blocking` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlockingState {
    /// Whether blocklists and the denylist are applied.
    pub enabled: bool,
    /// Unix seconds when blocking turns back on by itself; `null` while on, or when off
    /// until turned on again.
    pub until: Option<i64>,
    /// Who made the last change: a user name, `pihole-api`, or `timer`.
    pub changed_by: String,
    /// Why, in words (may be empty).
    pub reason: String,
    /// Unix milliseconds of the last change (0: never changed).
    pub changed_at_ms: i64,
    #[serde(skip)]
    pub until_ms: Option<i64>,
}

impl Default for BlockingState {
    fn default() -> Self {
        BlockingState {
            enabled: true,
            until: None,
            changed_by: String::new(),
            reason: String::new(),
            changed_at_ms: 0,
            until_ms: None,
        }
    }
}

/// Turn blocking on, or off (for `duration_s` seconds, or until turned on again).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct BlockingInput {
    pub enabled: bool,
    /// Only with `enabled: false`: seconds until blocking turns back on by itself, 1 to
    /// 86400. Absent: off until turned on again.
    pub duration_s: Option<i64>,
    /// Why, in words (at most 500 characters); shown in the event log.
    #[serde(default)]
    pub reason: String,
}

/// Applies a change asked for by user `by` (see [`DnsState::set_blocking`]).
///
/// # Errors
/// 422 `invalid_reason` (over 500 bytes), `invalid_duration` (field `duration_s`: not 1
/// to 86400, or given while turning blocking on); [`DnsError::Database`].
pub fn set_from_request(
    st: &DnsState,
    b: &BlockingInput,
    by: &str,
) -> Result<BlockingState, DnsError> {
    if b.reason.len() > 500 {
        return Err(DnsError::invalid(
            "invalid_reason",
            "the reason is longer than 500 characters",
        )
        .with_field("reason"));
    }
    let off_for = match b.duration_s {
        None => None,
        Some(d) if !b.enabled && (1..=MAX_DISABLE_SECS as i64).contains(&d) => {
            Some(Duration::from_secs(d as u64))
        }
        Some(_) => {
            return Err(DnsError::invalid(
                "invalid_duration",
                format!(
                "duration_s is 1 to {MAX_DISABLE_SECS} seconds, and only when turning blocking off"
            ),
            )
            .with_field("duration_s"))
        }
    };
    st.set_blocking(b.enabled, off_for, by, &b.reason)
}

/// Unix seconds of a deadline in ms, rounded up so `until` is never before it.
fn secs_of(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

/// The saved state, or the default (on) when none was saved.
///
/// # Errors
/// [`DnsError`] when the database cannot be read.
pub fn load(db: &Db) -> Result<BlockingState, DnsError> {
    Ok(match crate::store::blocking(db)? {
        Some(crate::store::BlockingRow {
            enabled,
            until_ms,
            changed_by,
            reason,
            changed_at: at,
        }) => BlockingState {
            enabled,
            until: until_ms.filter(|_| !enabled).map(secs_of),
            until_ms: until_ms.filter(|_| !enabled),
            changed_by,
            reason,
            changed_at_ms: at,
        },
        None => BlockingState::default(),
    })
}

impl DnsState {
    /// Whether blocking is on; read on every query.
    pub fn blocking_on(&self) -> bool {
        self.blocking_on.load(Ordering::Relaxed)
    }

    /// Turns blocking on, or off for `off_for` (None: until turned on again), persists it
    /// and emits `dns.blocking.changed` with `{enabled, until, previous, changed_by,
    /// reason}`. Takes effect on the next query; a timer turns it back on at the deadline.
    ///
    /// # Errors
    /// 422 `invalid_duration` (field `duration_s`) when `off_for` is not 1 s to 1 day;
    /// [`DnsError`] when the database cannot be written (blocking is then unchanged).
    pub fn set_blocking(
        &self,
        enabled: bool,
        off_for: Option<Duration>,
        changed_by: &str,
        reason: &str,
    ) -> Result<BlockingState, DnsError> {
        if let Some(d) = off_for {
            if enabled || d.is_zero() || d > Duration::from_secs(MAX_DISABLE_SECS) {
                return Err(DnsError::invalid(
                    "invalid_duration",
                    format!("duration_s is 1 to {MAX_DISABLE_SECS} seconds, and only when turning blocking off"),
                )
                .with_field("duration_s"));
            }
        }
        let _serial = self.blocking_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.store_blocking(enabled, off_for, changed_by, reason)
    }

    /// Saves and applies a blocking change; the caller holds `blocking_lock`.
    fn store_blocking(
        &self,
        enabled: bool,
        off_for: Option<Duration>,
        changed_by: &str,
        reason: &str,
    ) -> Result<BlockingState, DnsError> {
        let now = now_ms();
        let until_ms = off_for.map(|d| now + d.as_millis() as i64);
        crate::store::save_blocking(
            &self.db,
            &crate::store::BlockingRow {
                enabled,
                until_ms,
                changed_by: changed_by.to_string(),
                reason: reason.to_string(),
                changed_at: now,
            },
        )?;
        let previous = self.blocking.load().enabled;
        let new = BlockingState {
            enabled,
            until: until_ms.map(secs_of),
            until_ms,
            changed_by: changed_by.to_string(),
            reason: reason.to_string(),
            changed_at_ms: now,
        };
        self.blocking.store(Arc::new(new.clone()));
        self.blocking_on.store(enabled, Ordering::Relaxed);
        self.blocking_changed.notify_one();
        tracing::info!(
            enabled,
            until = new.until,
            by = changed_by,
            reason,
            "DNS blocking changed"
        );
        self.events.emit(
            "dns.blocking.changed",
            serde_json::json!({
                "enabled": enabled,
                "until": new.until,
                "previous": previous,
                "changed_by": changed_by,
                "reason": reason,
            }),
        );
        Ok(new)
    }

    /// Turns blocking back on when its deadline has passed; true when it did.
    ///
    /// # Errors
    /// [`DnsError`] when the database cannot be written.
    pub fn expire_blocking_timer(&self) -> Result<bool, DnsError> {
        // Checked under the lock, so a change made meanwhile (a new timer) is not undone.
        let _serial = self.blocking_lock.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.blocking.load_full();
        match st.until_ms {
            Some(t) if !st.enabled && t <= now_ms() => {
                self.store_blocking(true, None, BY_TIMER, "the timer ended")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Turns blocking back on when a timer ends; runs for the life of the role. Woken by
/// every change, so a new deadline replaces the old one.
pub async fn timer(st: Arc<DnsState>) {
    loop {
        let deadline = st.blocking.load().until_ms.filter(|_| !st.blocking_on());
        match deadline {
            Some(t) => {
                let wait = Duration::from_millis((t - now_ms()).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {
                        let st2 = st.clone();
                        let r = tokio::task::spawn_blocking(move || st2.expire_blocking_timer()).await;
                        if let Ok(Err(e)) = r {
                            tracing::warn!(error = %e, "cannot turn DNS blocking back on; retrying");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                    _ = st.blocking_changed.notified() => {}
                }
            }
            None => st.blocking_changed.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_rounds_up() {
        assert_eq!(secs_of(1_000), 1);
        assert_eq!(secs_of(1_001), 2);
    }
}
