//! The NAS's state machine, the heartbeat that drives it, waking the NAS and the
//! handshake the NAS starts.
//!
//! States ([`NasState`]) and what moves between them:
//!
//! | from | event | to | DNS switch |
//! |---|---|---|---|
//! | any but `going_offline` | `misses_before_takeover` heartbeats missed in a row | `unreachable` | companion, reason `heartbeat` |
//! | `unreachable`, `offline`, `waking`, none yet | heartbeat answered (the NAS did not announce itself) | `online` | NAS, reason `heartbeat` |
//! | `coming_online` | heartbeat answered | `online` | (already NAS) |
//! | any | `nas-going-offline` | `going_offline` | companion (once) |
//! | `going_offline` | heartbeat missed | `offline` | — |
//! | any | `nas-coming-online` | `coming_online` | NAS (once) |
//! | any | wake requested | `waking` | — |
//! | `waking` | no answer within `wake_timeout_secs` | `unreachable` | — |
//!
//! Every transition is stored ([`crate::store::push_state`]) and emitted as a
//! `companion.nas.state` event `{state, previous, reason}`. A change of the switch is
//! made before the state that needs it is reported, and a failed change leaves the state
//! as it was, so the next heartbeat tries again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pinas_core::events::now_ms;
use serde::Serialize;

use crate::dnsswitch::{SwitchView, Target};
use crate::error::CompanionError;
use crate::store::{self, StateRow};
use crate::wol;
use crate::Companion;

/// The NAS's state as the companion sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NasState {
    /// Its health URL answers.
    Online,
    /// It announced a shutdown and may still answer for a while.
    GoingOffline,
    /// It announced a shutdown and stopped answering.
    Offline,
    /// A magic packet was sent; waiting for its health URL.
    Waking,
    /// It announced its start; its health URL may not answer yet.
    ComingOnline,
    /// It stopped answering without announcing it.
    Unreachable,
}

impl NasState {
    /// Every state.
    pub const ALL: [NasState; 6] = [
        NasState::Online,
        NasState::GoingOffline,
        NasState::Offline,
        NasState::Waking,
        NasState::ComingOnline,
        NasState::Unreachable,
    ];

    /// The name used in the API and the database, e.g. `going_offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            NasState::Online => "online",
            NasState::GoingOffline => "going_offline",
            NasState::Offline => "offline",
            NasState::Waking => "waking",
            NasState::ComingOnline => "coming_online",
            NasState::Unreachable => "unreachable",
        }
    }

    /// Parses [`NasState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<NasState> {
        NasState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// True for the states in which the NAS is running (for usage statistics).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            NasState::Online | NasState::GoingOffline | NasState::ComingOnline
        )
    }
}

/// The last heartbeat's outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// When it was checked, Unix milliseconds.
    pub at_ms: i64,
    /// True when the health URL answered 2xx.
    pub ok: bool,
    /// What went wrong, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the machine remembers between heartbeats.
#[derive(Debug, Default)]
pub struct Machine {
    pub state: Option<StateRow>,
    /// Heartbeats missed in a row.
    pub misses: u32,
    pub last: Option<Heartbeat>,
    /// Increments with every wake, so an older wake's timeout does not end a newer one.
    pub(crate) wake_seq: u64,
}

/// What `POST /api/companion/wake` answers: the wake is under way.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WakeStarted {
    /// Names this wake's `task.progress` events.
    pub task_id: String,
    /// Where the magic packet went, e.g. `["192.168.1.255:9", "192.168.1.255:7"]`.
    pub sent_to: Vec<String>,
    /// Seconds the health URL is followed for.
    pub timeout_secs: u64,
}

/// The handshake's answer: sent only once the switch is in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// Always true.
    pub acknowledged: bool,
    /// The NAS's state now.
    pub state: NasState,
    /// The switch as the DNS role reports it after the change.
    pub dns_switch: SwitchView,
    /// False when the switch already pointed there (a repeated handshake).
    pub switched: bool,
    /// `nas-coming-online` only: what the inbox flush before the switch moved, or why
    /// it did not (it is tried again while the NAS stays online).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<crate::inbox::FlushReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox_error: Option<String>,
}

impl Companion {
    /// Moves the machine to `to` (nothing when it is there already), stores the
    /// transition and emits `companion.nas.state`.
    ///
    /// # Errors
    /// Database errors; the machine is unchanged then.
    pub(crate) async fn transition(
        &self,
        m: &mut Machine,
        to: NasState,
        reason: &str,
    ) -> Result<(), CompanionError> {
        let previous = m.state.as_ref().map(|s| s.state);
        if previous == Some(to) {
            return Ok(());
        }
        let row = StateRow {
            state: to,
            reason: reason.to_string(),
            at_ms: now_ms(),
        };
        {
            let (db, row) = (self.db.clone(), row.clone());
            store::run_blocking(move || store::push_state(&db, &row)).await?;
        }
        tracing::info!(
            state = to.as_str(),
            previous = previous.map(NasState::as_str),
            reason,
            "NAS state changed"
        );
        self.events.emit(
            "companion.nas.state",
            serde_json::json!({"state": to, "previous": previous, "reason": reason}),
        );
        m.state = Some(row);
        Ok(())
    }

