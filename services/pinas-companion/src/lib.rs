//! PiNAS companion role (`pinas companion`): the always-on box's side of a bigger NAS
//! that sleeps most of the day.
//!
//! It owns the NAS's settings (name, MAC and IP address, health URL, heartbeat interval,
//! misses before takeover, wake timeout, inbox target), the pairing token the NAS
//! presents, Wake-on-LAN ([`wol`]), the NAS's state machine with its heartbeat and the
//! handshake the NAS starts ([`nas`]), and the NAS's last metadata snapshot
//! ([`snapshot`]). It keeps the DNS switch record pointed at whichever box answers for
//! the NAS's name, through the DNS role's control socket ([`dnsswitch`]).
//!
//! It does not own the DNS server (the DNS role does), browser sessions (the web role
//! authenticates people and proxies `/api/companion/...` here; the NAS authenticates
//! with the pairing token), or the NAS itself (`pinas agent` runs there).
//!
//! Everything it writes lives in `<state_dir>/companion/` ([`store`]), so it runs as
//! its own user.

pub mod agent;
pub mod api;
pub mod config;
pub mod dnsswitch;
pub mod error;
pub mod health;
pub mod inbox;
pub mod nas;
pub mod pairing;
pub mod remote;
pub mod snapshot;
pub mod store;
pub mod usage;
pub mod wol;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pinas_core::db::Db;
use pinas_core::events::now_ms;
use pinas_core::{Config, EventBus};
use serde::Serialize;

pub use api::ApiDoc;
pub use config::{CompanionConfig, Settings};
pub use error::CompanionError;

use dnsswitch::{DnsSwitch, SwitchView};
use nas::{Heartbeat, Machine, NasState};
use pairing::{Limiter, Pairing};

/// The running companion role: settings, pairing, the NAS's state machine.
pub struct Companion {
    pub(crate) db: Db,
    pub(crate) events: EventBus,
    settings: ArcSwap<SettingsState>,
    pub(crate) file: CompanionConfig,
    pub(crate) pairing: Pairing,
    pub(crate) limiter: Limiter,
    pub(crate) dns: DnsSwitch,
    pub(crate) health: health::Health,
    pub(crate) machine: tokio::sync::Mutex<Machine>,
    pub(crate) settings_changed: tokio::sync::Notify,
    pub(crate) inbox: inbox::Inbox,
    pub(crate) remote: remote::Remote,
}

struct SettingsState {
    settings: Arc<Settings>,
    /// `None`: the defaults of `[companion]`.
    saved_at_ms: Option<i64>,
}

/// The settings as `GET /api/companion/settings` shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CompanionSettingsView)]
pub struct SettingsView {
    #[serde(flatten)]
    pub settings: Settings,
    /// True when a SecureOn password is set (it is never shown).
    pub secureon_password_set: bool,
    /// When an admin last saved them (Unix ms); `null`: from `config.toml`.
    pub saved_at_ms: Option<i64>,
}

/// `GET /api/companion/status`: the NAS as the companion sees it now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CompanionStatus)]
pub struct Status {
    pub nas_name: String,
    /// `null` until the first heartbeat or handshake.
    pub state: Option<NasState>,
    /// Why it is in this state.
    pub reason: Option<String>,
    /// Since when (Unix ms).
    pub since_ms: Option<i64>,
    /// The last heartbeat, `null` before the first (or without a health URL).
    pub last_heartbeat: Option<Heartbeat>,
    /// Heartbeats missed in a row.
    pub misses: u32,
    pub heartbeat_interval_secs: u64,
    /// The DNS switch now; `null` when the DNS role does not answer (see `dns_error`).
    pub dns_switch: Option<SwitchView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_error: Option<String>,
    /// True when a pairing token exists.
    pub paired: bool,
    /// When the last snapshot arrived (Unix ms), `null` before the first.
    pub snapshot_received_at_ms: Option<i64>,
}

