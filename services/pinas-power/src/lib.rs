//! PiNAS power role (`pinas power`): TP-Link Tapo P110 plugs polled on the LAN over
//! KLAP, their power and energy history, what the NAS costs and how long it runs.
//!
//! It owns the plugs (address, Tapo account, the NAS's mark, whether an admin may switch
//! them), the KLAP client ([`klap`]), one poller per plug with timeouts and backoff, the
//! samples and their 1-minute and 1-hour means in its own database ([`store`]), the
//! energy totals across the plugs' counter resets and the cost ([`energy`]), and
//! Prometheus metrics ([`metrics`]).
//!
//! It does not own the NAS's state (the companion role does; [`companion`] asks it over
//! its socket) or browser sessions (the web role authenticates people and proxies
//! `/api/power/...` here, naming their role in `x-pinas-role`).
//!
//! Everything it writes lives in `<state_dir>/power/`, so it runs as its own user. The
//! fake plug ([`fake`], [`fixtures`]) is here for tests, the benchmark and
//! `pinas dev --demo-plug`.

pub mod api;
pub mod companion;
pub mod config;
pub mod discover;
pub mod energy;
pub mod error;
pub mod fake;
pub mod fixtures;
pub mod klap;
pub mod metrics;
pub mod plugs;
pub mod sampler;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pinas_core::db::Db;
use pinas_core::events::now_ms;
use pinas_core::{Config, EventBus};
use serde::Serialize;

pub use api::ApiDoc;
pub use config::Settings;
pub use error::PowerError;

use companion::{CompanionClient, Mismatch, NasBelief};
use error::run_blocking;
use klap::{KlapVersion, PlugClient, PlugError};
use plugs::{NewPlug, PlugChange, Vault};
use sampler::DeviceInfo;
use store::PlugRow;

/// Longest wait between two tries of a plug that does not answer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Shortest wait after the plug refused the account: plugs lock an account out after
/// repeated failed logins, so PiNAS does not insist.
pub const CREDENTIALS_BACKOFF: Duration = Duration::from_secs(60);
/// Between two rollups of samples into means.
pub const ROLLUP_EVERY: Duration = Duration::from_secs(60);
/// Between two questions to the companion role about the NAS.
pub const COMPANION_EVERY: Duration = Duration::from_secs(10);
/// How long the sample writer gathers the pollers' samples before storing them in one
/// transaction: 20 plugs sampled every second make 4 transactions a second, not 20.
pub const WRITE_WINDOW: Duration = Duration::from_millis(250);

/// A plug's problem now, e.g. `{"code":"plug_unreachable","message":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub code: String,
    pub message: String,
}

/// What the poller knows of a plug now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlugStatus {
    /// `null` before the first try; `false` while it does not answer (or refuses).
    pub online: Option<bool>,
    pub power_w: Option<f64>,
    /// PiNAS's running total for the plug, Wh.
    pub total_wh: Option<i64>,
    pub today_wh: Option<i64>,
    pub last_sample_ms: Option<i64>,
    pub error: Option<Problem>,
    /// Failed tries in a row.
    pub failures: u32,
    /// When the poller tries next after failures (Unix ms).
    pub next_try_ms: Option<i64>,
    pub klap_version: Option<KlapVersion>,
    pub device: Option<DeviceInfo>,
}

/// A plug as the API shows it: never its account's e-mail address or password.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlugView {
    #[serde(flatten)]
    pub plug: PlugRow,
    /// True when a Tapo account is stored for it.
    pub account_set: bool,
    pub status: PlugStatus,
}

/// The settings as `GET /api/power/settings` shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = PowerSettingsView)]
pub struct SettingsView {
    #[serde(flatten)]
    pub settings: Settings,
    /// When an admin last saved them (Unix ms); `null`: from `config.toml`.
    pub saved_at_ms: Option<i64>,
}