    /// Checks the health URL once and moves the machine as the table in the module
    /// documentation says. Does nothing when no health URL is set.
    pub async fn heartbeat(&self) {
        let url = self.settings().health_url.clone();
        if url.is_empty() {
            return;
        }
        let result = self.health.check(&url).await;
        self.observe(result).await;
    }

    /// Applies one health check's `result` to the machine.
    pub(crate) async fn observe(&self, result: Result<(), String>) {
        let misses_allowed = self.settings().misses_before_takeover;
        let mut m = self.machine.lock().await;
        m.last = Some(Heartbeat {
            at_ms: now_ms(),
            ok: result.is_ok(),
            error: result.as_ref().err().cloned(),
        });
        let state = m.state.as_ref().map(|s| s.state);
        let r = match result {
            Ok(()) => {
                m.misses = 0;
                match state {
                    Some(NasState::Online | NasState::GoingOffline) => Ok(()),
                    Some(NasState::ComingOnline) => {
                        self.transition(&mut m, NasState::Online, "the health URL answers")
                            .await
                    }
                    None | Some(NasState::Unreachable | NasState::Offline | NasState::Waking) => {
                        let why = if state == Some(NasState::Waking) {
                            "answered after the magic packet"
                        } else {
                            "the health URL answers again"
                        };
                        match self.dns.ensure(Target::Nas, "heartbeat").await {
                            Ok(_) => self.transition(&mut m, NasState::Online, why).await,
                            Err(e) => Err(e),
                        }
                    }
                }
            }
            Err(why) => {
                m.misses = m.misses.saturating_add(1);
                tracing::debug!(misses = m.misses, error = %why, "heartbeat missed");
                match state {
                    Some(NasState::GoingOffline) => {
                        self.transition(
                            &mut m,
                            NasState::Offline,
                            "stopped answering after announcing its shutdown",
                        )
                        .await
                    }
                    Some(NasState::Offline | NasState::Unreachable | NasState::Waking) => Ok(()),
                    None | Some(NasState::Online | NasState::ComingOnline)
                        if m.misses >= misses_allowed =>
                    {
                        let why = format!("{} heartbeats missed in a row ({why})", m.misses);
                        match self.dns.ensure(Target::Companion, "heartbeat").await {
                            Ok(_) => self.transition(&mut m, NasState::Unreachable, &why).await,
                            Err(e) => Err(e),
                        }
                    }
                    None | Some(NasState::Online | NasState::ComingOnline) => Ok(()),
                }
            }
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot follow the NAS's heartbeat; trying again at the next one");
        }
    }