impl Companion {
    /// Opens the role's state in `dir` (database, pairing token), with the `[companion]`
    /// section `file` for defaults and the DNS role's socket `dns_socket`. Blocking.
    ///
    /// # Errors
    /// 422 `invalid_config` naming the key when `[companion]` is invalid; 503
    /// `companion_state_unavailable` when the folder, database or token file cannot be
    /// opened.
    pub fn open(
        dir: &Path,
        file: CompanionConfig,
        dns_socket: PathBuf,
        events: EventBus,
    ) -> Result<Arc<Companion>, CompanionError> {
        let defaults = file.settings()?;
        let db = store::open(dir)?;
        let (settings, saved_at_ms) = match store::settings(&db)? {
            Some((s, at)) => (s, Some(at)),
            None => (defaults, None),
        };
        let state = store::current_state(&db)?;
        let pairing = Pairing::load(dir)?;
        let health = health::Health::new(Duration::from_millis(file.health_timeout_ms))
            .map_err(CompanionError::internal)?;
        let mut inbox = inbox::Inbox::new(
            file.inbox_dir.clone().unwrap_or_else(|| dir.join("inbox")),
            Duration::from_secs(file.inbox_settle_secs),
        );
        let ssh_dir = file
            .inbox_ssh_dir
            .clone()
            .unwrap_or_else(|| dir.join("ssh"));
        match inbox::SshFiles::prepare(ssh_dir) {
            Ok(ssh) => inbox = inbox.with_ssh(ssh),
            // An rsync daemon target still works; an SSH one says why it cannot log in.
            Err(e) => tracing::warn!(error = %e, "no SSH key for the inbox"),
        }
        let remote = remote::Remote::open(
            file.remote_dir
                .clone()
                .unwrap_or_else(|| dir.join("remote")),
            remote::default_mounter(),
            remote::Timing {
                probe_timeout: Duration::from_millis(file.remote_probe_timeout_ms),
                failures_before_cooldown: file.remote_failures_before_cooldown,
                cooldown: Duration::from_secs(file.remote_cooldown_secs),
                move_limit: Duration::from_secs(3600),
            },
            Duration::from_secs(file.inbox_settle_secs),
        )?;
        let remote = match &file.spool_share_dir {
            Some(d) => {
                remote.with_share_dir(d.clone(), Duration::from_secs(file.inbox_settle_secs))
            }
            None => remote,
        };
        Ok(Arc::new(Companion {
            remote,
            db,
            events,
            settings: ArcSwap::from_pointee(SettingsState {
                settings: Arc::new(settings),
                saved_at_ms,
            }),
            file,
            pairing,
            limiter: Limiter::default(),
            dns: DnsSwitch::new(dns_socket),
            health,
            machine: tokio::sync::Mutex::new(Machine {
                state,
                ..Machine::default()
            }),
            settings_changed: tokio::sync::Notify::new(),
            inbox,
        }))
    }