/// The running power role.
pub struct Power {
    pub(crate) db: Db,
    events: EventBus,
    settings: RwLock<(Arc<Settings>, Option<i64>)>,
    vault: Vault,
    http: RwLock<reqwest::Client>,
    status: Mutex<HashMap<i64, PlugStatus>>,
    clients: Mutex<HashMap<i64, Arc<PlugClient>>>,
    changed: tokio::sync::Notify,
    tz: jiff::tz::TimeZone,
    writes: tokio::sync::mpsc::UnboundedSender<store::Write>,
    write_queue: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<store::Write>>>,
    companion: RwLock<Option<CompanionClient>>,
    belief: Mutex<Option<NasBelief>>,
    mismatch_since_ms: Mutex<Option<i64>>,
    mismatch_after_ms: std::sync::atomic::AtomicI64,
}

impl Power {
    /// Opens the role's state in `dir` (database, credentials), with `defaults` (the
    /// `[power]` section) until an admin saves settings. Blocking.
    ///
    /// # Errors
    /// 422 `invalid_setting` when `defaults` are bad; 503 `power_state_unavailable` when
    /// the folder, database or credentials file cannot be used.
    pub fn open(
        dir: &Path,
        defaults: Settings,
        events: EventBus,
    ) -> Result<Arc<Power>, PowerError> {
        let defaults = defaults.checked()?;
        let db = store::open(dir)?;
        let (settings, saved) = match store::settings(&db)? {
            Some((s, at)) => (s, Some(at)),
            None => (defaults, None),
        };
        let vault = Vault::load(dir)?;
        let http = klap::http_client(Duration::from_millis(settings.timeout_ms));
        let (writes, queue) = tokio::sync::mpsc::unbounded_channel();
        Ok(Arc::new(Power {
            db,
            events,
            settings: RwLock::new((Arc::new(settings), saved)),
            vault,
            http: RwLock::new(http),
            status: Mutex::default(),
            clients: Mutex::default(),
            changed: tokio::sync::Notify::new(),
            tz: jiff::tz::TimeZone::system(),
            writes,
            write_queue: Mutex::new(Some(queue)),
            companion: RwLock::default(),
            belief: Mutex::default(),
            mismatch_since_ms: Mutex::default(),
            mismatch_after_ms: std::sync::atomic::AtomicI64::new(Mismatch::AFTER_MS),
        }))
    }

    /// Asks the companion role on `socket` about the NAS from now on (every
    /// [`COMPANION_EVERY`], and before switching the NAS's plug off).
    pub fn follow_companion(&self, socket: PathBuf) {
        *self.companion.write().unwrap_or_else(|e| e.into_inner()) =
            Some(CompanionClient::new(socket));
    }