    /// Runs the heartbeat every `heartbeat_interval_secs` (re-read after each beat and at
    /// once when the settings change) until `stop` resolves.
    pub async fn heartbeat_loop(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let every = Duration::from_secs(self.settings().heartbeat_interval_secs);
            tokio::select! {
                _ = &mut stop => return,
                _ = self.settings_changed.notified() => continue,
                _ = tokio::time::sleep(every) => {}
            }
            self.heartbeat().await;
        }
    }

    /// Sends the magic packet to the NAS, moves the machine to `waking` (`reason` says
    /// who asked), and follows the health URL every second until it answers (`online`)
    /// or `wake_timeout_secs` pass (`unreachable`), with `task.progress` events
    /// `{task_id, label, percent, done, error}`.
    ///
    /// # Errors
    /// 409 `nas_mac_missing` when no MAC address is set; 503 `wol_failed` when the
    /// packet cannot be sent.
    pub async fn wake(self: &Arc<Self>, reason: &str) -> Result<WakeStarted, CompanionError> {
        let s = self.settings();
        if s.nas_mac.is_empty() {
            return Err(CompanionError::conflict(
                "nas_mac_missing",
                "set the NAS's MAC address in the companion settings first",
            ));
        }
        let mac = wol::Mac::parse(&s.nas_mac).map_err(CompanionError::internal)?;
        let password = match s.secureon_password.as_deref() {
            Some(p) if !p.is_empty() => wol::parse_secureon(p).map_err(CompanionError::internal)?,
            _ => Vec::new(),
        };
        let nas_ip = s.nas_ip.parse().ok();
        let ports = self.file.wol_ports.clone();
        let packet = wol::magic_packet(mac, &password);
        let sent_to = tokio::task::spawn_blocking(move || {
            wol::send(&packet, wol::broadcast_for(nas_ip), &ports)
        })
        .await
        .map_err(|e| CompanionError::internal(e.to_string()))?
        .map_err(|m| CompanionError::unavailable("wol_failed", m))?;
        tracing::info!(mac = %mac, to = ?sent_to, "magic packet sent");
        let seq = {
            let mut m = self.machine.lock().await;
            if m.state.as_ref().map(|r| r.state) != Some(NasState::Online) {
                self.transition(&mut m, NasState::Waking, reason).await?;
            }
            m.wake_seq += 1;
            m.wake_seq
        };
        let task_id = format!("companion-wake-{}", now_ms());
        let timeout = Duration::from_secs(s.wake_timeout_secs);
        tokio::spawn(self.clone().follow_wake(task_id.clone(), seq, timeout));
        Ok(WakeStarted {
            task_id,
            sent_to,
            timeout_secs: s.wake_timeout_secs,
        })
    }

    async fn follow_wake(self: Arc<Self>, task_id: String, seq: u64, timeout: Duration) {
        let label = format!("Waking {}", self.settings().nas_name);
        let progress = |percent: u32, done: bool, error: Option<String>| {
            self.events.emit(
                "task.progress",
                serde_json::json!({"task_id": task_id, "label": label, "percent": percent,
                    "done": done, "error": error}),
            );
        };
        let start = Instant::now();
        progress(0, false, None);
        loop {
            let url = self.settings().health_url.clone();
            let answered = !url.is_empty() && self.health.check(&url).await.is_ok();
            {
                let m = self.machine.lock().await;
                if m.wake_seq != seq {
                    // A newer wake follows the NAS now.
                    return;
                }
                let state = m.state.as_ref().map(|r| r.state);
                if state == Some(NasState::Online) && !answered {
                    progress(100, true, None);
                    return;
                }
            }
            if answered {
                self.observe(Ok(())).await;
                let online = self.machine.lock().await.state.as_ref().map(|r| r.state)
                    == Some(NasState::Online);
                if online {
                    progress(100, true, None);
                    return;
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                let why = format!(
                    "no answer within {} s of the magic packet",
                    timeout.as_secs()
                );
                let mut m = self.machine.lock().await;
                if m.wake_seq == seq && m.state.as_ref().map(|r| r.state) == Some(NasState::Waking)
                {
                    if let Err(e) = self.transition(&mut m, NasState::Unreachable, &why).await {
                        tracing::warn!(error = %e, "cannot record the failed wake");
                    }
                }
                progress(100, true, Some(why));
                return;
            }
            let percent = (elapsed.as_millis() * 100 / timeout.as_millis().max(1)).min(99) as u32;
            progress(percent, false, None);
            tokio::time::sleep(Duration::from_secs(1).min(timeout - elapsed)).await;
        }
    }

    /// `nas-going-offline`: points the DNS switch at the companion (once, however often
    /// the NAS asks) and moves the machine to `going_offline`. Returns only once the
    /// DNS role has the switch in force.
    ///
    /// # Errors
    /// 503 `dns_unavailable` when the switch cannot be changed: the NAS is not acked.
    pub async fn going_offline(&self) -> Result<Ack, CompanionError> {
        let mut m = self.machine.lock().await;
        let (view, switched) = self
            .dns
            .ensure(Target::Companion, "NAS going offline")
            .await?;
        let state = m.state.as_ref().map(|r| r.state);
        if state != Some(NasState::Offline) {
            self.transition(
                &mut m,
                NasState::GoingOffline,
                "the NAS announced its shutdown",
            )
            .await?;
        }
        Ok(Ack {
            acknowledged: true,
            state: m.state.as_ref().map_or(NasState::GoingOffline, |r| r.state),
            dns_switch: view,
            switched,
            inbox: None,
            inbox_error: None,
        })
    }

    /// `nas-coming-online`: flushes the inbox to the NAS (waiting at most
    /// `inbox_handshake_wait_secs`; a failure does not stop the rest), points the DNS
    /// switch at the NAS (once) and moves the machine to `coming_online` (the next
    /// answered heartbeat makes it `online`). Returns only once the switch is in force.
    ///
    /// # Errors
    /// 503 `dns_unavailable` when the switch cannot be changed.
    pub async fn coming_online(&self) -> Result<Ack, CompanionError> {
        let (inbox, inbox_error) = if self.settings().inbox_target.is_empty() {
            (None, None)
        } else {
            let wait = Duration::from_secs(self.file.inbox_handshake_wait_secs);
            match self.flush_inbox(wait).await {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        let mut m = self.machine.lock().await;
        let (view, switched) = self.dns.ensure(Target::Nas, "NAS coming online").await?;
        if m.state.as_ref().map(|r| r.state) != Some(NasState::Online) {
            self.transition(
                &mut m,
                NasState::ComingOnline,
                "the NAS announced its start",
            )
            .await?;
        }
        m.misses = 0;
        Ok(Ack {
            acknowledged: true,
            state: m.state.as_ref().map_or(NasState::ComingOnline, |r| r.state),
            dns_switch: view,
            switched,
            inbox,
            inbox_error,
        })
    }
}
