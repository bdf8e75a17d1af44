//! What the companion role believes about the NAS, read from its control socket
//! (`GET /status` on `<run_dir>/companion.sock`, the same answer as
//! `GET /api/companion/status`): the power role never
//! reads the companion's database or imports its crate.
//!
//! The power role uses it twice: the NAS's plug is not switched off while the companion
//! says the NAS is up, and a NAS that draws power while the companion believes it is off
//! is reported ([`Mismatch`]).

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::UnixStream;

/// How long one call to the companion role may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The NAS's state as the companion reports it (`online`, `going_offline`, `offline`,
/// `waking`, `coming_online`, `unreachable`; `pinas_companion::nas::NasState`), with when it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NasBelief {
    /// The companion's state name; `null` before its first heartbeat.
    pub state: Option<String>,
    /// Since when the companion has believed it (Unix ms).
    pub since_ms: Option<i64>,
    /// When PiNAS asked (Unix ms).
    pub read_at_ms: i64,
}

impl NasBelief {
    /// The companion says the NAS is up or on its way up or down: its plug must not be
    /// switched off.
    pub fn says_running(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("online" | "coming_online" | "going_offline" | "waking")
        )
    }

    /// The companion says the NAS is off (it announced a shutdown and went quiet, or it
    /// stopped answering).
    pub fn says_off(&self) -> bool {
        matches!(self.state.as_deref(), Some("offline" | "unreachable"))
    }
}

/// A client of the companion role's socket.
#[derive(Debug, Clone)]
pub struct CompanionClient {
    socket: PathBuf,
}

impl CompanionClient {
    /// A client of the companion listening on `socket` (e.g. `/run/pinas/companion.sock`).
    pub fn new(socket: PathBuf) -> CompanionClient {
        CompanionClient { socket }
    }

    /// The companion's belief now; `None` when it does not run here (a box without the
    /// companion role) or does not answer within 3 s.
    pub async fn nas(&self, now_ms: i64) -> Option<NasBelief> {
        match tokio::time::timeout(TIMEOUT, self.status()).await {
            Ok(Ok(v)) => Some(NasBelief {
                state: v
                    .get("state")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
                since_ms: v.get("since_ms").and_then(serde_json::Value::as_i64),
                read_at_ms: now_ms,
            }),
            Ok(Err(e)) => {
                tracing::debug!(socket = %self.socket.display(), error = %e, "companion not reachable");
                None
            }
            Err(_) => None,
        }
    }

    async fn status(&self) -> Result<serde_json::Value, String> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::builder()
            .method("GET")
            .uri("/status")
            .header("host", "localhost")
            // The companion trusts the caller's role from this header; only processes
            // that can open its root-only socket can send it. Reading needs any role.
            .header("x-pinas-role", "user")
            .header("x-pinas-user", "power")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

/// Watches the NAS's plug against the companion's belief: a NAS that draws at least the
/// threshold for [`Mismatch::AFTER_MS`] (by default) while the companion says it is off is reported
/// once, until it is seen idle or the companion agrees again.
#[derive(Debug)]
pub struct Mismatch {
    after_ms: i64,
    since_ms: Option<i64>,
    reported: bool,
}

impl Default for Mismatch {
    fn default() -> Self {
        Mismatch::after(Mismatch::AFTER_MS)
    }
}

impl Mismatch {
    /// How long the NAS must draw power against the companion's belief before it counts
    /// (a NAS that is just starting or stopping draws power for a moment).
    pub const AFTER_MS: i64 = 60_000;

    /// A watch that reports after `after_ms` instead of [`Mismatch::AFTER_MS`].
    pub fn after(after_ms: i64) -> Mismatch {
        Mismatch {
            after_ms,
            since_ms: None,
            reported: false,
        }
    }

    /// Since when (Unix ms) the NAS has drawn power against the companion's belief.
    pub fn since_ms(&self) -> Option<i64> {
        self.since_ms
    }

    /// Feeds a reading of the NAS's plug (`power_w` at `at_ms`) with the companion's
    /// belief; `true` when this reading makes it a mismatch to report (once per episode).
    pub fn observe(
        &mut self,
        at_ms: i64,
        power_w: f64,
        threshold_w: f64,
        belief: Option<&NasBelief>,
    ) -> bool {
        let off = belief.is_some_and(NasBelief::says_off);
        if !off || power_w < threshold_w {
            self.since_ms = None;
            self.reported = false;
            return false;
        }
        let since = *self.since_ms.get_or_insert(at_ms);
        if !self.reported && at_ms - since >= self.after_ms {
            self.reported = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn belief(state: &str) -> NasBelief {
        NasBelief {
            state: Some(state.into()),
            since_ms: Some(0),
            read_at_ms: 0,
        }
    }

    #[test]
    fn a_mismatch_is_reported_once_after_a_minute() {
        let mut m = Mismatch::default();
        let off = belief("offline");
        assert!(!m.observe(0, 50.0, 20.0, Some(&off)));
        assert!(!m.observe(59_000, 50.0, 20.0, Some(&off)));
        assert!(m.observe(60_000, 50.0, 20.0, Some(&off)));
        assert!(!m.observe(70_000, 50.0, 20.0, Some(&off)));
        // Idle: the episode ends; a new one is reported again.
        assert!(!m.observe(80_000, 3.0, 20.0, Some(&off)));
        assert!(!m.observe(90_000, 50.0, 20.0, Some(&off)));
        assert!(m.observe(150_000, 50.0, 20.0, Some(&off)));
        // The companion agrees, or is not there: nothing to report.
        let mut m = Mismatch::default();
        assert!(!m.observe(0, 50.0, 20.0, Some(&belief("online"))));
        assert!(!m.observe(100_000, 50.0, 20.0, Some(&belief("online"))));
        assert!(!m.observe(200_000, 50.0, 20.0, None));
        assert!(!m.observe(300_000, 50.0, 20.0, None));
    }
}