    fn companion_client(&self) -> Option<CompanionClient> {
        self.companion
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The companion's belief about the NAS as last read; `None` without a companion.
    pub fn nas_belief(&self) -> Option<NasBelief> {
        self.belief
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reports a mismatch after `after` instead of [`Mismatch::AFTER_MS`] (tests and
    /// demos); pollers started later use it.
    pub fn set_mismatch_after(&self, after: Duration) {
        self.mismatch_after_ms.store(
            after.as_millis() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Asks the companion now (the pollers ask every [`COMPANION_EVERY`]) and keeps its
    /// answer; `None` without a companion or when it does not answer.
    pub async fn refresh_companion(&self) -> Option<NasBelief> {
        self.refresh_belief().await
    }

    async fn refresh_belief(&self) -> Option<NasBelief> {
        let c = self.companion_client()?;
        let b = c.nas(now_ms()).await;
        *self.belief.lock().unwrap_or_else(|e| e.into_inner()) = b.clone();
        b
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The settings with when they were saved.
    pub fn settings_view(&self) -> SettingsView {
        let s = self.settings.read().unwrap_or_else(|e| e.into_inner());
        SettingsView {
            settings: (*s.0).clone(),
            saved_at_ms: s.1,
        }
    }

    /// Checks, saves and applies `input` (a new timeout restarts the pollers). Blocking.
    ///
    /// # Errors
    /// 422 naming the first bad field; nothing is saved then.
    pub fn save_settings(&self, input: Settings) -> Result<SettingsView, PowerError> {
        let s = input.checked()?;
        let now = now_ms();
        store::save_settings(&self.db, &s, now)?;
        let new_timeout = s.timeout_ms != self.settings().timeout_ms;
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(s), Some(now));
        if new_timeout {
            *self.http.write().unwrap_or_else(|e| e.into_inner()) =
                klap::http_client(Duration::from_millis(self.settings().timeout_ms));
            self.clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        self.changed.notify_waiters();
        let view = self.settings_view();
        self.events.emit(
            "power.settings.changed",
            serde_json::to_value(&view).unwrap_or_default(),
        );
        Ok(view)
    }

    fn view(&self, p: PlugRow) -> PlugView {
        let status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.id)
            .cloned()
            .unwrap_or_default();
        PlugView {
            account_set: self.vault.get(p.id).is_some(),
            plug: p,
            status,
        }
    }

    /// Every plug with its status. Blocking.
    ///
    /// # Errors
    /// Database errors.
    pub fn plugs(&self) -> Result<Vec<PlugView>, PowerError> {
        Ok(store::plugs(&self.db)?
            .into_iter()
            .map(|p| self.view(p))
            .collect())
    }

    /// Looks for Tapo devices on the LAN ([`discover`]) as `req` says, and names the plug
    /// already added at each address found.
    ///
    /// # Errors
    /// 422 `invalid_target` / `invalid_wait`; 503 `discovery_failed` when no probe can
    /// be sent.
    pub async fn discover(
        &self,
        req: discover::DiscoverRequest,
    ) -> Result<Vec<discover::Found>, PowerError> {
        let plan = req.plan()?;
        let mut found = discover::discover(&plan).await?;
        let db = self.db.clone();
        let plugs = run_blocking(move || store::plugs(&db)).await?;
        for f in &mut found {
            f.plug_id = plugs
                .iter()
                .find(|p| address_host(&p.address) == f.ip)
                .map(|p| p.id);
            f.already_added = f.plug_id.is_some();
        }
        tracing::info!(
            targets = plan.targets.len(),
            found = found.len(),
            "plug discovery"
        );
        Ok(found)
    }

    /// Plug `id` with its status. Blocking.
    ///
    /// # Errors
    /// 404 `plug_not_found`.
    pub fn plug(&self, id: i64) -> Result<PlugView, PowerError> {
        Ok(self.view(store::plug(&self.db, id)?))
    }

    /// Adds a plug and starts polling it. Blocking.
    ///
    /// # Errors
    /// 422 naming a bad field; 409 a name or address already used; 503 when the account
    /// cannot be stored (the plug is not added then).
    pub fn add_plug(&self, p: NewPlug) -> Result<PlugView, PowerError> {
        let name = plugs::check_name(&p.name)?;
        let address = plugs::check_address(&p.address)?;
        let creds = plugs::check_credentials(&p.email, &p.password)?;
        let row = store::insert_plug(&self.db, &name, &address, p.is_nas, p.switchable, now_ms())?;
        if let Err(e) = self.vault.set(row.id, Some(creds)) {
            let _ = store::delete_plug(&self.db, row.id);
            return Err(e);
        }
        tracing::info!(plug = %row.name, address = %row.address, "plug added");
        self.changed.notify_waiters();
        let view = self.view(row);
        self.events.emit(
            "power.plug.added",
            serde_json::json!({"id": view.plug.id, "name": view.plug.name}),
        );
        Ok(view)
    }

    /// Changes plug `id` (absent fields keep their value). Blocking.
    ///
    /// # Errors
    /// As [`Power::add_plug`], and 404.
    pub fn change_plug(&self, id: i64, c: PlugChange) -> Result<PlugView, PowerError> {
        let mut row = store::plug(&self.db, id)?;
        if let Some(n) = &c.name {
            row.name = plugs::check_name(n)?;
        }
        if let Some(a) = &c.address {
            row.address = plugs::check_address(a)?;
        }
        row.is_nas = c.is_nas.unwrap_or(row.is_nas);
        row.switchable = c.switchable.unwrap_or(row.switchable);
        let creds = match (&c.email, &c.password) {
            (None, None) => None,
            (e, p) => {
                let old = self.vault.get(id);
                let email = e
                    .clone()
                    .or_else(|| old.as_ref().map(|o| o.email.clone()))
                    .unwrap_or_default();
                let password = p
                    .clone()
                    .or_else(|| old.map(|o| o.password))
                    .unwrap_or_default();
                Some(plugs::check_credentials(&email, &password)?)
            }
        };
        store::update_plug(&self.db, &row)?;
        if let Some(creds) = creds {
            self.vault.set(id, Some(creds))?;
        }
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.changed.notify_waiters();
        self.events
            .emit("power.plug.changed", serde_json::json!({"id": id}));
        Ok(self.view(row))
    }

    /// Removes plug `id`, its history and its account. Blocking.
    ///
    /// # Errors
    /// 404; 503 when the account cannot be removed from the file.
    pub fn remove_plug(&self, id: i64) -> Result<(), PowerError> {
        store::delete_plug(&self.db, id)?;
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.changed.notify_waiters();
        self.events
            .emit("power.plug.removed", serde_json::json!({"id": id}));
        self.vault.set(id, None)
    }

    /// Whether plug `id` has a client (its poller made one and no change dropped it).
    fn has_client(&self, id: i64) -> bool {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    fn client(&self, p: &PlugRow) -> Option<Arc<PlugClient>> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&p.id) {
            return Some(c.clone());
        }
        let creds = self.vault.get(p.id)?;
        let http = self.http.read().unwrap_or_else(|e| e.into_inner()).clone();
        let c = Arc::new(PlugClient::new(http, &p.address, creds));
        clients.insert(p.id, c.clone());
        Some(c)
    }

    /// Switches plug `id` on or off, for `who` (logged).
    ///
    /// # Errors
    /// 404; 409 `plug_not_switchable` unless the plug allows it; 409 `nas_running` when
    /// switching off the NAS's plug while the NAS may be running (see [`nas_running`]);
    /// 502 with the plug's error when it does not do it.
    pub async fn switch(&self, id: i64, on: bool, who: &str) -> Result<PlugView, PowerError> {
        let row = {
            let db = self.db.clone();
            run_blocking(move || store::plug(&db, id)).await?
        };
        if !row.switchable {
            return Err(PowerError::conflict(
                "plug_not_switchable",
                format!("switching {:?} from PiNAS is not allowed for this plug (an admin can allow it in its settings)", row.name),
            ));
        }
        if row.is_nas && !on {
            let power = self
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .and_then(|s| s.power_w);
            let belief = self.refresh_belief().await;
            if let Some(why) = nas_running(&self.settings(), power, belief.as_ref()) {
                return Err(PowerError::conflict(
                    "nas_running",
                    format!(
                        "{:?} powers the NAS: {why}; shut the NAS down first",
                        row.name
                    ),
                ));
            }
        }
        let client = self.client(&row).ok_or_else(|| {
            PowerError::conflict(
                "plug_account_missing",
                "no Tapo account is stored for this plug",
            )
        })?;
        client.set_on(on).await?;
        // The relay's state is read once per session (`describe`); a switch changes it.
        self.set_status(id, |s| {
            if let Some(d) = s.device.as_mut() {
                d.on = on;
            }
        });
        tracing::info!(plug = %row.name, on, by = who, "plug switched");
        self.events.emit(
            "power.plug.switched",
            serde_json::json!({"id": id, "on": on}),
        );
        Ok(self.view(row))
    }

    fn set_status(&self, id: i64, f: impl FnOnce(&mut PlugStatus)) {
        let mut all = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(id).or_default());
    }

    /// Polls `plug` every interval until the task is aborted.
    async fn poll(self: Arc<Self>, plug: PlugRow) {
        let id = plug.id;
        let last = {
            let db = self.db.clone();
            run_blocking(move || store::last_sample(&db, id)).await
        };
        let last = last.unwrap_or_else(|e| {
            tracing::warn!(plug = %plug.name, error = %e, "cannot read the last sample");
            None
        });
        let mut counters = last.map(|s| (s.today_wh, s.month_wh));
        let mut total = last.map_or(0, |s| s.total_wh);
        let mut last_at = last.map(|s| s.at_ms).filter(|&t| t > 0);
        let mut failures: u32 = 0;
        let mut described = false;
        let mut mismatch = Mismatch::after(
            self.mismatch_after_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        loop {
            let settings = self.settings();
            let interval = Duration::from_millis(settings.interval_ms);
            let started = tokio::time::Instant::now();
            let Some(client) = self.client(&plug) else {
                self.set_status(id, |s| {
                    s.online = Some(false);
                    s.error = Some(Problem {
                        code: "plug_account_missing".into(),
                        message: "no Tapo account is stored for this plug".into(),
                    });
                });
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            };
            let wait = match sampler::read(&client).await {
                Ok(r) => {
                    let at = now_ms();
                    total += energy::delta(counters, (r.today_wh, r.month_wh));
                    counters = Some((r.today_wh, r.month_wh));
                    let _ = self.writes.send(store::Write::Sample {
                        plug: id,
                        at_ms: at,
                        reading: r,
                        total_wh: total,
                    });
                    if failures > 0 {
                        tracing::info!(plug = %plug.name, failures, "plug answers again");
                    }
                    failures = 0;
                    last_at = Some(at);
                    let version = client.version().await;
                    self.set_status(id, |s| {
                        s.online = Some(true);
                        s.power_w = Some(r.power_w);
                        s.total_wh = Some(total);
                        s.today_wh = Some(r.today_wh);
                        s.last_sample_ms = Some(at);
                        s.error = None;
                        s.failures = 0;
                        s.next_try_ms = None;
                        s.klap_version = version;
                    });
                    self.events.emit(
                        "power.reading",
                        serde_json::json!({"id": id, "at_ms": at, "power_w": r.power_w, "total_wh": total}),
                    );
                    if plug.is_nas {
                        self.check_nas(&plug, &mut mismatch, at, r.power_w, &settings);
                    }
                    if !described {
                        if let Ok(info) = sampler::describe(&client).await {
                            self.set_status(id, |s| s.device = Some(info));
                            described = true;
                        }
                    }
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(interval, failures, &e);
                    if failures == 1 {
                        // One line per outage, not per try.
                        tracing::warn!(plug = %plug.name, error = %e, "plug does not answer; retrying with backoff");
                        let _ = self.writes.send(store::Write::Gap {
                            plug: id,
                            start_ms: last_at.unwrap_or_else(now_ms),
                            reason: format!("{}: {e}", e.code()),
                        });
                    }
                    let next = now_ms() + wait.as_millis() as i64;
                    self.set_status(id, |s| {
                        s.online = Some(false);
                        s.power_w = None;
                        s.error = Some(Problem {
                            code: e.code().into(),
                            message: e.to_string(),
                        });
                        s.failures = failures;
                        s.next_try_ms = Some(next);
                    });
                    wait
                }
            };
            tokio::time::sleep_until(started + wait).await;
        }
    }

    /// Compares a reading of the NAS's plug with the companion's belief; a NAS that draws
    /// power for a minute while the companion believes it is off is reported once as
    /// `power.nas.mismatch` and a warning notification.
    fn check_nas(
        &self,
        plug: &PlugRow,
        m: &mut Mismatch,
        at: i64,
        power_w: f64,
        settings: &Settings,
    ) {
        let belief = self.nas_belief();
        let report = m.observe(at, power_w, settings.nas_threshold_w, belief.as_ref());
        *self
            .mismatch_since_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = m.since_ms();
        if !report {
            return;
        }
        let state = belief.and_then(|b| b.state).unwrap_or_default();
        tracing::warn!(plug = %plug.name, power_w, state = %state, "the NAS draws power while the companion believes it is off");
        self.events.emit(
            "power.nas.mismatch",
            serde_json::json!({"id": plug.id, "power_w": power_w, "companion_state": state}),
        );
        self.events.emit(
            "notification.new",
            serde_json::json!({
                "level": "warning",
                "title": "The NAS draws power while it should be off",
                "message": format!(
                    "{:?} has drawn {power_w:.1} W for over a minute, but the companion believes the NAS is {state}. It may be hung, or awake without telling the companion.",
                    plug.name
                ),
            }),
        );
    }

    /// Stores the pollers' samples and gaps in batches, in order, until the queue
    /// closes or `stop` resolves (what is queued then is stored first).
    async fn write_samples(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let Some(mut rx) = self
            .write_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        tokio::pin!(stop);
        let mut stopping = false;
        while !stopping {
            let first = tokio::select! {
                w = rx.recv() => w,
                _ = &mut stop => { stopping = true; None }
            };
            let mut batch: Vec<store::Write> = first.into_iter().collect();
            if !stopping && !batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(WRITE_WINDOW) => {}
                    _ = &mut stop => stopping = true,
                }
            }
            while let Ok(w) = rx.try_recv() {
                batch.push(w);
            }
            if batch.is_empty() {
                continue;
            }
            let db = self.db.clone();
            let n = batch.len();
            if let Err(e) = run_blocking(move || store::write_batch(&db, &batch)).await {
                tracing::warn!(error = %e, samples = n, "cannot store samples");
            }
        }
        *self.write_queue.lock().unwrap_or_else(|e| e.into_inner()) = Some(rx);
    }

    /// Runs one poller per plug until `stop` resolves, restarting them when plugs or
    /// settings change, and rolls samples up every minute.
    pub async fn run_pollers(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(self.clone().write_samples(async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        }));
        tokio::pin!(stop);
        // Each plug's poller with the row it was started for.
        let mut tasks: HashMap<i64, (store::PlugRow, tokio::task::JoinHandle<()>)> = HashMap::new();
        let mut rollup = tokio::time::interval(ROLLUP_EVERY);
        rollup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ask = tokio::time::interval(COMPANION_EVERY);
        ask.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'outer: loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let plugs = {
                let db = self.db.clone();
                run_blocking(move || store::plugs(&db)).await
            };
            match plugs {
                Ok(plugs) => {
                    // A poller goes on where nothing of its plug changed, so that a change
                    // to another plug never resets its backoff (a rejected account would be
                    // tried again at once); a changed account or setting drops the plug's
                    // client, and the poller starts over with the new one.
                    let mut next = HashMap::with_capacity(plugs.len());
                    for p in plugs {
                        let keep = matches!(tasks.get(&p.id), Some((row, t))
                            if *row == p && !t.is_finished() && self.has_client(p.id));
                        if keep {
                            if let Some(old) = tasks.remove(&p.id) {
                                next.insert(p.id, old);
                            }
                        } else {
                            if let Some((_, t)) = tasks.remove(&p.id) {
                                t.abort();
                            }
                            let t = tokio::spawn(self.clone().poll(p.clone()));
                            next.insert(p.id, (p, t));
                        }
                    }
                    for (_, (_, t)) in tasks.drain() {
                        t.abort();
                    }
                    tasks = next;
                }
                Err(e) => tracing::warn!(error = %e, "cannot list plugs"),
            }
            loop {
                tokio::select! {
                    _ = &mut stop => break 'outer,
                    _ = &mut changed => break,
                    _ = ask.tick() => {
                        self.refresh_belief().await;
                    }
                    _ = rollup.tick() => {
                        let db = self.db.clone();
                        let s = self.settings();
                        if let Err(e) = run_blocking(move || store::rollup(&db, now_ms(), &s)).await {
                            tracing::warn!(error = %e, "cannot roll samples up");
                        }
                    }
                }
            }
        }
        for (_, (_, t)) in tasks.drain() {
            t.abort();
        }
        let _ = stop_tx.send(true);
        let _ = writer.await;
    }

    /// The NAS's plug now: its power, whether the NAS is active, in standby or off by
    /// the thresholds, and what the companion believes. Blocking.
    ///
    /// # Errors
    /// Database errors.
    pub fn nas(&self) -> Result<NasView, PowerError> {
        let s = self.settings();
        let plug = store::plugs(&self.db)?
            .into_iter()
            .find(|p| p.is_nas)
            .map(|p| self.view(p));
        let power_w = plug.as_ref().and_then(|p| p.status.power_w);
        let state = match power_w {
            None => NasPower::Unknown,
            Some(w) if w >= s.nas_threshold_w => NasPower::Active,
            Some(w) if w >= s.nas_standby_w => NasPower::Standby,
            Some(_) => NasPower::Off,
        };
        Ok(NasView {
            plug_id: plug.as_ref().map(|p| p.plug.id),
            name: plug.as_ref().map(|p| p.plug.name.clone()),
            power_w,
            state,
            threshold_w: s.nas_threshold_w,
            standby_w: s.nas_standby_w,
            companion: self.nas_belief(),
            mismatch_since_ms: *self
                .mismatch_since_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        })
    }

    /// Energy, cost and running time of plug `id` per day or month in `[from_ms, to_ms)`.
    /// Blocking.
    ///
    /// # Errors
    /// 404; database errors.
    pub fn usage(
        &self,
        id: i64,
        period: energy::Period,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<energy::UsageRow>, PowerError> {
        store::plug(&self.db, id)?;
        let hourly = store::hourly(&self.db, id, from_ms, to_ms)?;
        Ok(energy::usage(
            &self.tz,
            period,
            from_ms,
            to_ms,
            &hourly,
            &self.settings().tariff,
        ))
    }

    /// Rolls samples up now (as the minute timer does). Blocking.
    ///
    /// # Errors
    /// Database errors.
    pub fn rollup_now(&self) -> Result<store::RollupStats, PowerError> {
        store::rollup(&self.db, now_ms(), &self.settings())
    }

    /// Points the plug named [`Demo::NAME`] at the demo plug's `address` (its port
    /// changes at every start), or adds it as the NAS's plug. Blocking.
    ///
    /// # Errors
    /// As [`Power::add_plug`] and [`Power::change_plug`].
    pub fn adopt_demo(&self, address: &str) -> Result<PlugView, PowerError> {
        let existing = store::plugs(&self.db)?
            .into_iter()
            .find(|p| p.name == Demo::NAME);
        match existing {
            Some(p) if p.address == address => Ok(self.view(p)),
            Some(p) => self.change_plug(
                p.id,
                PlugChange {
                    address: Some(address.to_string()),
                    email: Some(Demo::EMAIL.into()),
                    password: Some(Demo::PASSWORD.into()),
                    ..PlugChange::default()
                },
            ),
            None => self.add_plug(NewPlug {
                name: Demo::NAME.into(),
                address: address.to_string(),
                email: Demo::EMAIL.into(),
                password: Demo::PASSWORD.into(),
                is_nas: true,
                switchable: true,
            }),
        }
    }

    /// The event bus the role emits on.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The database, for tests and the benchmark.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// What the NAS's plug says about the NAS, by the thresholds of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NasPower {
    /// At or above `nas_threshold_w`: working.
    Active,
    /// From `nas_standby_w` up to the threshold: asleep or idle.
    Standby,
    /// Below `nas_standby_w`.
    Off,
    /// No plug is the NAS's, or it does not answer.
    Unknown,
}