    /// The settings in force (with the SecureOn password).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load().settings.clone()
    }

    /// The settings as the API shows them (without the SecureOn password).
    pub fn settings_view(&self) -> SettingsView {
        let cur = self.settings.load();
        let mut s = (*cur.settings).clone();
        let set = s.secureon_password.take().is_some_and(|p| !p.is_empty());
        SettingsView {
            settings: s,
            secureon_password_set: set,
            saved_at_ms: cur.saved_at_ms,
        }
    }

    /// Checks and saves `input`, and applies it at once (the heartbeat restarts its
    /// wait with the new interval). A `secureon_password` of `None` keeps the current
    /// one. Emits `companion.settings.changed`. Blocking (database).
    ///
    /// # Errors
    /// 422 naming the first bad field (see [`Settings::checked`]); nothing is saved then.
    pub fn save_settings(&self, input: Settings) -> Result<SettingsView, CompanionError> {
        let mut s = input.checked()?;
        if s.secureon_password.is_none() {
            s.secureon_password = self.settings().secureon_password.clone();
        }
        let now = now_ms();
        store::save_settings(&self.db, &s, now)?;
        self.settings.store(Arc::new(SettingsState {
            settings: Arc::new(s),
            saved_at_ms: Some(now),
        }));
        self.settings_changed.notify_waiters();
        let view = self.settings_view();
        self.events.emit(
            "companion.settings.changed",
            serde_json::to_value(&view).unwrap_or_default(),
        );
        Ok(view)
    }

    /// The NAS's status now (asks the DNS role for the switch).
    ///
    /// # Errors
    /// Database errors.
    pub async fn status(&self) -> Result<Status, CompanionError> {
        let s = self.settings();
        let (state, last, misses) = {
            let m = self.machine.lock().await;
            (m.state.clone(), m.last.clone(), m.misses)
        };
        let (dns_switch, dns_error) = match self.dns.get().await {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let snap = {
            let db = self.db.clone();
            store::run_blocking(move || store::snapshot(&db)).await?
        };
        Ok(Status {
            nas_name: s.nas_name.clone(),
            state: state.as_ref().map(|r| r.state),
            reason: state.as_ref().map(|r| r.reason.clone()),
            since_ms: state.as_ref().map(|r| r.at_ms),
            last_heartbeat: last,
            misses,
            heartbeat_interval_secs: s.heartbeat_interval_secs,
            dns_switch,
            dns_error,
            paired: self.pairing.created_at_ms().is_some(),
            snapshot_received_at_ms: snap.map(|r| r.received_at_ms),
        })
    }

    /// The inbox's status now (blocking: counts the files).
    pub fn inbox_status(&self) -> inbox::InboxStatus {
        self.inbox.status(&self.settings().inbox_target)
    }

    /// Flushes the inbox to the target now, waiting at most `limit`.
    ///
    /// # Errors
    /// As [`inbox::Inbox::flush`].
    pub async fn flush_inbox(&self, limit: Duration) -> Result<inbox::FlushReport, CompanionError> {
        let target = self.settings().inbox_target.clone();
        self.inbox.flush(&target, limit).await
    }

    /// Flushes the inbox every `inbox_interval_secs` while the NAS is online and a target
    /// is set, later after failures (see [`inbox`]), until `stop` resolves.
    pub async fn inbox_loop(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let every = Duration::from_secs(self.file.inbox_interval_secs);
        // The flush at coming-online counts as one.
        let mut last_try: Option<i64> = None;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_secs(5).min(every)) => {}
            }
            let online =
                self.machine.lock().await.state.as_ref().map(|r| r.state) == Some(NasState::Online);
            let now = now_ms();
            let last = last_try.max(self.inbox.last_flush_at_ms());
            let due = last.is_none_or(|t| now - t >= every.as_millis() as i64);
            if !online
                || !due
                || self.settings().inbox_target.is_empty()
                || !self.inbox.may_retry(now)
            {
                continue;
            }
            last_try = Some(now);
            // A flush failure is recorded in the inbox status and retried later.
            let _ = self.flush_inbox(Duration::from_secs(3600)).await;
        }
    }

    /// The remote share (tests replace its mounter with [`remote::Remote::set_mounter`]).
    pub fn remote(&self) -> &remote::Remote {
        &self.remote
    }

    /// Checks the remote share now ([`remote::Remote::check`]) and returns its status;
    /// emits `companion.remote.changed` when new files go elsewhere from now on.
    ///
    /// # Errors
    /// Only when the status cannot be read (a blocking task failed).
    pub async fn check_remote(self: &Arc<Self>) -> Result<remote::RemoteStatus, CompanionError> {
        let changed = self.remote.check().await;
        let me = self.clone();
        let status = store::run_blocking(move || Ok(me.remote.status())).await?;
        if changed {
            self.events.emit(
                "companion.remote.changed",
                serde_json::to_value(&status).unwrap_or_default(),
            );
        }
        Ok(status)
    }

    /// Checks the remote share every `remote_check_secs` until `stop` resolves.
    pub async fn remote_loop(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let every = Duration::from_secs(self.file.remote_check_secs);
        loop {
            if self.remote.settings().enabled {
                let _ = self.check_remote().await;
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Makes a new pairing token (the old one stops working) and returns it: the only
    /// time it is shown. Emits `companion.pairing.rotated` (without the token).
    ///
    /// # Errors
    /// 503 when the token file cannot be written.
    pub fn rotate_token(&self) -> Result<(String, i64), CompanionError> {
        let now = now_ms();
        let token = self.pairing.rotate(now)?;
        tracing::info!("pairing token replaced");
        self.events.emit(
            "companion.pairing.rotated",
            serde_json::json!({"created_at_ms": now}),
        );
        Ok((token, now))
    }
}

/// Runs the companion role: opens `<state_dir>/companion`, serves the control API on
/// `<run_dir>/companion.sock`, and runs the heartbeat until `shutdown` resolves. The DNS
/// role is reached on `$PINAS_DNS_SOCKET` when set, else `<run_dir>/dns.sock`. Events
/// go to `events`.
///
/// # Errors
/// [`CompanionError`] when `[companion]` is invalid, the role's folder cannot be opened,
/// or the socket cannot be served.
pub async fn run(
    config: &Config,
    events: EventBus,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CompanionError> {
    let mut file: CompanionConfig =
        config
            .section("companion")
            .map_err(|e| CompanionError::Invalid {
                code: "invalid_config",
                message: e.to_string(),
                field: None,
            })?;
    let paths = pinas_core::Paths::new(config);
    if file.inbox_dir.is_none() {
        file.inbox_dir = Some(paths.shares_root.join("inbox"));
    }
    if file.spool_share_dir.is_none() {
        file.spool_share_dir = Some(paths.shares_root.join("spool"));
    }
    let dir = store::role_dir(&paths.state_dir);
    // The unit names the DNS role's socket where it really is: the /run/pinas link to it
    // is hidden inside the companion's sandbox.
    let dns_socket = std::env::var_os("PINAS_DNS_SOCKET")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.role_socket("dns"));
    let companion = {
        let events = events.clone();
        tokio::task::spawn_blocking(move || Companion::open(&dir, file, dns_socket, events))
            .await
            .map_err(|e| {
                CompanionError::internal(format!("opening the companion state failed: {e}"))
            })??
    };
    let socket = paths.role_socket("companion");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let beat = tokio::spawn(companion.clone().heartbeat_loop(stopped()));
    let inbox = tokio::spawn(companion.clone().inbox_loop(stopped()));
    let remote = tokio::spawn(companion.clone().remote_loop(stopped()));
    tracing::info!(socket = %socket.display(), "companion control API listening");
    let mut served = tokio::spawn({
        let router = api::router(companion.clone());
        let socket = socket.clone();
        let stop = stopped();
        async move { pinas_core::role::serve_socket(&socket, router, events, stop).await }
    });
    // A socket that cannot be served ends the role at once rather than at shutdown.
    let result = tokio::select! {
        _ = shutdown => {
            let _ = tx.send(true);
            served.await
        }
        r = &mut served => r,
    };
    let _ = tx.send(true);
    let _ = beat.await;
    let _ = inbox.await;
    let _ = remote.await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CompanionError::unavailable(
            "companion_socket_failed",
            format!("control socket {}: {e}", socket.display()),
        )),
        Err(e) => Err(CompanionError::internal(format!(
            "control socket task failed: {e}"
        ))),
    }
}