/// `GET /api/power/nas`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NasView {
    /// The plug marked as the NAS's; `null` when none is.
    pub plug_id: Option<i64>,
    pub name: Option<String>,
    /// W; `null` while unknown.
    pub power_w: Option<f64>,
    pub state: NasPower,
    pub threshold_w: f64,
    pub standby_w: f64,
    /// What the companion role believes; `null` when it does not run on this box.
    pub companion: Option<NasBelief>,
    /// Since when (Unix ms) the NAS has drawn power while the companion believes it is
    /// off; `null` when they agree.
    pub mismatch_since_ms: Option<i64>,
}

/// Why the NAS's plug must not be switched off now, or `None` when it may: the companion
/// says the NAS is up (or on its way up or down), or the plug draws at least the NAS
/// threshold, or its power is unknown. A companion that believes the NAS is off does not
/// override the plug: a NAS that draws power may be running.
pub fn nas_running(
    s: &Settings,
    power_w: Option<f64>,
    belief: Option<&NasBelief>,
) -> Option<String> {
    if let Some(b) = belief.filter(|b| b.says_running()) {
        return Some(format!(
            "the companion says the NAS is {}",
            b.state.as_deref().unwrap_or_default()
        ));
    }
    match power_w {
        None => Some("its power is unknown".into()),
        Some(w) if w >= s.nas_threshold_w => Some(format!(
            "it draws {w:.1} W, at least the {:.1} W of a running NAS",
            s.nas_threshold_w
        )),
        Some(_) => None,
    }
}

/// The wait before the next try after `failures` failed ones in a row: the interval
/// doubled per failure up to [`MAX_BACKOFF`]; at least [`CREDENTIALS_BACKOFF`] when the
/// plug refused the account.
pub fn backoff(interval: Duration, failures: u32, e: &PlugError) -> Duration {
    let doubled = interval.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let wait = doubled.min(MAX_BACKOFF).max(interval);
    match e {
        PlugError::Credentials => wait.max(CREDENTIALS_BACKOFF),
        _ => wait,
    }
}

/// A plug for `pinas dev --demo-plug`: a fake P110 on loopback drawing a daily curve,
/// added as "Demo plug" (the NAS's) when no plug is at its address.
pub struct Demo {
    pub plug: fake::FakePlug,
}

impl Demo {
    /// The demo plug's name in PiNAS.
    pub const NAME: &'static str = "Demo plug";
    /// The demo account (the fake plug accepts only it).
    pub const EMAIL: &'static str = "demo@example.com";
    pub const PASSWORD: &'static str = "demo";

    /// Starts the fake plug on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> std::io::Result<Demo> {
        let fixture = fixtures::generated().remove(2);
        let plug =
            fake::FakePlug::start(fake::FakeOptions::new(fixture, Self::EMAIL, Self::PASSWORD))
                .await?;
        // A NAS that idles at 8 W and works at 35 to 60 W for a few minutes at a time.
        plug.set_curve(Arc::new(|t| {
            let phase = (t / 300.0).floor() as i64 % 3;
            if phase == 0 {
                8.0
            } else {
                35.0 + 25.0 * (t / 17.0).sin().abs()
            }
        }));
        Ok(Demo { plug })
    }
}

/// Runs the power role: opens `<state_dir>/power`, serves the control API on
/// `<run_dir>/power.sock`, and polls the plugs until `shutdown` resolves. With `demo`,
/// its plug is added first if missing. The companion role is asked about the NAS on
/// `$PINAS_COMPANION_SOCKET`, else `<run_dir>/companion.sock`.
///
/// # Errors
/// [`PowerError`] when `[power]` is invalid, the role's folder cannot be opened, or the
/// socket cannot be served.
pub async fn run(
    config: &Config,
    events: EventBus,
    shutdown: impl Future<Output = ()> + Send + 'static,
    demo: Option<&Demo>,
) -> Result<(), PowerError> {
    let defaults: Settings = config.section("power").map_err(|e| PowerError::Invalid {
        code: "invalid_config",
        message: e.to_string(),
        field: None,
    })?;
    let paths = pinas_core::Paths::new(config);
    let dir: PathBuf = store::role_dir(&paths.state_dir);
    let power = {
        let events = events.clone();
        tokio::task::spawn_blocking(move || Power::open(&dir, defaults, events))
            .await
            .map_err(|e| PowerError::internal(format!("opening the power state failed: {e}")))??
    };
    if let Some(d) = demo {
        let p = power.clone();
        let address = d.plug.address();
        run_blocking(move || p.adopt_demo(&address)).await?;
    }
    // The companion's socket: `$PINAS_COMPANION_SOCKET` (the unit names it where the
    // companion's private runtime folder really is), else `<run_dir>/companion.sock`.
    let companion = std::env::var_os("PINAS_COMPANION_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.role_socket("companion"));
    power.follow_companion(companion);
    let socket = paths.role_socket("power");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let pollers = tokio::spawn(power.clone().run_pollers(stopped()));
    tracing::info!(socket = %socket.display(), "power control API listening");
    let mut served = tokio::spawn({
        let router = api::router(power.clone());
        let socket = socket.clone();
        let stop = stopped();
        async move { pinas_core::role::serve_socket(&socket, router, events, stop).await }
    });
    let result = tokio::select! {
        _ = shutdown => {
            let _ = tx.send(true);
            served.await
        }
        r = &mut served => r,
    };
    let _ = tx.send(true);
    let _ = pollers.await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PowerError::unavailable(
            "power_socket_failed",
            format!("control socket {}: {e}", socket.display()),
        )),
        Err(e) => Err(PowerError::internal(format!(
            "control socket task failed: {e}"
        ))),
    }
}

/// The host of a plug address (`10.0.0.5:8080` → `10.0.0.5`, `[::1]:80` → `::1`).
fn address_host(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    }
}
